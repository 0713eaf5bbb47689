package changelog

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/fid"
	"pgregory.net/rapid"
)

func ts(s string) time.Time {
	t, err := time.Parse("15:04:05.000000000 2006.01.02", s)
	if err != nil {
		panic(err)
	}
	return t
}

const credExtra = ExtraUIDGID | ExtraNID | ExtraNIDBE

// TestLineFormat checks lfs changelog lines byte for byte against the
// reference's examples (section 2.3).
func TestLineFormat(t *testing.T) {
	f := fid.MustParse
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{Record{Index: 21, Type: CLRename, Time: ts("09:13:02.118833001 2026.08.19"), JobID: "mv.0", ExtraFlags: credExtra, NID: "192.168.1.10@tcp",
			PFID: f("[0x200000402:0x2:0x0]"), Name: "a.hw", SFID: f("[0x200000402:0x3:0x0]"), SPFID: f("[0x200000402:0x1:0x0]"), SName: "hw"},
			"21 08RENME 09:13:02.118833001 2026.08.19 0x0 t=[0:0x0:0x0] j=mv.0 ef=0x13 u=0:0 nid=192.168.1.10@tcp p=[0x200000402:0x2:0x0] a.hw s=[0x200000402:0x3:0x0] sp=[0x200000402:0x1:0x0] hw"},
		{Record{Index: 22, Type: CLRename, Flags: FlagRenameLast, Time: ts("09:13:05.000000451 2026.08.19"), TFID: f("[0x200000402:0x5:0x0]"), JobID: "mv.0", ExtraFlags: credExtra, NID: "192.168.1.10@tcp",
			PFID: f("[0x200000402:0x1:0x0]"), Name: "bar", SFID: f("[0x200000402:0x4:0x0]"), SPFID: f("[0x200000402:0x1:0x0]"), SName: "foo"},
			"22 08RENME 09:13:05.000000451 2026.08.19 0x1 t=[0x200000402:0x5:0x0] j=mv.0 ef=0x13 u=0:0 nid=192.168.1.10@tcp p=[0x200000402:0x1:0x0] bar s=[0x200000402:0x4:0x0] sp=[0x200000402:0x1:0x0] foo"},
		{Record{Index: 23, Type: CLOpen, Flags: 0x1, Time: ts("09:14:10.500000000 2026.08.19"), TFID: f("[0x200000402:0x3:0x0]"), JobID: "cat.0", ExtraFlags: credExtra | ExtraOpen, NID: "192.168.1.10@tcp", OpenFlags: OpenRead},
			"23 10OPEN  09:14:10.500000000 2026.08.19 0x1 t=[0x200000402:0x3:0x0] j=cat.0 ef=0x17 u=0:0 nid=192.168.1.10@tcp m=r--"},
		{Record{Index: 24, Type: CLClose, Flags: 0x1, Time: ts("09:14:10.500100000 2026.08.19"), TFID: f("[0x200000402:0x3:0x0]"), JobID: "cat.0", ExtraFlags: credExtra, NID: "192.168.1.10@tcp", OpenFlags: OpenRead},
			"24 11CLOSE 09:14:10.500100000 2026.08.19 0x1 t=[0x200000402:0x3:0x0] j=cat.0 ef=0x13 u=0:0 nid=192.168.1.10@tcp"},
		{Record{Index: 25, Type: CLXattr, Time: ts("09:15:00.000000001 2026.08.19"), TFID: f("[0x200000402:0x3:0x0]"), JobID: "setfattr.0", ExtraFlags: credExtra | ExtraXattr, NID: "192.168.1.10@tcp", XattrName: "user.xattr1"},
			"25 15XATTR 09:15:00.000000001 2026.08.19 0x0 t=[0x200000402:0x3:0x0] j=setfattr.0 ef=0x1b u=0:0 nid=192.168.1.10@tcp x=user.xattr1"},
		{Record{Index: 27, Type: CLDeniedOpen, Flags: 0x1, Time: ts("09:16:00.000000001 2026.08.19"), TFID: f("[0x200000402:0x3:0x0]"), JobID: "cat.500", ExtraFlags: credExtra | ExtraOpen, UID: 500, GID: 500, NID: "192.168.1.11@tcp", OpenFlags: OpenRead},
			"27 24NOPEN 09:16:00.000000001 2026.08.19 0x1 t=[0x200000402:0x3:0x0] j=cat.500 ef=0x17 u=500:500 nid=192.168.1.11@tcp m=r--"},
		{Record{Index: 28, Type: CLMtime, Flags: 0x7, Time: ts("09:17:00.000000001 2026.08.19"), TFID: f("[0x200000402:0x6:0x0]"), JobID: "touch.0", ExtraFlags: credExtra, NID: "192.168.1.10@tcp", PFID: f("[0x200000402:0x1:0x0]")},
			"28 17MTIME 09:17:00.000000001 2026.08.19 0x7 t=[0x200000402:0x6:0x0] j=touch.0 ef=0x13 u=0:0 nid=192.168.1.10@tcp p=[0x200000402:0x1:0x0]"},
		{Record{Index: 29, Type: CLUnlink, Flags: FlagUnlinkLast, Time: ts("09:18:00.000000001 2026.08.19"), TFID: f("[0x200000402:0x3:0x0]"), JobID: "rm.0", ExtraFlags: credExtra, NID: "192.168.1.10@tcp", PFID: f("[0x200000402:0x2:0x0]"), Name: "a.hw"},
			"29 06UNLNK 09:18:00.000000001 2026.08.19 0x1 t=[0x200000402:0x3:0x0] j=rm.0 ef=0x13 u=0:0 nid=192.168.1.10@tcp p=[0x200000402:0x2:0x0] a.hw"},
		// The 2.11-era verbatim line has ef=0xf; with the same fields we print it the same way.
		{Record{Index: 16, Type: CLCreate, Time: ts("10:28:46.968438800 2018.03.09"), TFID: f("[0x200000401:0x10:0x0]"), JobID: "touch.501", ExtraFlags: 0xf, UID: 501, GID: 501, NID: "0@lo", PFID: fid.Root, Name: "blob"},
			"16 01CREAT 10:28:46.968438800 2018.03.09 0x0 t=[0x200000401:0x10:0x0] j=touch.501 ef=0xf u=501:501 nid=0@lo p=[0x200000007:0x1:0x0] blob"},
		// No credentials: ef=0x0, no u=/nid=; no jobid: no j=.
		{Record{Index: 1, Type: CLHSM, Time: ts("00:00:00.000000000 2026.01.01"), TFID: f("[0x200000402:0x3:0x0]")},
			"1 16HSM   00:00:00.000000000 2026.01.01 0x0 t=[0x200000402:0x3:0x0] ef=0x0"},
		// Exec open prints --x; an open mode of --- prints no m=.
		{Record{Index: 2, Type: CLOpen, Flags: 0x5, Time: ts("00:00:00.000000000 2026.01.01"), TFID: f("[0x200000402:0x3:0x0]"), ExtraFlags: credExtra | ExtraOpen, NID: "0@lo", OpenFlags: OpenExec | OpenRead},
			"2 10OPEN  00:00:00.000000000 2026.01.01 0x5 t=[0x200000402:0x3:0x0] ef=0x17 u=0:0 nid=0@lo m=--x"},
	} {
		if got := tc.r.Line(); got != tc.want {
			t.Errorf("Line():\n got %s\nwant %s", got, tc.want)
		}
	}
}

func TestLineTimeIsUTC(t *testing.T) {
	loc := time.FixedZone("X", 5*3600)
	r := Record{Index: 1, Type: CLCreate, Time: time.Date(2026, 8, 19, 23, 30, 0, 5, loc)}
	want := "1 01CREAT 18:30:00.000000005 2026.08.19 0x0 t=[0:0x0:0x0] ef=0x0"
	if got := r.Line(); got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestModeString(t *testing.T) {
	for flags, want := range map[uint32]string{
		0: "---", OpenRead: "r--", OpenWrite: "-w-", OpenRead | OpenWrite: "rw-", OpenTrunc: "-w-",
		OpenAppend | OpenRead: "rw-", OpenExec | OpenRead | OpenWrite: "--x", OpenCreate: "---",
	} {
		if got := ModeString(flags); got != want {
			t.Errorf("ModeString(%#x) = %q, want %q", flags, got, want)
		}
	}
}

func TestJSON(t *testing.T) {
	r := Record{Index: 7, Type: CLOpen, Flags: 1, Time: ts("09:14:10.500000000 2026.08.19"), TFID: fid.MustParse("[0x200000402:0x3:0x0]"),
		JobID: "cat.0", ExtraFlags: credExtra | ExtraOpen, UID: 0, GID: 0, NID: "0@lo", OpenFlags: OpenRead}
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"index": 7.0, "type": "OPEN", "type_num": 10.0, "flags": "0x1", "time": "2026-08-19T09:14:10.5Z",
		"time_ns": float64(r.Time.UnixNano()), "target": "[0x200000402:0x3:0x0]", "jobid": "cat.0", "extra_flags": "0x17",
		"uid": 0.0, "gid": 0.0, "nid": "0@lo", "mode": "r--", "open_flags": "0x1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON:\n got %v\nwant %v", got, want)
	}
}

func genFID(t *rapid.T, label string) fid.FID {
	if rapid.Bool().Draw(t, label+"zero") {
		return fid.FID{}
	}
	return fid.FID{Seq: rapid.Uint64().Draw(t, label+"seq"), Oid: rapid.Uint32().Draw(t, label+"oid"), Ver: rapid.Uint32().Draw(t, label+"ver")}
}

func genRecord(t *rapid.T) *Record {
	r := &Record{
		Index:      Index(rapid.Uint64().Draw(t, "index")),
		Type:       Type(rapid.IntRange(0, NumTypes-1).Draw(t, "type")),
		Flags:      rapid.Uint16().Draw(t, "flags"),
		TFID:       genFID(t, "t"),
		PFID:       genFID(t, "p"),
		Name:       rapid.StringN(0, 20, MaxName).Draw(t, "name"),
		JobID:      rapid.StringN(0, 10, MaxJobID).Draw(t, "jobid"),
		ExtraFlags: rapid.Uint64().Draw(t, "ef"),
		NID:        rapid.StringN(0, 10, 64).Draw(t, "nid"),
		OpenFlags:  rapid.Uint32().Draw(t, "open"),
		XattrName:  rapid.StringN(0, 10, 255).Draw(t, "x"),
	}
	if ns := rapid.Int64().Draw(t, "time"); ns != 0 {
		r.Time = time.Unix(0, ns)
	}
	if r.ExtraFlags&ExtraUIDGID != 0 {
		r.UID, r.GID = rapid.Uint64().Draw(t, "uid"), rapid.Uint64().Draw(t, "gid")
	}
	if rapid.Bool().Draw(t, "rename") {
		r.SFID, r.SPFID, r.SName = genFID(t, "s"), genFID(t, "sp"), rapid.StringN(0, 20, MaxName).Draw(t, "sname")
	}
	return r
}

func TestCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRecord(t)
		b := Encode(r)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		if typ, ok := PeekType(b); !ok || typ != r.Type {
			t.Fatalf("PeekType = %v %v", typ, ok)
		}
		if idx, ok := PeekIndex(b); !ok || idx != r.Index {
			t.Fatalf("PeekIndex = %v %v", idx, ok)
		}
	})
}

func TestDecodeRejects(t *testing.T) {
	good := Encode(&Record{Index: 1, Type: CLCreate, Name: "x", JobID: "j"})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{2}, good[1:]...),
		"short":       good[:hdrSize-1],
		"truncated":   good[:len(good)-1],
		"trailing":    append(append([]byte{}, good...), 0),
		"bad type":    func() []byte { c := append([]byte{}, good...); c[offType] = 99; return c }(),
		"bad present": func() []byte { c := append([]byte{}, good...); c[60] = 0x80; return c }(),
	} {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: Decode succeeded", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(&Record{Index: 1, Type: CLCreate, Name: "x", JobID: "j", NID: "0@lo", ExtraFlags: credExtra}))
	f.Add(Encode(&Record{Index: 2, Type: CLRename, SFID: fid.Root, SName: "a", Name: "b"}))
	f.Add([]byte{1})
	chained := EncodeChained(&Record{Index: 3, Type: CLMkdir, Name: "d"})
	Seal(chained, Hash{})
	f.Add(chained)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to an encoding of the same record
		// (with its hash, for a chained one).
		again, err := Decode(AppendStored(nil, r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encode of %x: %+v, %v; want %+v", b, again, err, r)
		}
		_ = r.Line()
	})
}

// TestDecodeIntoShared: records decoded with one string builder are the
// records Decode gives, their strings stay intact while the builder grows
// with the next records' (and when it outgrows the room made for it), and
// a batch grown by StringBytes decodes its strings in one allocation, not
// one a string.
func TestDecodeIntoShared(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 20).Draw(t, "n")
		var want []*Record
		var raws [][]byte
		room := 0
		for range n {
			r := genRecord(t)
			b := Encode(r)
			if rapid.Bool().Draw(t, "chained") {
				r.Hash = ChainHash(Hash{}, AppendEncodeChained(nil, r))
				b = AppendStored(nil, r)
			}
			want, raws = append(want, r), append(raws, b)
			room += StringBytes(b)
		}
		var strs strings.Builder
		if rapid.Bool().Draw(t, "grown") {
			strs.Grow(room)
		}
		got := make([]Record, n)
		for i, b := range raws {
			if err := DecodeIntoShared(&got[i], b, &strs); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		for i := range got {
			if !reflect.DeepEqual(&got[i], want[i]) {
				t.Fatalf("record %d:\n got %+v\nwant %+v", i, &got[i], want[i])
			}
		}
		if strs.Len() > room {
			t.Fatalf("strings took %d bytes, StringBytes bounds them at %d", strs.Len(), room)
		}
	})
	var raws [][]byte
	room := 0
	for i := range 100 {
		b := Encode(&Record{Index: Index(i + 1), Type: CLCreate, Name: fmt.Sprintf("name-%d", i), JobID: "job.0",
			ExtraFlags: ExtraNID | ExtraXattr, NID: "0@lo", XattrName: "user.x", SName: "old", SFID: fid.Root})
		raws, room = append(raws, b), room+StringBytes(b)
	}
	recs := make([]Record, len(raws))
	strs := new(strings.Builder) // kept, as a decoder keeps it
	if n := testing.AllocsPerRun(10, func() {
		*strs = strings.Builder{}
		strs.Grow(room)
		for i, b := range raws {
			if err := DecodeIntoShared(&recs[i], b, strs); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 1 {
		t.Errorf("decoding the strings of %d records: %.0f allocations, want 1", len(raws), n)
	}
}
