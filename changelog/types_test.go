package changelog

import (
	"errors"
	"testing"
)

func TestTypeLabels(t *testing.T) {
	for _, tc := range []struct {
		t    Type
		want string
	}{
		{CLMark, "00MARK "}, {CLCreate, "01CREAT"}, {CLOpen, "10OPEN "}, {CLHSM, "16HSM  "},
		{CLResync, "22RESYNC"}, {CLGetxattr, "23GXATR"}, {CLDeniedOpen, "24NOPEN"}, {CLExt, "09RNMTO"},
	} {
		if got := tc.t.Label(); got != tc.want {
			t.Errorf("Label(%d) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestMaskConstants(t *testing.T) {
	if MinMask != 0x1 || AllMask != 0x1FFFFFF || DefMask != 0x77FBFF {
		t.Fatalf("MinMask %#x AllMask %#x DefMask %#x", MinMask, AllMask, DefMask)
	}
	want := "MARK CREAT MKDIR HLINK SLINK MKNOD UNLNK RMDIR RENME RNMTO CLOSE LYOUT TRUNC SATTR XATTR HSM MTIME CTIME MIGRT FLRW RESYNC "
	if got := DefMask.ParamString(); got != want {
		t.Fatalf("DefMask.ParamString() = %q, want %q", got, want)
	}
	if got := MaskOf(CLMark, CLUnlink, CLOpen, CLClose).String(); got != "MARK,UNLNK,OPEN,CLOSE" {
		t.Fatalf("String() = %q", got)
	}
}

func TestParseMask(t *testing.T) {
	const rel = MinMask | 1<<CLCreate | 1<<CLHardlink
	for _, tc := range []struct {
		in   string
		want Mask
	}{
		// Absolute: starts from MinMask.
		{"CREAT", MinMask | 1<<CLCreate},
		{"creat", MinMask | 1<<CLCreate},
		{"mkdir+rmdir", MinMask | 1<<CLMkdir | 1<<CLRmdir},
		{"CLOSE,UNLNK", MinMask | 1<<CLClose | 1<<CLUnlink},
		{"CREAT MKDIR", MinMask | 1<<CLCreate | 1<<CLMkdir},
		{"unlnk+close+open", MinMask | 1<<CLUnlink | 1<<CLClose | 1<<CLOpen},
		{"MARK", MinMask},
		{"ALL", AllMask},
		{"all", AllMask},
		{"NONE", MinMask},
		{"DEFAULT", DefMask},
		{"XATTR", MinMask | 1<<CLXattr},
		// Relative: starts from the caller's mask.
		{"+hsm", rel | 1<<CLHSM},
		{"-HLINK", rel &^ (1 << CLHardlink)},
		{"+open,atime,-hlink", (rel | 1<<CLOpen | 1<<CLAtime) &^ (1 << CLHardlink)},
		{"-ALL", MinMask},
		{"-NONE", rel},
		{"+NONE", MinMask},
		{"+DEFAULT", rel | DefMask},
		{"-DEFAULT", rel&^DefMask | MinMask},
		{"-MARK", rel &^ MinMask},
		// An operator applies only to the next token; later bare tokens add.
		{"-OPEN CLOSE", (rel &^ (1 << CLOpen)) | 1<<CLClose},
		{"+ hsm", rel | 1<<CLHSM},
		// DEFAULT anywhere (Lustre only accepts it last; see ParseMask).
		{"DEFAULT,+OPEN", DefMask | 1<<CLOpen},
	} {
		got, err := ParseMask(tc.in, rel)
		if err != nil {
			t.Errorf("ParseMask(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseMask(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseMaskErrors(t *testing.T) {
	for _, tc := range []struct{ in, token string }{
		{"CREATE", "CREATE"}, // full-length match only
		{"CREAT+", "+"},
		{"bogus", "bogus"},
		{"+open,bad", "bad"},
		{"", ""},
		{"  ,", ""},
		{"-", "-"},
		{"cre", "cre"},
	} {
		m, err := ParseMask(tc.in, DefMask)
		if err == nil {
			t.Errorf("ParseMask(%q) = %s, want error", tc.in, m)
			continue
		}
		var me *MaskError
		if !errors.Is(err, ErrBadMask) || !errors.As(err, &me) || me.Token != tc.token || me.Mask != tc.in {
			t.Errorf("ParseMask(%q) error = %#v, want token %q", tc.in, err, tc.token)
		}
		if m != 0 {
			t.Errorf("ParseMask(%q) returned mask %s with error", tc.in, m)
		}
	}
}

func FuzzParseMask(f *testing.F) {
	for _, s := range []string{"CREAT", "+open,atime,-hlink", "-ALL", "DEFAULT", "mkdir+rmdir", "CREAT+", "", "x,y", "+ -"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMask(s, DefMask)
		if err != nil {
			if m != 0 || !errors.Is(err, ErrBadMask) {
				t.Fatalf("ParseMask(%q) = %v, %v", s, m, err)
			}
			return
		}
		if m&^AllMask != 0 {
			t.Fatalf("ParseMask(%q) = %#x has bits beyond AllMask", s, m)
		}
		// The comma-separated names of any result parse back to it
		// (absolute, so MARK must be in it or be removed explicitly).
		names := m.String()
		if names == "" {
			return
		}
		back, err := ParseMask(names, 0)
		if err != nil {
			t.Fatalf("ParseMask(%q) of %q: %v", names, s, err)
		}
		if back != m|MinMask {
			t.Fatalf("round trip of %q: %s -> %s", s, m, back)
		}
	})
}

// DENY is fidlog's type 25, after Lustre's last (CL_LAST = 25): the mask
// grammar knows its name, and it is in neither DEFMASK nor ALL, so a
// consumer gets it only by asking for it.
func TestDenyType(t *testing.T) {
	if CLDenied != NumLustreTypes || CLDenied.Label() != "25DENY " || !CLDenied.Valid() {
		t.Fatalf("DENY: %d %q", CLDenied, CLDenied.Label())
	}
	if DefMask.Has(CLDenied) || AllMask.Has(CLDenied) || AllMask != 0x1FFFFFF {
		t.Fatalf("DEFMASK %#x ALL %#x", DefMask, AllMask)
	}
	for s, want := range map[string]bool{"ALL": false, "ALL,DENY": true, "+deny": true, "DEFAULT": false, "-ALL": false, "NOPEN+DENY": true} {
		m, err := ParseMask(s, DefMask)
		if err != nil || m.Has(CLDenied) != want {
			t.Errorf("ParseMask(%q) = %#x, %v; DENY %v", s, m, err, want)
		}
	}
	if got := MaskOf(CLMark, CLDenied).String(); got != "MARK,DENY" {
		t.Fatalf("String %q", got)
	}
	r := &Record{Type: CLDenied, Flags: DenyFlags(CLRename, 1)}
	if op, errno := r.Denied(); op != CLRename || errno != 1 || r.Flags != 0x401 {
		t.Fatalf("DenyFlags: %#x -> %v %d", r.Flags, op, errno)
	}
}
