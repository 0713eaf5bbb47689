package changelog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/fid"
)

// exportLines builds the NDJSON lines of a chained log: an anchor, n
// records from index first, and a checkpoint signed by key every few
// records. It returns the lines and, per line, the index of the record it
// is or precedes.
func exportLines(t *rapid.T, key ed25519.PrivateKey, first Index, n int) ([][]byte, []Index) {
	prev := Hash{}
	if first > 1 {
		prev = ChainHash(Hash{}, []byte("purged"))
	}
	var lines [][]byte
	var at []Index
	add := func(item []byte, idx Index) {
		l, err := ItemJSON(item)
		if err != nil {
			t.Fatal(err)
		}
		lines, at = append(lines, l), append(at, idx)
	}
	add(AppendAnchor(nil, Anchor{Index: first - 1, Hash: prev}), first)
	seq := uint64(3)
	every := rapid.IntRange(1, 6).Draw(t, "every")
	for i := range n {
		idx := first + Index(i)
		if i > 0 && i%every == 0 {
			c := &Checkpoint{Position: idx, Seq: seq, Index: idx - 1, Hash: prev, Time: time.Unix(1700000000, int64(i)),
				Kind: CheckpointPeriodic, Device: "lustre-MDT0000"}
			c.Sign(key)
			seq++
			add(c.AppendEncode(nil), idx)
		}
		r := &Record{Index: idx, Type: CLCreate, Time: time.Unix(1700000000, int64(i)), TFID: fid.FID{Seq: fid.SeqNormal, Oid: uint32(i + 1)},
			PFID: fid.Root, Name: rapid.StringMatching(`[a-z\-]{1,10}`).Draw(t, "name"), ExtraFlags: ExtraUIDGID | ExtraNID, UID: 500, GID: 500, NID: "0@lo"}
		b := EncodeChained(r)
		prev = Seal(b, prev)
		add(b, idx)
	}
	return lines, at
}

func verifyLines(key ed25519.PublicKey, lines [][]byte) error {
	v := NewVerifier(key)
	for _, l := range lines {
		if err := v.JSONLine(l); err != nil {
			return err
		}
	}
	return nil
}

// TestExportedLinesTamperProperty: any single-byte change, deletion of a
// record line, insertion (a copy of another line) or reordering of the
// exported NDJSON lines is detected at the index of the first record line
// at or after the change.
func TestExportedLinesTamperProperty(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	rapid.Check(t, func(rt *rapid.T) {
		first := Index(rapid.IntRange(1, 1000).Draw(rt, "first"))
		n := rapid.IntRange(2, 20).Draw(rt, "records")
		lines, at := exportLines(rt, key, first, n)
		if err := verifyLines(pub, lines); err != nil {
			rt.Fatalf("untouched export: %v", err)
		}
		out := append([][]byte(nil), lines...)
		var p int
		anchorLine := false
		switch op := rapid.SampledFrom([]string{"byte", "delete", "insert", "reorder"}).Draw(rt, "op"); op {
		case "byte":
			p = rapid.IntRange(0, len(lines)-1).Draw(rt, "line")
			l := bytes.Clone(lines[p])
			off := rapid.IntRange(0, len(l)-1).Draw(rt, "offset")
			l[off] ^= byte(rapid.IntRange(1, 255).Draw(rt, "xor"))
			out[p] = l
			anchorLine = p == 0
		case "delete":
			// Record lines: a deleted checkpoint shows at the next one
			// (sequence gap), a deleted anchor leaves the first link
			// unchecked (the summary says so).
			var recs []int
			for i, l := range lines {
				if KindOfLine(l) == ItemRecord {
					recs = append(recs, i)
				}
			}
			p = rapid.SampledFrom(recs).Draw(rt, "line")
			if p == len(lines)-1 {
				return // a cut tail: End catches it against the log's index
			}
			out = append(out[:p:p], lines[p+1:]...)
		case "insert":
			p = rapid.IntRange(1, len(lines)).Draw(rt, "at")
			src := rapid.IntRange(0, len(lines)-1).Draw(rt, "src")
			if p == len(lines) && KindOfLine(lines[src]) == ItemCheckpoint {
				return // a trailing checkpoint copy is caught by its sequence number only if one follows
			}
			if KindOfLine(lines[src]) == ItemAnchor {
				// A copy of the anchor restates what the chain already
				// has (as a restarted JetStream or syslog export writes
				// it): accepted, and it changes nothing proven.
				out = append(append(append([][]byte(nil), lines[:p]...), lines[src]), lines[p:]...)
				if err := verifyLines(pub, out); err != nil {
					rt.Fatalf("restated anchor at line %d: %v", p, err)
				}
				return
			}
			out = append(append(append([][]byte(nil), lines[:p]...), lines[src]), lines[p:]...)
		case "reorder":
			p = rapid.IntRange(1, len(lines)-2).Draw(rt, "i")
			q := rapid.IntRange(p+1, len(lines)-1).Draw(rt, "j")
			out[p], out[q] = lines[q], lines[p]
		}
		// The right index: that of the first line that differs from the
		// export (a copy next to its original differs only after it).
		p = 0
		for p < len(out) && p < len(lines) && bytes.Equal(out[p], lines[p]) {
			p++
		}
		want := first + Index(n)
		if p < len(at) {
			want = at[p]
		}
		err := verifyLines(pub, out)
		var ve *VerifyError
		if !errors.As(err, &ve) {
			rt.Fatalf("tampering at line %d (index %d) not detected: %v", p, want, err)
		}
		if ve.Index != want && !(anchorLine && ve.Index <= want) {
			rt.Fatalf("tampering at line %d: reported %v, want index %d", p, ve, want)
		}
	})
}

// KindOfLine classifies an export line (test helper).
func KindOfLine(l []byte) ItemKind {
	switch {
	case bytes.HasPrefix(l, []byte(`{"checkpoint"`)):
		return ItemCheckpoint
	case bytes.HasPrefix(l, []byte(`{"anchor"`)):
		return ItemAnchor
	}
	return ItemRecord
}

// TestCheckpointForgedKey: a checkpoint signed by another key is rejected,
// as is one whose signed fields were changed.
func TestCheckpointForgedKey(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	c := &Checkpoint{Position: 2, Seq: 1, Index: 1, Time: time.Unix(1, 0), Kind: CheckpointPeriodic, Device: "x"}
	c.Sign(other)
	v := NewVerifier(key.Public().(ed25519.PublicKey))
	if err := v.Checkpoint(c); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged checkpoint: %v", err)
	}
	c.Sign(key)
	c.Index = 2
	if err := NewVerifier(key.Public().(ed25519.PublicKey)).Checkpoint(c); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered checkpoint: %v", err)
	}
	got, err := DecodeCheckpoint(c.AppendEncode(nil))
	if err != nil || got.Index != 2 || !bytes.Equal(got.Sig, c.Sig) || got.Device != "x" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

// TestParsePublicKeys: the parameter form, base64, hex and PEM.
func TestParsePublicKeys(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, in := range []string{FormatPublicKey(pub), FormatPublicKey(pub)[8:], fmt.Sprintf("%x", []byte(pub)), "# comment\n\n" + FormatPublicKey(pub) + "\n"} {
		keys, err := ParsePublicKeys([]byte(in))
		if err != nil || len(keys) != 1 || !keys[0].Equal(pub) {
			t.Fatalf("%q: %v %v", in, keys, err)
		}
	}
	if _, err := ParsePublicKeys([]byte("ed25519:nope")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad key: %v", err)
	}
}

// TestCodecV2RoundTrip: chained encodings decode with their hash; version
// 1 ones without.
func TestCodecV2RoundTrip(t *testing.T) {
	r := &Record{Index: 7, Type: CLMkdir, Time: time.Unix(5, 6), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 3}, PFID: fid.Root, Name: "d"}
	b := EncodeChained(r)
	h := Seal(b, Hash{1})
	got, err := Decode(b)
	if err != nil || got.Hash != h || got.Name != "d" || got.Index != 7 {
		t.Fatalf("v2: %+v %v", got, err)
	}
	if idx, ok := PeekIndex(b); !ok || idx != 7 {
		t.Fatal("PeekIndex v2")
	}
	got, err = Decode(Encode(r))
	if err != nil || !got.Hash.IsZero() {
		t.Fatalf("v1: %+v %v", got, err)
	}
	if line := got.AppendLineHash(nil); !bytes.HasSuffix(line, []byte(" h=-")) {
		t.Fatalf("line %s", line)
	}
}

// BenchmarkSeal is the chain's whole cost under the sequencer's lock: one
// SHA-256 over a typical CREAT record (uid/gid, NID, jobid, name).
func BenchmarkSeal(b *testing.B) {
	r := &Record{Index: 1, Type: CLCreate, Time: time.Now(), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 7}, PFID: fid.Root,
		Name: "file-000123.dat", JobID: "touch.1234", ExtraFlags: ExtraUIDGID | ExtraNID, UID: 500, GID: 500, NID: "192.168.1.10@tcp"}
	buf := EncodeChained(r)
	b.SetBytes(int64(len(buf)))
	var s Sealer
	var h Hash
	for b.Loop() {
		h = s.Seal(buf, h)
	}
}

// BenchmarkEncodeChained is the encoding of a typical CREAT, done by each
// writer before it queues for the sequencer.
func BenchmarkEncodeChained(b *testing.B) {
	r := &Record{Index: 1, Type: CLCreate, Time: time.Now(), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 7}, PFID: fid.Root,
		Name: "file-000123.dat", JobID: "touch.1234", ExtraFlags: ExtraUIDGID | ExtraNID, UID: 500, GID: 500, NID: "192.168.1.10@tcp"}
	for b.Loop() {
		_ = EncodeChained(r)
	}
}

// TestEncodeAllocs: encoding a record allocates once and sealing it not
// at all (both run for every record on the write path).
func TestEncodeAllocs(t *testing.T) {
	r := &Record{Index: 1, Type: CLRename, Time: time.Now(), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 7}, PFID: fid.Root,
		SFID: fid.FID{Seq: fid.SeqNormal, Oid: 8}, SPFID: fid.Root, SName: strings.Repeat("s", 255), Name: strings.Repeat("n", 255),
		JobID: strings.Repeat("j", MaxJobID), ExtraFlags: ExtraUIDGID | ExtraNID | ExtraOpen | ExtraXattr,
		UID: 1 << 63, GID: 1 << 63, NID: "192.168.1.10@tcp", OpenFlags: 1 << 31, XattrName: "user.x"}
	var s Sealer
	var h Hash
	buf := EncodeChained(r)
	if n := testing.AllocsPerRun(100, func() { buf = EncodeChained(r) }); n != 1 {
		t.Errorf("EncodeChained: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Encode(r) }); n != 1 {
		t.Errorf("Encode: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { h = s.Seal(buf, h) }); n != 0 {
		t.Errorf("Seal: %v allocations", n)
	}
	if got := Seal(buf, Hash{}); got != ChainHash(Hash{}, buf[:len(buf)-HashSize]) {
		t.Errorf("Seal = %v, ChainHash %v", got, ChainHash(Hash{}, buf[:len(buf)-HashSize]))
	}
}

// FuzzDecodeCheckpoint: the checkpoint decoder never panics, and what
// decodes re-encodes to the same bytes.
func FuzzDecodeCheckpoint(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := &Checkpoint{Position: 5, Seq: 2, Index: 4, Time: time.Unix(7, 8), Kind: CheckpointPeriodic, Device: "lustre-MDT0000"}
	c.Sign(key)
	f.Add(c.AppendEncode(nil))
	r := &Checkpoint{Position: 9, Seq: 3, Index: 8, Time: time.Unix(9, 0), Kind: CheckpointRotation, Device: "x", Next: key.Public().(ed25519.PublicKey)}
	r.Sign(key)
	f.Add(r.AppendEncode(nil))
	f.Add([]byte{checkpointTag})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCheckpoint(b)
		if err != nil {
			return
		}
		if again := c.AppendEncode(nil); !bytes.Equal(again, b) {
			t.Fatalf("re-encode of %x is %x", b, again)
		}
		if seq := CheckpointSeq(b); seq != c.Seq {
			t.Fatalf("CheckpointSeq of %x is %d, the decoder says %d", b, seq, c.Seq)
		}
		_ = c.SignatureValid()
	})
}

// FuzzVerifierJSONLine: no line makes the verifier panic.
func FuzzVerifierJSONLine(f *testing.F) {
	r := &Record{Index: 1, Type: CLCreate, Time: time.Unix(1, 2), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 1}, PFID: fid.Root, Name: "a"}
	b := EncodeChained(r)
	Seal(b, Hash{})
	line, _ := ItemJSON(b)
	f.Add(line)
	anchor, _ := ItemJSON(AppendAnchor(nil, Anchor{}))
	f.Add(anchor)
	f.Add([]byte(`{"checkpoint":{"raw":"gQ=="}}`))
	f.Fuzz(func(t *testing.T, l []byte) {
		v := NewVerifier()
		_ = v.JSONLine(anchor)
		_ = v.JSONLine(l)
	})
}

// TestExportJSONVerifies: for any record, the export line AppendExportJSON
// writes (fidlog-export's ndjson) carries every field of the record's JSON
// view that the verifier requires, with the same value: the offline
// verifier accepts it, and rejects it once a field is dropped.
func TestExportJSONVerifies(t *testing.T) {
	str := rapid.OneOf(rapid.StringMatching(`[ -~]{0,12}`), rapid.SampledFrom([]string{"caf\xe9", "\u2028", "a\"b\\c\n", ""}))
	rapid.Check(t, func(rt *rapid.T) {
		r := &Record{
			Index: Index(rapid.Uint64Range(1, 1<<40).Draw(rt, "index")),
			Type:  Type(rapid.IntRange(0, NumTypes-1).Draw(rt, "type")),
			Flags: uint16(rapid.IntRange(0, 0xfff).Draw(rt, "flags")),
			Time:  time.Unix(0, rapid.Int64Range(0, 1<<62).Draw(rt, "time")),
			TFID:  fid.FID{Seq: fid.SeqNormal, Oid: rapid.Uint32().Draw(rt, "oid")}, PFID: fid.Root,
			Name: rapid.StringMatching(`[a-z]{1,8}`).Draw(rt, "name"), JobID: str.Draw(rt, "jobid"),
			ExtraFlags: rapid.Uint64Range(0, 0xf).Draw(rt, "ef"), UID: rapid.Uint64().Draw(rt, "uid"), GID: 7,
			NID: "0@lo", OpenFlags: rapid.Uint32().Draw(rt, "open"), XattrName: rapid.StringMatching(`user\.[a-z]{1,5}`).Draw(rt, "xattr"),
		}
		if rapid.Bool().Draw(rt, "rename") {
			r.SFID, r.SPFID, r.SName = fid.FID{Seq: fid.SeqNormal, Oid: 9}, fid.Root, str.Draw(rt, "sname")
		}
		b := EncodeChained(r)
		prev := Hash{9}
		Seal(b, prev)
		dec, err := Decode(b)
		if err != nil {
			rt.Fatal(err)
		}
		line := AppendExportJSON(nil, dec, ExportFields{Device: "lustre-MDT0000", Path: "/x/" + dec.Name})
		v := NewVerifier()
		if err := v.Anchor(Anchor{Index: r.Index - 1, Hash: prev}); err != nil {
			rt.Fatal(err)
		}
		if err := v.JSONLine(line); err != nil {
			rt.Fatalf("%s: %v", line, err)
		}
		// Without its type, or its hash, the line no longer verifies.
		for _, key := range []string{`"type":"`, `"hash":"`} {
			i := bytes.Index(line, []byte(key))
			j := i + bytes.IndexByte(line[i+len(key):], '"') + len(key) + 1
			cut := append(bytes.Clone(line[:i-1]), line[j:]...)
			v := NewVerifier()
			_ = v.Anchor(Anchor{Index: r.Index - 1, Hash: prev})
			if err := v.JSONLine(cut); !errors.Is(err, ErrTampered) {
				rt.Fatalf("%s verified without %s: %v", cut, key, err)
			}
		}
	})
}

// TestAnchorRestated: inside a stream, an anchor that restates a hash the
// chain has, or one before the verified range (a stream read from its
// middle), changes nothing; one that contradicts the chain is inserted.
func TestAnchorRestated(t *testing.T) {
	prev := Hash{}
	var raws [][]byte
	var hashes []Hash
	for i := range 5 {
		r := &Record{Index: Index(10 + i), Type: CLCreate, Time: time.Unix(1, 0), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 1}, PFID: fid.Root, Name: "n"}
		b := EncodeChained(r)
		prev = Seal(b, prev)
		raws, hashes = append(raws, b), append(hashes, prev)
	}
	for _, tc := range []struct {
		a  Anchor
		ok bool
	}{
		{Anchor{Index: 11, Hash: hashes[1]}, true},  // restates record 11
		{Anchor{Index: 5, Hash: Hash{7}}, true},     // before record 10, the first seen
		{Anchor{Index: 11, Hash: Hash{7}}, false},   // contradicts record 11
		{Anchor{Index: 14, Hash: hashes[4]}, false}, // not written yet at that point
	} {
		v := NewVerifier()
		var err error
		for i, b := range raws {
			if err = v.Record(b); err != nil {
				t.Fatal(err)
			}
			if i == 2 {
				err = v.Anchor(tc.a)
				if err != nil {
					break
				}
			}
		}
		if (err == nil) != tc.ok {
			t.Errorf("anchor %+v: %v", tc.a, err)
		}
		if tc.ok && v.Summary().Last != 14 {
			t.Errorf("anchor %+v: summary %+v", tc.a, v.Summary())
		}
	}
}
