package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// pubkey reads the MDT's signing key parameter.
func pubkey(t testing.TB, s *mdtServer, c *client.Client) ed25519.PublicKey {
	t.Helper()
	ps, err := c.GetParams(ctxT(t), "mdd."+s.device+".changelog_pubkey")
	if err != nil || len(ps) != 1 {
		t.Fatalf("changelog_pubkey: %v %v", ps, err)
	}
	k, err := changelog.ParsePublicKey(ps[0].GetValue())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkpointEvery makes the MDT sign a checkpoint every n records.
func checkpointEvery(t testing.TB, s *mdtServer, c *client.Client, n int) {
	t.Helper()
	if _, err := c.SetParam(ctxT(t), "mdd."+s.device+".changelog_checkpoint_records", fmt.Sprint(n)); err != nil {
		t.Fatal(err)
	}
}

// lfsVerify runs lfs changelog_verify with args and returns its exit code
// and output.
func lfsVerify(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "lfs"), append([]string{"changelog_verify"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestCheckpointsInSinks: with checkpoints on (ndjson's default), the
// exporter writes the MDT's signed checkpoints and the chain's anchor in
// order with the records to rotated, gzipped files, to JetStream (subject
// ...CHECKPOINT, Nats-Msg-Id DEVICE:checkpoint:SEQ) and to rsyslogd (MSGID
// CHECKPOINT, structured data of its own), across a key rotation and a
// restart of the exporter; each copy verifies offline against the key the
// MDT published first (the rotation passes trust to the new one), and lfs
// changelog_verify --pubkey --input proves the files and reports the tail
// that no checkpoint signs yet.
func TestCheckpointsInSinks(t *testing.T) {
	s := startMDT(t)
	c := s.client(t)
	ns := startNATS(t)
	r := startRsyslog(t, nil, rsyslogInput{name: "tcp", kind: "tcp"})
	checkpointEvery(t, s, c, 25)
	if _, err := c.SetParam(ctxT(t), "mdd."+s.device+".changelog_checkpoint_interval", "1"); err != nil {
		t.Fatal(err)
	}
	pub0 := pubkey(t, s, c)
	out := filepath.Join(shortTempDir(t), "audit")
	args := []string{"--mdt", s.target(), "--interval", "50ms", "--batch", "40",
		"--sink", "file://" + out + "?size=8K&gzip=true",
		"--sink", "nats://" + ns.hostPort() + "?stream=CHAIN",
		"--sink", fmt.Sprintf("syslog+tcp://127.0.0.1:%d?format=ndjson", r.port("tcp"))}
	x := startProc(t, "fidlog-export", args...)
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	createFiles(t, c, "/d", "a", 60)
	if _, err := c.SetParam(ctxT(t), "mdd."+s.device+".changelog_pubkey", "rotate"); err != nil {
		t.Fatal(err)
	}
	pub1 := pubkey(t, s, c)
	createFiles(t, c, "/d", "b", 60)
	mid := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "all cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == mid })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	// Restarted: the files are read back (records, checkpoints, anchor);
	// JetStream and syslog get the anchor again, which restates the chain.
	x = startProc(t, "fidlog-export", args...)
	createFiles(t, c, "/d", "c", 70)
	want := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "all cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	// The log is quiet now: the checkpoint signed within a second covers
	// the last record, and the exporter gets it without a next record.
	covers := fmt.Sprintf(`","checkpoint":{"position":%d,`, want+1)
	waitFor(t, 30*time.Second, "the last record's checkpoint in the files", func() bool {
		b, _ := exec.Command("sh", "-c", "cat "+out+"/*.ndjson 2>/dev/null").Output()
		return bytes.Contains(b, []byte(covers))
	})
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	devs := map[string]changelog.Index{s.device: want}

	check := func(what string, lines []string) {
		t.Helper()
		checkExactlyOnce(t, formats["ndjson"], lines, devs)
		sum := verifyExport(t, lines, want, pub0)
		cks, anchors := 0, 0
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, `{"device":"`+s.device+`","checkpoint":{`):
				cks++
			case strings.HasPrefix(l, `{"device":"`+s.device+`","anchor":{`):
				anchors++
			}
		}
		// ~175 records, a checkpoint every 25 (or second) and the
		// rotation's; the last one signs the last record.
		if sum.Checkpoints < 7 || uint64(cks) != sum.Checkpoints || sum.Signed != want {
			t.Errorf("%s: %d checkpoint lines, verified %+v", what, cks, sum)
		}
		if len(sum.Keys) != 1 || !sum.Keys[0].Equal(pub1) {
			t.Errorf("%s: trusted keys at the end %v, want the rotated key %s", what, sum.Keys, changelog.FormatPublicKey(pub1))
		}
		if anchors < 1 {
			t.Errorf("%s: no anchor line", what)
		}
		t.Logf("%s: %d lines, %d checkpoints, %d anchors, signed up to %d of %d", what, len(lines), cks, anchors, sum.Signed, want)
	}
	files := dirLines(t, out, ".ndjson")
	check("files", files)
	check("jetstream", ns.streamLines(t, "CHAIN", formats["ndjson"]))
	// rsyslogd writes what it received on its own time: wait for the last
	// checkpoint's message too, not only for the records.
	waitFor(t, 30*time.Second, "the last checkpoint at rsyslogd", func() bool {
		b, _ := os.ReadFile(r.out("tcp"))
		return bytes.Contains(b, []byte(covers))
	})
	check("syslog", r.syslogMsgs(t, "tcp", "fidlog", formats["ndjson"], int(want)))
	ents, _ := os.ReadDir(out)
	gz := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".gz") {
			gz++
		}
	}
	if gz == 0 || len(ents) < 3 {
		t.Errorf("want rotated and gzipped files, have %d files (%d .gz)", len(ents), gz)
	}

	// lfs changelog_verify proves the file set with the first key.
	keyFile := filepath.Join(t.TempDir(), "mdt0.pub")
	if err := os.WriteFile(keyFile, []byte(changelog.FormatPublicKey(pub0)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := lfsVerify(t, "--pubkey", keyFile, "--input", out)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("%s: records 1-%d: chain intact (%d records)\n", s.device, want, want)) ||
		!strings.Contains(stdout, "signed checkpoints verified; records up to ") ||
		!strings.Contains(stdout, "signing key "+changelog.FormatPublicKey(pub1)) || stderr != "" {
		t.Fatalf("lfs changelog_verify --input: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, fmt.Sprintf("records up to %d are proven unaltered\n", want)) || strings.Contains(stdout, "not yet signed") {
		t.Errorf("lfs changelog_verify does not prove every record:\n%s", stdout)
	}
	// The same given as files (a shell glob: name order, .gz included).
	var paths []string
	for _, e := range ents {
		paths = append(paths, filepath.Join(out, e.Name()))
	}
	code, stdout2, stderr := lfsVerify(t, append([]string{"--pubkey", keyFile, "--input"}, paths...)...)
	if code != 0 || stdout2 != stdout {
		t.Errorf("lfs changelog_verify --input FILES: exit %d\n%s%s\nwant\n%s", code, stdout2, stderr, stdout)
	}
	// Without the last checkpoint, the tail is linked but not signed, and
	// lfs says how much (exit 0: nothing is wrong with what is there).
	var kept []string
	for _, l := range files {
		if !strings.Contains(l, covers) {
			kept = append(kept, l)
		}
	}
	cut := filepath.Join(t.TempDir(), "cut.ndjson")
	if err := os.WriteFile(cut, []byte(strings.Join(kept, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = lfsVerify(t, "--pubkey", keyFile, "--input", cut)
	if code != 0 || !strings.Contains(stdout, " records after the last checkpoint (index ") || !strings.Contains(stdout, fmt.Sprintf("are linked but not yet signed: records %s", "")) {
		t.Errorf("tail without its checkpoint: exit %d\n%s%s", code, stdout, stderr)
	}
	// A key that never signed: the first checkpoint is rejected.
	other, _, _ := ed25519.GenerateKey(nil)
	if err := os.WriteFile(keyFile, []byte(changelog.FormatPublicKey(other)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = lfsVerify(t, "--pubkey", keyFile, "--input", out)
	if code != 129 || !strings.Contains(stderr, "bad signature: checkpoint 1 ") || !strings.Contains(stderr, "which is not a trusted key") {
		t.Fatalf("wrong key: exit %d: %s", code, stderr)
	}
	// The newest key alone cannot vouch for the checkpoints before the
	// rotation.
	if err := os.WriteFile(keyFile, []byte(changelog.FormatPublicKey(pub1)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = lfsVerify(t, "--pubkey", keyFile, "--input", out); code != 129 {
		t.Fatalf("new key for old checkpoints: exit %d: %s", code, stderr)
	}
}

// TestCheckpointsNeedNDJSON: a format that cannot carry checkpoints is
// refused when they are asked for, and a filtering --mask with them.
func TestCheckpointsNeedNDJSON(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--sink", "file:///tmp/x?format=csv&checkpoints=true"},
			"fidlog-export: invalid sink 'file:///tmp/x?format=csv&checkpoints=true': checkpoints=true: format csv cannot carry the hash chain's checkpoints (its lines lack each record's hash and stored bytes, which verification needs); use format=ndjson\n"},
		{[]string{"--sink", "syslog://127.0.0.1:514?checkpoints=true"},
			"fidlog-export: invalid sink 'syslog://127.0.0.1:514?checkpoints=true': checkpoints=true: format csv cannot carry the hash chain's checkpoints (its lines lack each record's hash and stored bytes, which verification needs); use format=ndjson\n"},
		{[]string{"--sink", "file:///tmp/x?format=scale-json&checkpoints=yes"},
			"fidlog-export: invalid sink 'file:///tmp/x?format=scale-json&checkpoints=yes': checkpoints=yes is not true or false\n"},
		{[]string{"--sink", "file:///tmp/x", "--mask", "CREAT"},
			"fidlog-export: --mask 'CREAT' filters records, but a sink carries checkpoints (ndjson sinks do unless checkpoints=false) and a chain with gaps cannot be verified: every record is exported then; drop --mask or add checkpoints=false to the ndjson sinks\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := runContext(t.Context(), append([]string{"--mdt", "unix:/nonexistent"}, tc.args...), &stdout, &stderr)
		if code != exitUsage || stderr.String() != tc.msg {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant:\n%s", tc.args, code, stderr.String(), tc.msg)
		}
	}
}

// exportedChain renders, as fidlog-export's ndjson sink writes them, the
// lines of one device: its anchor, n records from index first (paths
// resolved, some renames and DENY records, some names that are not UTF-8) and a checkpoint
// signed by key every few records. at[i] is the index of the record line
// i is or precedes; lastCk the line of the last checkpoint.
func exportedChain(t *rapid.T, key ed25519.PrivateKey, dev string, first changelog.Index, n int) (lines [][]byte, at []changelog.Index, lastCk int) {
	prev := changelog.Hash{}
	if first > 1 {
		prev = changelog.ChainHash(changelog.Hash{}, []byte("purged"))
	}
	add := func(e *event, idx changelog.Index) {
		lines, at = append(lines, formats["ndjson"].line(e)), append(at, idx)
	}
	add(&event{dev: dev, anchor: &changelog.Anchor{Index: first - 1, Hash: prev}}, first)
	every := rapid.IntRange(1, 5).Draw(t, "every")
	seq := uint64(rapid.IntRange(1, 9).Draw(t, "seq"))
	name := rapid.OneOf(rapid.StringMatching(`[a-z0-9.\-]{1,12}`), rapid.SampledFrom([]string{"caf\xe9", "a \"q\"", "\u65e5\u672c"}))
	for i := range n {
		idx := first + changelog.Index(i)
		if i > 0 && i%every == 0 {
			c := &changelog.Checkpoint{Position: idx, Seq: seq, Index: idx - 1, Hash: prev, Time: time.Unix(1700000000, int64(i)),
				Kind: changelog.CheckpointPeriodic, Device: dev}
			c.Sign(key)
			seq++
			lastCk = len(lines)
			add(&event{dev: dev, ck: c}, idx)
		}
		r := &changelog.Record{Index: idx, Type: changelog.CLCreate, Time: time.Unix(1700000000, int64(i)*7919),
			TFID: fid.FID{Seq: fid.SeqNormal, Oid: uint32(i + 1)}, PFID: fid.Root, Name: name.Draw(t, "name"),
			ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID, UID: 500, GID: 100, NID: "192.168.0.7@tcp", JobID: "touch.0"}
		e := &event{dev: dev, rec: r, path: "/d/" + r.Name}
		switch rapid.IntRange(0, 5).Draw(t, "kind") {
		case 0:
			r.Type, r.SFID, r.SPFID, r.SName = changelog.CLRename, fid.FID{Seq: fid.SeqNormal, Oid: 99}, fid.Root, "old"
			e.spath = "/old"
		case 1:
			// A refused mkdir (DENY, which no mask but +DENY exports,
			// and a chain export always does).
			r.Type, r.Flags, r.TFID = changelog.CLDenied, changelog.DenyFlags(changelog.CLMkdir, 13), fid.FID{}
		}
		b := changelog.EncodeChained(r)
		prev = changelog.Seal(b, prev)
		dec, err := changelog.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e.rec = dec
		add(e, idx)
	}
	return lines, at, lastCk
}

// verifyExported runs lines through the offline verifier lfs
// changelog_verify --input uses.
func verifyExported(key ed25519.PublicKey, lines [][]byte) (changelog.VerifySummary, error) {
	x := changelog.NewExportVerifier("", key)
	for i, l := range lines {
		_ = x.Line(fmt.Sprintf("line %d", i+1), l)
	}
	err := x.Finish()
	var sum changelog.VerifySummary
	if d := x.Devices(); len(d) > 0 {
		sum = x.Summary(d[0])
	}
	return sum, err
}

// derivedRanges returns the byte ranges of a record line's path fields,
// which fidlog-export resolves at export time and the chain does not
// cover (README: "paths are resolved at export time and not covered").
func derivedRanges(l []byte) [][2]int {
	var out [][2]int
	for _, k := range []string{`,"path":"`, `,"path_b64":"`, `,"source_path":"`, `,"source_path_b64":"`} {
		if i := bytes.Index(l, []byte(k)); i >= 0 {
			j := i + len(k)
			for j < len(l) && !(l[j] == '"' && l[j-1] != '\\') {
				j++
			}
			out = append(out, [2]int{i, j + 1})
		}
	}
	return out
}

// TestExportedLinesTamperProperty: fidlog-export's ndjson lines, records
// and checkpoint lines alike, verified offline with the public key as lfs
// changelog_verify --pubkey --input does: any single-byte change (outside
// the derived path fields), deletion, insertion (a copy of a line) or
// reordering of lines up to the last checkpoint is detected at the index
// of the first line that differs; a checkpoint signed with another key,
// and a key rotation not signed by the trusted key, are rejected as bad
// signatures. What follows the last checkpoint is linked but not signed:
// deleting that checkpoint leaves its records unproven, which the
// summary says.
func TestExportedLinesTamperProperty(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	pub := key.Public().(ed25519.PublicKey)
	const dev = "lustre-MDT0000"
	rapid.Check(t, func(rt *rapid.T) {
		first := changelog.Index(rapid.IntRange(1, 1000).Draw(rt, "first"))
		n := rapid.IntRange(3, 16).Draw(rt, "records")
		lines, at, lastCk := exportedChain(rt, key, dev, first, n)
		if lastCk == 0 {
			rt.Skip("no checkpoint")
		}
		sum, err := verifyExported(pub, lines)
		if err != nil || !sum.Linked || sum.Signed != at[lastCk]-1 || sum.Last != first+changelog.Index(n)-1 {
			rt.Fatalf("untouched export: %+v %v", sum, err)
		}
		out := append([][]byte(nil), lines...)
		isCk := func(i int) bool { return bytes.Contains(lines[i], []byte(`","checkpoint":{`)) }
		wantProblem := changelog.Problem(0)
		var ckRange *[2]changelog.Index // a deleted checkpoint shows at the next one
		switch op := rapid.SampledFrom([]string{"byte", "delete", "insert", "reorder", "forge", "rotate"}).Draw(rt, "op"); op {
		case "byte":
			p := rapid.IntRange(0, lastCk).Draw(rt, "line")
			l := bytes.Clone(lines[p])
			off := rapid.IntRange(0, len(l)-1).Draw(rt, "offset")
			for _, r := range derivedRanges(l) {
				if off >= r[0] && off < r[1] {
					rt.Skip("derived path field")
				}
			}
			l[off] ^= byte(rapid.IntRange(1, 255).Draw(rt, "xor"))
			out[p] = l
		case "delete":
			p := rapid.IntRange(1, lastCk).Draw(rt, "line")
			out = append(out[:p:p], lines[p+1:]...)
			if p == lastCk {
				// The tail is no longer signed, and the summary says so.
				sum, err := verifyExported(pub, out)
				if err != nil || sum.Signed >= at[lastCk] {
					rt.Fatalf("last checkpoint deleted: %+v %v", sum, err)
				}
				return
			}
			firstCk := 1
			for !isCk(firstCk) {
				firstCk++
			}
			if p == firstCk {
				// Nothing says which checkpoint an export starts with:
				// without its first one, the next still proves every
				// record before it.
				sum, err := verifyExported(pub, out)
				if err != nil || sum.Signed != at[lastCk]-1 {
					rt.Fatalf("first checkpoint deleted: %+v %v", sum, err)
				}
				return
			}
			if isCk(p) {
				next := p + 1
				for !isCk(next) {
					next++
				}
				ckRange = &[2]changelog.Index{at[p], at[next]}
			}
		case "insert":
			p := rapid.IntRange(1, lastCk).Draw(rt, "at")
			src := rapid.IntRange(1, len(lines)-1).Draw(rt, "src")
			out = append(append(append([][]byte(nil), lines[:p]...), lines[src]), lines[p:]...)
		case "reorder":
			p := rapid.IntRange(1, lastCk).Draw(rt, "i")
			q := rapid.IntRange(p+1, len(lines)-1).Draw(rt, "j")
			out[p], out[q] = lines[q], lines[p]
		case "forge", "rotate":
			// The same checkpoint (or a rotation to the forger's key)
			// signed by another key.
			p := lastCk
			for p > 0 && (p == lastCk || !isCk(p)) && rapid.Bool().Draw(rt, "earlier") {
				p--
			}
			if !isCk(p) {
				p = lastCk
			}
			var v struct {
				Checkpoint changelog.CheckpointJSON `json:"checkpoint"`
			}
			if err := json.Unmarshal(lines[p], &v); err != nil {
				rt.Fatal(err)
			}
			raw, _ := base64.StdEncoding.DecodeString(v.Checkpoint.Raw)
			c, err := changelog.DecodeCheckpoint(raw)
			if err != nil {
				rt.Fatal(err)
			}
			if op == "rotate" {
				c.Kind, c.Next = changelog.CheckpointRotation, other.Public().(ed25519.PublicKey)
			}
			c.Sign(other)
			out[p] = formats["ndjson"].line(&event{dev: dev, ck: c})
			wantProblem = changelog.ProblemBadSignature
		}
		p := 0
		for p < len(out) && p < len(lines) && bytes.Equal(out[p], lines[p]) {
			p++
		}
		want := first + changelog.Index(n)
		if p < len(at) {
			want = at[p]
		}
		_, err = verifyExported(pub, out)
		var ve *changelog.VerifyError
		if !errors.As(err, &ve) {
			rt.Fatalf("tampering at line %d (index %d) not detected: %v", p, want, err)
		}
		switch {
		case ckRange != nil:
			if ve.Index < ckRange[0] || ve.Index > ckRange[1] || ve.Problem != changelog.ProblemMissing {
				rt.Fatalf("deleted checkpoint before %d: reported %v, want missing in %d..%d", want, ve, ckRange[0], ckRange[1])
			}
		case ve.Index != want && !(p == 0 && ve.Index <= want):
			// (An altered anchor index says the chain starts elsewhere:
			// reported at or before the first record.)
			rt.Fatalf("tampering at line %d: reported %v, want index %d", p, ve, want)
		case wantProblem != 0 && ve.Problem != wantProblem:
			rt.Fatalf("forged checkpoint at line %d: reported %v, want %v", p, ve, wantProblem)
		}
	})
}
