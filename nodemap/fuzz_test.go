package nodemap_test

import (
	"errors"
	"testing"

	"github.com/fidlog/fidlog/nodemap"
)

func FuzzParseNID(f *testing.F) {
	for _, s := range []string{
		"192.168.1.5@tcp", "192.168.1.5", "10.0.0.1@o2ib1", "2001:db8::5@tcp",
		"::ffff:1.2.3.4@tcp", "0@lo", "5@kfi", "0x1f@gni2", "fe80::1%eth0@tcp",
		"1.2.3.4@tcp65536", "", "@", "<?>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := nodemap.ParseNID(s)
		if err != nil {
			var pe *nodemap.ParseError
			if !errors.As(err, &pe) || pe.Text != s || !errors.Is(err, nodemap.ErrBadNID) {
				t.Fatalf("ParseNID(%q) error %#v is not a *ParseError with ErrBadNID", s, err)
			}
			if n.IsValid() {
				t.Fatalf("ParseNID(%q) failed but returned %v", s, n)
			}
			return
		}
		if !n.IsValid() {
			t.Fatalf("ParseNID(%q) returned the zero NID", s)
		}
		text := n.String()
		back, err := nodemap.ParseNID(text)
		if err != nil || back != n || back.String() != text {
			t.Fatalf("ParseNID(%q) = %v does not round-trip: %v, %v", s, n, back, err)
		}
		if n.Compare(back) != 0 {
			t.Fatalf("%v.Compare(itself) != 0", n)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"192.168.1.[1-254]@tcp", "192.168.1.[1,5]@tcp", "10.0.[1-2].[1-254]@tcp",
		"10.0.[1-2].*@tcp", "192.168.0.0/16@tcp", "2001:db8::/32@tcp", "2001:db8::1@o2ib",
		"*@tcp", "*@kfi", "[1-60000]@kfi", "0@lo", "192.168.1.[1-10/2]@tcp",
		"192.168.1.[0x10-017]@tcp", "10.0.1.5@tcp:10.0.3.7@tcp", "::1@tcp:::5@tcp",
		"::ffff:10.0.0.0/104@tcp", "::/80@o2ib", "1.2.3.4@tcp1", "[1-3,4-9]@gni", "junk", "@", "a@b@c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := nodemap.ParseRange(s)
		if err != nil {
			var pe *nodemap.ParseError
			if !errors.As(err, &pe) || pe.Text != s ||
				!(pe.Err == nodemap.ErrBadRange || pe.Err == nodemap.ErrNotContiguous) {
				t.Fatalf("ParseRange(%q) error %#v is not a *ParseError with ErrBadRange or ErrNotContiguous", s, err)
			}
			if r.IsValid() {
				t.Fatalf("ParseRange(%q) failed but returned %v", s, r)
			}
			return
		}
		start, end := r.Start(), r.End()
		if !start.IsValid() || start.Net() != end.Net() || start.Compare(end) > 0 {
			t.Fatalf("ParseRange(%q) = [%v, %v]: bad bounds", s, start, end)
		}
		if !r.Contains(start) || !r.Contains(end) || !r.Overlaps(r) {
			t.Fatalf("ParseRange(%q) = %v does not contain its bounds", s, r)
		}
		text := r.String()
		back, err := nodemap.ParseRange(text)
		if err != nil || back != r || back.String() != text {
			t.Fatalf("ParseRange(%q) = %v does not round-trip through %q: %v, %v", s, r, text, back, err)
		}
		// The bounds print as NIDs that parse back (except lo addresses
		// other than 0, which no NID has).
		if start.Net().String() != "lo" {
			for _, n := range []nodemap.NID{start, end} {
				if p, err := nodemap.ParseNID(n.String()); err != nil || p != n {
					t.Fatalf("bound %v of %q does not round-trip: %v, %v", n, s, p, err)
				}
			}
		}
	})
}
