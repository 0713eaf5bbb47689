package changelog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/fid"
)

// TestAppendTimeFixed: the hand-written time of an export line is the
// bytes of time.AppendFormat in UTC with nine digits, for any time: the
// zero Time, before 1970, across leap days and centuries, and past the
// years 0000-9999 (where it falls back to AppendFormat), in any location.
func TestAppendTimeFixed(t *testing.T) {
	const year = 365*86400 + 86400/4
	edges := []time.Time{
		{}, time.Unix(0, 0), time.Unix(-1, 0), time.Unix(0, -1), time.Unix(-1, 999999999),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 29, 12, 0, 0, 1, time.UTC), time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 2, 28, 23, 59, 59, 0, time.UTC), time.Date(1600, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 1<<63-1), time.Unix(0, -1<<63), time.Date(2026, 11, 24, 20, 6, 18, 603400155, time.FixedZone("x", -7*3600-1800)),
	}
	for _, tm := range edges {
		if got, want := string(AppendTimeFixed([]byte("x"), tm)), "x"+tm.UTC().Format(rfc3339Fixed); got != want {
			t.Errorf("AppendTimeFixed(%v) = %q, want %q", tm, got, want)
		}
	}
	if t.Failed() {
		return
	}
	rapid.Check(t, func(t *rapid.T) {
		var tm time.Time
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 0: // as the codec decodes it
			tm = time.Unix(0, rapid.Int64().Draw(t, "ns"))
		case 1: // years -1000..11000
			tm = time.Unix(rapid.Int64Range(-2970*year, 9030*year).Draw(t, "sec"), rapid.Int64Range(0, 999999999).Draw(t, "nsec"))
		default:
			tm = time.Unix(rapid.Int64Range(-1<<62, 1<<62).Draw(t, "sec"), rapid.Int64Range(0, 999999999).Draw(t, "nsec"))
		}
		tm = tm.In(time.FixedZone("z", rapid.IntRange(-14*3600, 14*3600).Draw(t, "zone")))
		if got, want := string(AppendTimeFixed(nil, tm)), tm.UTC().Format(rfc3339Fixed); got != want {
			t.Fatalf("AppendTimeFixed(%v) = %q, want %q", tm, got, want)
		}
	})
}

// benchExportRecord is a record as BenchmarkExport (cmd/fidlog-export)
// exports it: a chained CREAT in a directory, with uid/gid, NID and job ID.
func benchExportRecord() *Record {
	r := &Record{
		Index: 123456, Type: CLCreate, Time: time.Unix(1795550778, 603400155),
		TFID: fid.FID{Seq: 0x200000400, Oid: 0x1e240, Ver: 0}, PFID: fid.FID{Seq: 0x200000400, Oid: 0x2, Ver: 0},
		Name: "r1-1234", JobID: "fidlog-export.0", ExtraFlags: ExtraUIDGID | ExtraNID, NID: "0@lo",
	}
	r.Hash = ChainHash(Hash{}, AppendEncodeChained(nil, r))
	return r
}

// BenchmarkAppendExportJSON is the exporter's ndjson rendering of one
// record (a fresh line each time, as the exporter renders it).
func BenchmarkAppendExportJSON(b *testing.B) {
	r := benchExportRecord()
	e := ExportFields{Device: "lustre-MDT0000", Path: "/bench/r1-1234"}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n += len(AppendExportJSON(nil, r, e))
	}
	b.SetBytes(int64(n / b.N))
}

// BenchmarkAppendExportJSONReuse is the same into a reused buffer: the
// rendering alone, without growing the line.
func BenchmarkAppendExportJSONReuse(b *testing.B) {
	r := benchExportRecord()
	e := ExportFields{Device: "lustre-MDT0000", Path: "/bench/r1-1234"}
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = AppendExportJSON(buf[:0], r, e)
	}
	b.SetBytes(int64(len(buf)))
}

// TestAppendExportJSONRaw: with the stored bytes given (ExportFields.Raw),
// the line carries them as they are: the same line as re-encoding the
// record for the log's canonical encoding, and the bytes received, not a
// re-encoding, for any other encoding of the same record (here uid/gid
// present without the extra flag that says so, which the encoder never
// writes). The hash covers those bytes: a re-encoded raw would not verify.
func TestAppendExportJSONRaw(t *testing.T) {
	e := ExportFields{Device: "lustre-MDT0000", Path: "/bench/r1-1234"}
	rapid.Check(t, func(t *rapid.T) {
		r := genRecord(t)
		r.Hash = ChainHash(Hash{}, AppendEncodeChained(nil, r))
		withRaw := e
		withRaw.Raw = AppendStored(nil, r)
		if got, want := AppendExportJSON(nil, r, withRaw), AppendExportJSON(nil, r, e); !bytes.Equal(got, want) {
			t.Fatalf("with Raw:\n%s\nwithout:\n%s", got, want)
		}
	})
	r := benchExportRecord()
	r.ExtraFlags = ExtraUIDGID
	b := AppendEncodeChained(nil, r)
	b[52] = 0 // extra flags: uid/gid stay present (0:0)
	Seal(b, Hash{})
	dec, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(AppendStored(nil, dec), b) {
		t.Fatal("the test's encoding is canonical")
	}
	e.Raw = b
	line := AppendExportJSON(nil, dec, e)
	var v struct{ Raw []byte }
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Raw, b) {
		t.Fatalf("raw %x, want the bytes given %x", v.Raw, b)
	}
}

// TestAppendJSONStringMatchesEncodingJSON: the hand-written JSON string
// (runs copied whole) is encoding/json's without HTML escaping, for any
// bytes: quotes, backslashes, control characters, invalid UTF-8,
// U+2028/U+2029, multi-byte runes, at the start, middle and end.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	parts := rapid.SampledFrom([]string{"a", "é", "日本", "\"", "\\", "\x00", "\x1f", "\n", "\t", "\x7f", "\xff", "\xe6\x97", "\u2028", "\u2029", "<&>", "abcdefgh"})
	rapid.Check(t, func(t *rapid.T) {
		var s string
		if rapid.Bool().Draw(t, "bytes") {
			s = string(rapid.SliceOf(rapid.Byte()).Draw(t, "raw"))
		} else {
			for _, p := range rapid.SliceOf(parts).Draw(t, "parts") {
				s += p
			}
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := AppendJSONString([]byte("x"), s); string(got) != "x"+strings.TrimSuffix(want.String(), "\n") {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got[1:], want.String())
		}
	})
}

// TestAppendFIDMatchesAppendTo: an export line's FIDs are fid.FID.AppendTo's
// bytes, for any FID (zero sequence, zero numbers, the largest).
func TestAppendFIDMatchesAppendTo(t *testing.T) {
	for _, f := range []fid.FID{{}, {Seq: 1}, {Seq: 1<<64 - 1, Oid: 1<<32 - 1, Ver: 1<<32 - 1}, {Seq: 0x200000400, Oid: 0x10, Ver: 0xf}} {
		if got, want := appendFID([]byte("x"), f), f.AppendTo([]byte("x")); !bytes.Equal(got, want) {
			t.Errorf("appendFID(%v) = %s, want %s", f, got, want)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		f := fid.FID{Seq: rapid.Uint64().Draw(t, "seq"), Oid: rapid.Uint32().Draw(t, "oid"), Ver: rapid.Uint32().Draw(t, "ver")}
		if rapid.Bool().Draw(t, "small") {
			f.Seq >>= rapid.IntRange(0, 64).Draw(t, "shift")
		}
		if got, want := appendFID(nil, f), f.AppendTo(nil); !bytes.Equal(got, want) {
			t.Fatalf("appendFID(%v) = %s, want %s", f, got, want)
		}
	})
}
