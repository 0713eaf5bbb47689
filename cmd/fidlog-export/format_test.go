package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// ndjsonRecord is the ndjson format as a struct, for encoding/json to
// check appendNDJSON against.
type ndjsonRecord struct {
	SchemaVersion string  `json:"schemaVersion"`
	Time          string  `json:"time"`
	Device        string  `json:"device"`
	Index         uint64  `json:"index"`
	Type          string  `json:"type"`
	Flags         string  `json:"flags"`
	Target        string  `json:"target"`
	Parent        string  `json:"parent,omitempty"`
	Name          string  `json:"name,omitempty"`
	NameB64       string  `json:"name_b64,omitempty"`
	Path          string  `json:"path,omitempty"`
	PathB64       string  `json:"path_b64,omitempty"`
	Source        string  `json:"source,omitempty"`
	SrcParent     string  `json:"source_parent,omitempty"`
	SrcName       string  `json:"source_name,omitempty"`
	SrcNameB64    string  `json:"source_name_b64,omitempty"`
	SrcPath       string  `json:"source_path,omitempty"`
	SrcPathB64    string  `json:"source_path_b64,omitempty"`
	UID           *uint64 `json:"uid,omitempty"`
	GID           *uint64 `json:"gid,omitempty"`
	NID           string  `json:"nid,omitempty"`
	JobID         string  `json:"jobid,omitempty"`
	Mode          string  `json:"mode,omitempty"`
	OpenFlags     string  `json:"open_flags,omitempty"`
	Xattr         string  `json:"xattr,omitempty"`
	DeniedOp      string  `json:"denied_op,omitempty"`
	Errno         uint16  `json:"errno,omitempty"`
	Hash          string  `json:"hash,omitempty"`
	Raw           string  `json:"raw"`
}

func ndjsonReference(e *event) []byte {
	r := e.rec
	j := ndjsonRecord{
		SchemaVersion: ndjsonSchema,
		Time:          r.Time.UTC().Format(rfc3339Fixed),
		Device:        e.dev,
		Index:         uint64(r.Index),
		Type:          r.Type.String(),
		Flags:         "0x" + strconv.FormatUint(uint64(r.Flags&changelog.FlagMask), 16),
		Target:        r.TFID.String(),
		Name:          r.Name,
		NameB64:       changelog.NameB64(r.Name),
		Path:          e.path,
		PathB64:       changelog.NameB64(e.path),
		JobID:         r.JobID,
	}
	if !r.PFID.IsZero() {
		j.Parent = r.PFID.String()
	}
	if !r.SFID.IsZero() {
		j.Source, j.SrcParent, j.SrcName, j.SrcPath = r.SFID.String(), r.SPFID.String(), r.SName, e.spath
		j.SrcNameB64, j.SrcPathB64 = changelog.NameB64(r.SName), changelog.NameB64(e.spath)
	}
	if r.ExtraFlags&changelog.ExtraUIDGID != 0 {
		uid, gid := r.UID, r.GID
		j.UID, j.GID = &uid, &gid
	}
	if r.ExtraFlags&changelog.ExtraNID != 0 {
		j.NID = r.NID
	}
	if r.ExtraFlags&changelog.ExtraOpen != 0 {
		j.Mode = changelog.ModeString(r.OpenFlags)
		j.OpenFlags = "0x" + strconv.FormatUint(uint64(r.OpenFlags), 16)
	}
	if r.ExtraFlags&changelog.ExtraXattr != 0 {
		j.Xattr = r.XattrName
	}
	if r.Type == changelog.CLDenied {
		op, errno := r.Denied()
		j.DeniedOp, j.Errno = op.String(), errno
	}
	if !r.Hash.IsZero() {
		j.Hash = r.Hash.String()
	}
	j.Raw = base64.StdEncoding.EncodeToString(changelog.AppendStored(nil, r))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&j); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// TestNDJSONMatchesEncodingJSON: the hand-written ndjson renderer writes
// exactly what encoding/json writes for the same fields, for any record
// (names with quotes, control characters, invalid UTF-8 included; any
// time, numbers to their largest).
func TestNDJSONMatchesEncodingJSON(t *testing.T) {
	str := rapid.OneOf(
		rapid.String(),
		rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) }),
		rapid.SampledFrom([]string{"", "a\"b\\c", "\x00\x1f\x7f\b\f\n\r\t", "\xff\xfe", "\u2028\u2029", "<&>", "é日本"}),
	)
	fidGen := rapid.Custom(func(t *rapid.T) fid.FID {
		if rapid.Bool().Draw(t, "zero") {
			return fid.FID{}
		}
		return fid.FID{Seq: rapid.Uint64().Draw(t, "seq"), Oid: rapid.Uint32().Draw(t, "oid"), Ver: rapid.Uint32().Draw(t, "ver")}
	})
	// Times as the codec decodes them (the zero Time for 0, any int64 of
	// nanoseconds: 1677-2262), and years outside 0000-9999.
	timeGen := rapid.OneOf(
		rapid.Map(rapid.Int64(), func(ns int64) time.Time { return time.Unix(0, ns) }),
		rapid.Just(time.Time{}),
		rapid.Map(rapid.Int64Range(-1<<40, 1<<40), func(s int64) time.Time { return time.Unix(s, 999999999) }),
	)
	rapid.Check(t, func(t *rapid.T) {
		r := &changelog.Record{
			Index: changelog.Index(rapid.Uint64Min(1).Draw(t, "index")),
			Type:  changelog.Type(rapid.IntRange(0, changelog.NumTypes-1).Draw(t, "type")),
			Flags: rapid.Uint16().Draw(t, "flags"),
			Time:  timeGen.Draw(t, "time"),
			TFID:  fidGen.Draw(t, "tfid"), PFID: fidGen.Draw(t, "pfid"), SFID: fidGen.Draw(t, "sfid"), SPFID: fidGen.Draw(t, "spfid"),
			Name: str.Draw(t, "name"), SName: str.Draw(t, "sname"), JobID: str.Draw(t, "jobid"),
			ExtraFlags: rapid.Uint64Range(0, 0x1f).Draw(t, "ef"),
			UID:        rapid.Uint64().Draw(t, "uid"), GID: rapid.Uint64().Draw(t, "gid"),
			NID: str.Draw(t, "nid"), OpenFlags: rapid.Uint32().Draw(t, "open"), XattrName: str.Draw(t, "xattr"),
		}
		if rapid.Bool().Draw(t, "chained") { // hash and a version 2 raw
			copy(r.Hash[:], rapid.SliceOfN(rapid.Byte(), changelog.HashSize, changelog.HashSize).Draw(t, "hash"))
		}
		e := &event{dev: str.Draw(t, "dev"), rec: r, path: str.Draw(t, "path"), spath: str.Draw(t, "spath")}
		if rapid.Bool().Draw(t, "received") { // the stored bytes, as a chain follow hands them
			e.raw = changelog.AppendStored(nil, r)
		}
		got, want := appendNDJSON(nil, e), ndjsonReference(e)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendNDJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	})
}

// TestLinesOneBuffer: a delivery's lines, rendered into one buffer, are
// each format's line of each event (nil for a checkpoint a format cannot
// carry); appending to one line leaves the next intact; and rendering
// 100 records allocates a few times, not once or more a line.
func TestLinesOneBuffer(t *testing.T) {
	var evs []*event
	for i := range 100 {
		r := &changelog.Record{Index: changelog.Index(i + 1), Type: changelog.CLCreate, Time: time.Unix(1795550778, int64(i)),
			TFID: fid.FID{Seq: 0x200000400, Oid: uint32(i + 2)}, PFID: fid.Root, Name: "f\x00é\xff" + strconv.Itoa(i),
			ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID, NID: "0@lo", JobID: "cp.0"}
		r.Hash[0] = byte(i)
		evs = append(evs, &event{dev: "lustre-MDT0000", rec: r, path: "/" + r.Name})
		if i == 50 {
			evs = append(evs, &event{dev: "lustre-MDT0000", anchor: &changelog.Anchor{Index: 7}})
		}
	}
	for _, f := range formats {
		ls := f.lines(evs, &lineBuffers{})
		if len(ls) != len(evs) {
			t.Fatalf("%s: %d lines for %d events", f.name, len(ls), len(evs))
		}
		for i, e := range evs {
			if want := f.line(e); !bytes.Equal(ls[i], want) || (ls[i] == nil) != (want == nil) {
				t.Fatalf("%s: line %d = %q, want %q", f.name, i, ls[i], want)
			}
		}
		next := bytes.Clone(ls[1])
		_ = append(ls[0], "XXXXXXXX"...)
		if !bytes.Equal(ls[1], next) {
			t.Fatalf("%s: appending to line 0 changed line 1 to %q", f.name, ls[1])
		}
	}
	recs := slices.DeleteFunc(slices.Clone(evs), func(e *event) bool { return !e.isRecord() })
	if n := testing.AllocsPerRun(10, func() { formats["ndjson"].lines(recs, &lineBuffers{}) }); n > 10 {
		t.Errorf("ndjson lines of %d records: %.0f allocations, want a few (one buffer, grown if the lines are long)", len(recs), n)
	}
	// Buffers reused from a delivery as large: the same lines, rendered
	// without allocating.
	var lb lineBuffers
	first := slices.Clone(formats["ndjson"].lines(evs, &lb))
	for i, l := range first {
		first[i] = bytes.Clone(l)
	}
	if n := testing.AllocsPerRun(10, func() { formats["ndjson"].lines(recs, &lb) }); n != 0 {
		t.Errorf("ndjson lines of %d records into reused buffers: %.0f allocations, want 0", len(recs), n)
	}
	for i, l := range formats["ndjson"].lines(evs, &lb) {
		if !bytes.Equal(l, first[i]) || (l == nil) != (first[i] == nil) {
			t.Fatalf("reused buffers: line %d = %q, want %q", i, l, first[i])
		}
	}
}

// TestLineBuffersReuse: a delivery's rendering buffers are kept for the
// next one when no sink of the format keeps its lines (files, syslog), and
// fresh for each delivery when one does (JetStream, whose publishes hold
// their lines).
func TestLineBuffersReuse(t *testing.T) {
	mk := func(urls ...string) *exporter {
		x := &exporter{}
		for _, u := range urls {
			s, err := parseSink(u, sinkEnv{})
			if err != nil {
				t.Fatal(err)
			}
			x.sinks = append(x.sinks, &sinkState{s: s})
		}
		return x
	}
	dir := t.TempDir()
	file, nats, syslog := "file://"+dir+"?format=ndjson", "nats://127.0.0.1:4222?format=ndjson", "syslog+tcp://127.0.0.1:514?format=ndjson"
	for _, tc := range []struct {
		name  string
		urls  []string
		reuse bool
	}{
		{"file", []string{file}, true},
		{"syslog", []string{syslog}, true},
		{"nats", []string{nats}, false},
		{"file and nats", []string{file, nats}, false},
	} {
		x := mk(tc.urls...)
		f := formats["ndjson"]
		if got := x.lineBuffers(f) == x.lineBuffers(f); got != tc.reuse {
			t.Errorf("%s: buffers reused = %v, want %v", tc.name, got, tc.reuse)
		}
	}
}

// TestNDJSONCarriesReceivedRaw: a record's ndjson line carries the stored
// bytes the source received (event.raw) as they are, not the record
// encoded again: here an encoding the encoder never writes (uid/gid present
// without the extra flag that says so), whose chain hash covers exactly
// those bytes.
func TestNDJSONCarriesReceivedRaw(t *testing.T) {
	r := &changelog.Record{Index: 7, Type: changelog.CLCreate, Time: time.Unix(1795550778, 1),
		TFID: fid.FID{Seq: 0x200000400, Oid: 9}, PFID: fid.Root, Name: "f", ExtraFlags: changelog.ExtraUIDGID}
	b := changelog.AppendEncodeChained(nil, r)
	b[52] = 0 // the extra flags' low byte
	changelog.Seal(b, changelog.Hash{})
	dec, err := changelog.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	line := appendNDJSON(nil, &event{dev: "lustre-MDT0000", rec: dec, path: "/f", raw: b})
	var v struct{ Raw []byte }
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Raw, b) {
		t.Fatalf("raw %x, want the bytes received %x", v.Raw, b)
	}
}
