package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// verify runs a full verification of e's log with keys trusted.
func (e *testEnv) verify(keys ...ed25519.PublicKey) (changelog.VerifySummary, error) {
	v := changelog.NewVerifier(keys...)
	err := e.log.Verify(context.Background(), v, 0)
	return v.Summary(), err
}

func (e *testEnv) mustVerify(keys ...ed25519.PublicKey) changelog.VerifySummary {
	e.t.Helper()
	s, err := e.verify(keys...)
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	return s
}

func (e *testEnv) opN(n int, tag string) {
	for i := range n {
		e.op(changelog.CLCreate, fmt.Sprintf("%s%d", tag, i))
	}
}

func (e *testEnv) rawRecord(idx changelog.Index) []byte {
	e.t.Helper()
	v, c, err := e.db.Get(e.log.keys.record(idx))
	if err != nil {
		e.t.Fatalf("record %d: %v", idx, err)
	}
	defer c.Close()
	return append([]byte(nil), v...)
}

func (e *testEnv) setRaw(idx changelog.Index, v []byte) {
	e.t.Helper()
	if err := e.db.Set(e.log.keys.record(idx), v, nil); err != nil {
		e.t.Fatal(err)
	}
}

func wantProblem(t testing.TB, err error, idx changelog.Index, probs ...changelog.Problem) {
	t.Helper()
	var ve *changelog.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("want a verification error at %d, got %v", idx, err)
	}
	if ve.Index != idx {
		t.Fatalf("problem reported at %d, want %d: %v", ve.Index, idx, ve)
	}
	if len(probs) == 0 {
		return
	}
	for _, p := range probs {
		if ve.Problem == p {
			return
		}
	}
	t.Fatalf("problem %v, want one of %v: %v", ve.Problem, probs, ve)
}

// TestChainRecordsHashed: every stored record carries the hash of its
// predecessor's hash and its own bytes, across restarts.
func TestChainRecordsHashed(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.opN(5, "a")
	e.restart()
	e.opN(5, "b")
	var prev changelog.Hash
	for i := changelog.Index(1); i <= 10; i++ {
		raw := e.rawRecord(i)
		h, ok := changelog.StoredHash(raw)
		if !ok {
			t.Fatalf("record %d has no hash", i)
		}
		if want := changelog.ChainHash(prev, raw[:len(raw)-changelog.HashSize]); h != want {
			t.Fatalf("record %d: hash %s, want %s", i, h, want)
		}
		r, err := changelog.Decode(raw)
		if err != nil || r.Hash != h {
			t.Fatalf("decode %d: %v %v", i, r, err)
		}
		prev = h
	}
	if s := e.mustVerify(); s.Records != 10 || s.Last != 10 || !s.Linked {
		t.Fatalf("summary %+v", s)
	}
}

// TestChainTamperProperty: any single-byte change, deletion, insertion or
// reordering of stored records is detected at the index where it happened.
func TestChainTamperProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEnv(t)
		defer e.close()
		e.register("", "")
		n := rapid.IntRange(2, 30).Draw(rt, "records")
		for i := range n {
			b := e.db.NewBatch()
			recs := []*changelog.Record{{Type: changelog.CLCreate, TFID: fid.FID{Seq: fid.SeqNormal, Oid: uint32(i + 1)},
				PFID: fid.Root, Name: rapid.StringMatching(`[a-z]{1,12}`).Draw(rt, "name"), JobID: rapid.StringMatching(`[a-z]{0,5}`).Draw(rt, "job")}}
			if _, err := e.log.Commit(b, recs); err != nil {
				rt.Fatal(err)
			}
			b.Close()
		}
		if _, err := e.verify(); err != nil {
			rt.Fatalf("untouched log: %v", err)
		}
		last := changelog.Index(n)
		before := make([][]byte, 0, n)
		for i := changelog.Index(1); i <= last; i++ {
			before = append(before, e.rawRecord(i))
		}
		var at changelog.Index
		switch op := rapid.SampledFrom([]string{"byte", "delete", "insert", "reorder"}).Draw(rt, "op"); op {
		case "byte":
			at = changelog.Index(rapid.IntRange(1, n).Draw(rt, "at"))
			raw := e.rawRecord(at)
			off := rapid.IntRange(0, len(raw)-1).Draw(rt, "offset")
			raw[off] ^= byte(rapid.IntRange(1, 255).Draw(rt, "xor"))
			e.setRaw(at, raw)
		case "delete":
			at = changelog.Index(rapid.IntRange(1, n).Draw(rt, "at"))
			if err := e.db.Delete(e.log.keys.record(at), nil); err != nil {
				rt.Fatal(err)
			}
		case "insert":
			// Records at and after at move up by one; a copy of another
			// record takes at's place.
			at = changelog.Index(rapid.IntRange(1, n).Draw(rt, "at"))
			src := changelog.Index(rapid.IntRange(1, n).Draw(rt, "src"))
			forged := e.rawRecord(src)
			for i := last; i >= at; i-- {
				e.setRaw(i+1, e.rawRecord(i))
			}
			e.setRaw(at, forged)
		case "reorder":
			i := changelog.Index(rapid.IntRange(1, n-1).Draw(rt, "i"))
			j := changelog.Index(rapid.IntRange(int(i)+1, n).Draw(rt, "j"))
			ri, rj := e.rawRecord(i), e.rawRecord(j)
			e.setRaw(i, rj)
			e.setRaw(j, ri)
			at = i
		}
		// The right index is the first one whose stored record differs
		// from what was written (a copy inserted next to its original
		// differs only after it).
		after := before[:0:0]
		for i := changelog.Index(1); i <= last+1; i++ {
			if v, c, err := e.db.Get(e.log.keys.record(i)); err == nil {
				after = append(after, append([]byte(nil), v...))
				c.Close()
			} else {
				after = append(after, nil)
			}
		}
		at = 0
		for i := range after {
			if i >= len(before) || !bytes.Equal(before[i], after[i]) {
				if i < len(before) || after[i] != nil {
					at = changelog.Index(i + 1)
					break
				}
			}
		}
		if at == 0 || at > last {
			return // nothing a reader of indices 1..last sees changed
		}
		_, err := e.verify()
		var ve *changelog.VerifyError
		if !errors.As(err, &ve) || ve.Index != at {
			rt.Fatalf("tampering at %d: verify says %v", at, err)
		}
	})
}

// TestChainSurvivesPurge: after clears purge records (and after a restart,
// and after everything is purged), the chain verifies from the first
// retained record through the anchor kept with the purge.
func TestChainSurvivesPurge(t *testing.T) {
	e := newEnv(t)
	u := e.register("", "")
	e.opN(10, "a")
	if _, err := e.log.Clear(u.DisplayName(), 4); err != nil {
		t.Fatal(err)
	}
	if st := e.log.State(); st.First != 5 || st.Anchor.Index != 4 || st.Anchor.Hash.IsZero() {
		t.Fatalf("state after purge: %+v", st)
	}
	if s := e.mustVerify(); s.First != 5 || s.Records != 6 || !s.Linked {
		t.Fatalf("summary %+v", s)
	}
	e.restart()
	e.opN(3, "b")
	e.mustVerify()
	if _, err := e.log.Clear(u.DisplayName(), 0); err != nil {
		t.Fatal(err)
	}
	e.restart()
	e.opN(2, "c")
	if s := e.mustVerify(); s.First != 14 || s.Records != 2 {
		t.Fatalf("summary after purging everything %+v", s)
	}
	// A purge that loses its anchor is a chain break at the purge.
	if _, err := e.log.Clear(u.DisplayName(), 14); err != nil {
		t.Fatal(err)
	}
	e.log.mu.Lock()
	e.log.mu.anchor[0] ^= 1
	e.log.mu.Unlock()
	_, err := e.verify()
	wantProblem(t, err, 15, changelog.ProblemPurgeBreak)
}

// TestChainLegacyRecords: records written before the chain (version 1)
// verify as a legacy prefix; the chain starts after them from the zero
// hash. A record without a hash after the chain started is tampering.
func TestChainLegacyRecords(t *testing.T) {
	e := newEnv(t)
	e.opts.NoChain = true
	e.restart()
	e.register("", "")
	e.opN(3, "old")
	e.opts.NoChain = false
	e.restart()
	e.opN(3, "new")
	s := e.mustVerify()
	if s.Legacy != 3 || s.Records != 6 {
		t.Fatalf("summary %+v", s)
	}
	old := e.rawRecord(2)
	e.setRaw(5, append(old[:1:1], e.rawRecord(5)[1:len(e.rawRecord(5))-changelog.HashSize]...))
	_, err := e.verify()
	wantProblem(t, err, 5, changelog.ProblemChanged)
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCheckpoints: checkpoints sign the chain head; they stream in order
// with the records; a forged one (another key) is rejected; a chain
// rewritten from a record on (hashes recomputed) is caught by the next
// checkpoint; a deleted checkpoint is missing.
func TestCheckpoints(t *testing.T) {
	e := newEnv(t)
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	e.opts.SigningKey = key
	e.restart()
	e.register("", "")
	e.opN(5, "a")
	c1, err := e.log.Checkpoint()
	if err != nil || c1 == nil || c1.Index != 5 || c1.Position != 6 || c1.Seq != 1 {
		t.Fatalf("checkpoint %+v %v", c1, err)
	}
	if c, err := e.log.Checkpoint(); c != nil || err != nil {
		t.Fatalf("a checkpoint with nothing new: %+v %v", c, err)
	}
	e.opN(5, "b")
	if _, err := e.log.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	e.opN(2, "c")
	s := e.mustVerify(pub)
	if s.Checkpoints != 2 || s.Signed != 10 || s.Records != 12 {
		t.Fatalf("summary %+v", s)
	}
	e.restart()
	e.opN(1, "d")
	if c, err := e.log.Checkpoint(); err != nil || c.Seq != 3 || c.Index != 13 {
		t.Fatalf("checkpoint after restart %+v %v", c, err)
	}
	e.mustVerify(pub)

	// Another key: rejected.
	if _, err := e.verify(newKey(t).Public().(ed25519.PublicKey)); !errors.Is(err, changelog.ErrBadSignature) {
		t.Fatalf("verify with another key: %v", err)
	}
	// A checkpoint forged with another key, in sequence and hash.
	forged := *c1
	forged.Seq, forged.Position = 4, 14
	forged.Index, forged.Hash = 13, changelog.Hash{}
	if h, ok := changelog.StoredHash(e.rawRecord(13)); ok {
		forged.Hash = h
	}
	forged.Sign(newKey(t))
	if err := e.db.Set(e.log.keys.checkpoint(14, 4), forged.AppendEncode(nil), nil); err != nil {
		t.Fatal(err)
	}
	e.opN(1, "e")
	_, err = e.verify(pub)
	wantProblem(t, err, 14, changelog.ProblemBadSignature) // where it sits
	if err := e.db.Delete(e.log.keys.checkpoint(14, 4), nil); err != nil {
		t.Fatal(err)
	}
	e.mustVerify(pub)

	// Rewrite record 7 and recompute every later hash: the links hold,
	// the checkpoint of index 10 does not.
	raw := e.rawRecord(7)
	r, _ := changelog.Decode(raw)
	r.Name = "forged"
	prev, _ := changelog.StoredHash(e.rawRecord(6))
	for i := changelog.Index(7); i <= e.log.State().Current; i++ {
		var b []byte
		if i == 7 {
			b = changelog.EncodeChained(r)
		} else {
			old := e.rawRecord(i)
			b = append([]byte(nil), old...)
		}
		prev = changelog.Seal(b, prev)
		e.setRaw(i, b)
	}
	_, err = e.verify(pub)
	wantProblem(t, err, 6, changelog.ProblemChanged)

	// A deleted checkpoint.
	e2 := newEnv(t)
	e2.opts.SigningKey = key
	e2.restart()
	e2.register("", "")
	for range 3 {
		e2.opN(2, "x")
		if _, err := e2.log.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	e2.opN(1, "y")
	if err := e2.db.Delete(e2.log.keys.checkpoint(5, 2), nil); err != nil {
		t.Fatal(err)
	}
	_, err = e2.verify(pub)
	wantProblem(t, err, 7, changelog.ProblemMissing) // seen at the next checkpoint
}

// TestCheckpointPurgedWithRecords: checkpoints before the first retained
// record go with the purge; the chain still verifies.
func TestCheckpointPurgedWithRecords(t *testing.T) {
	e := newEnv(t)
	key := newKey(t)
	e.opts.SigningKey = key
	e.restart()
	u := e.register("", "")
	for range 4 {
		e.opN(3, "a")
		if _, err := e.log.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.log.Clear(u.DisplayName(), 7); err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := e.log.Scan(context.Background(), ReadOptions{Chain: true}, func(en Entry) error {
		if en.Kind == changelog.ItemCheckpoint {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 { // position 10 remains (13 comes with record 13); 4 and 7 are purged
		t.Fatalf("%d checkpoints left, want 1", n)
	}
	if s := e.mustVerify(key.Public().(ed25519.PublicKey)); s.First != 8 || s.Signed != 12 || s.Checkpoints != 2 {
		t.Fatalf("summary %+v", s)
	}
}

// TestKeyFileAndRotation: the key file is created 0600 on first start and
// reused; a rotation is a checkpoint signed by the old key naming the new
// one, after which only the new key signs; a verifier holding the old key
// follows the rotation.
func TestKeyFileAndRotation(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t)
	e.opts.KeyFile = filepath.Join(dir, "changelog.key")
	e.restart()
	fi, err := os.Stat(e.opts.KeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	old := e.log.PublicKey()
	e.restart()
	if !old.Equal(e.log.PublicKey()) {
		t.Fatal("the key changed across a restart")
	}
	e.register("", "")
	e.opN(3, "a")
	if _, err := e.log.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	e.opN(2, "b")
	nk, err := e.log.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if !nk.Equal(e.log.PublicKey()) || nk.Equal(old) {
		t.Fatal("rotation did not change the key")
	}
	e.opN(2, "c")
	if _, err := e.log.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if !nk.Equal(e.log.PublicKey()) {
		t.Fatal("the rotated key did not survive a restart")
	}
	s := e.mustVerify(old)
	if s.Checkpoints != 3 || s.Signed != 7 || len(s.Keys) != 1 || !s.Keys[0].Equal(nk) {
		t.Fatalf("summary %+v", s)
	}
	// Only the new key: the checkpoints before the rotation are rejected.
	_, err = e.verify(nk)
	wantProblem(t, err, 4, changelog.ProblemBadSignature) // the first checkpoint, before record 4
}
