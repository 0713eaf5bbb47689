package changelog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrTampered: verification found the log altered (changed, missing or
// inserted records, a chain break at a purge). EBADMSG.
var ErrTampered = errors.New("changelog: chain verification failed")

// ErrBadSignature: a checkpoint's signature is invalid or made by a key
// that is not trusted. EKEYREJECTED.
var ErrBadSignature = errors.New("changelog: bad checkpoint signature")

// Problem says what a verification found wrong.
type Problem uint8

// Problems, in the words of the verifier's report.
const (
	ProblemChanged Problem = iota + 1
	ProblemMissing
	ProblemInserted
	ProblemBadSignature
	ProblemPurgeBreak
)

// String returns the report's word for p.
func (p Problem) String() string {
	switch p {
	case ProblemChanged:
		return "changed"
	case ProblemMissing:
		return "missing"
	case ProblemInserted:
		return "inserted"
	case ProblemBadSignature:
		return "bad signature"
	case ProblemPurgeBreak:
		return "chain break at a purge"
	case ProblemReordered:
		return "reordered"
	}
	return "unknown problem"
}

// VerifyError is the first problem a verification found: the index where
// the log stops being what was written, and why.
type VerifyError struct {
	Index   Index
	Problem Problem
	Detail  string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("index %d: %s: %s", e.Index, e.Problem, e.Detail)
}

// Unwrap returns ErrBadSignature for signature problems, else ErrTampered.
func (e *VerifyError) Unwrap() error {
	if e.Problem == ProblemBadSignature {
		return ErrBadSignature
	}
	return ErrTampered
}

// VerifySummary is what a verification covered.
type VerifySummary struct {
	// First and Last are the first and last record indices seen (0: none).
	First, Last Index
	// Records counts records; Legacy those written before the chain
	// existed (version 1, no hash), which only a prefix of the log may be.
	Records, Legacy uint64
	// Checkpoints counts valid checkpoints; Skipped those that cover a
	// record before the verified range.
	Checkpoints, Skipped uint64
	// Signed is the highest index a valid checkpoint covers: every record
	// up to it is proven unaltered. Records after it are only linked.
	Signed Index
	// Linked is false when the first record's link to its predecessor
	// could not be checked (no anchor before it).
	Linked bool
	// Keys are the trusted keys at the end (after rotations).
	Keys []ed25519.PublicKey
	// TrustOnFirstUse: no key was given, the first checkpoint's signer was
	// trusted.
	TrustOnFirstUse bool
}

// recentHashes is how many recent record hashes a verifier keeps to check
// a checkpoint written while later records were committing.
const recentHashes = 1 << 16

// Verifier checks a stream of records, checkpoints and anchors in stream
// order: every record links to its predecessor, indices are contiguous,
// every checkpoint is signed by a trusted key, in sequence, and states the
// hash the chain really has at its index. It stops at the first problem.
type Verifier struct {
	keys    []ed25519.PublicKey
	tofu    bool
	started bool
	chained bool // a hash was seen: records without one are tampering
	prevIdx Index
	prev    Hash
	anchor  bool // the previous item was an anchor
	ckSeq   uint64
	recent  map[Index]Hash
	ring    []Index
	sum     VerifySummary
	err     *VerifyError
}

// NewVerifier returns a verifier trusting keys; with no key the first
// checkpoint's signer is trusted (the summary says so).
func NewVerifier(keys ...ed25519.PublicKey) *Verifier {
	v := &Verifier{keys: keys, tofu: len(keys) == 0, recent: map[Index]Hash{}}
	v.sum.TrustOnFirstUse = v.tofu
	return v
}

func (v *Verifier) fail(idx Index, p Problem, format string, args ...any) error {
	v.err = &VerifyError{Index: idx, Problem: p, Detail: fmt.Sprintf(format, args...)}
	return v.err
}

// Err returns the first problem found, or nil.
func (v *Verifier) Err() error {
	if v.err == nil {
		return nil
	}
	return v.err
}

// Summary returns what was verified so far.
func (v *Verifier) Summary() VerifySummary {
	s := v.sum
	s.Keys = append([]ed25519.PublicKey(nil), v.keys...)
	return s
}

func (v *Verifier) remember(idx Index, h Hash) {
	v.recent[idx] = h
	v.ring = append(v.ring, idx)
	if len(v.ring) > recentHashes {
		delete(v.recent, v.ring[0])
		v.ring = v.ring[1:]
	}
}

// End checks that the stream reached last (the durable index when it
// began): records cut off the end are missing.
func (v *Verifier) End(last Index) error {
	if v.err != nil {
		return v.err
	}
	if v.started && v.prevIdx < last {
		return v.fail(v.prevIdx+1, ProblemMissing, "the stream ends at %d, the log at %d", v.prevIdx, last)
	}
	return nil
}

// Item feeds one stream element in its stored encoding (a record, a
// checkpoint or an anchor; KindOf tells them apart).
func (v *Verifier) Item(b []byte) error {
	switch KindOf(b) {
	case ItemRecord:
		return v.Record(b)
	case ItemCheckpoint:
		c, err := DecodeCheckpoint(b)
		if err != nil {
			return v.fail(v.prevIdx+1, ProblemChanged, "undecodable checkpoint: %v", err)
		}
		return v.Checkpoint(c)
	case ItemAnchor:
		a, err := DecodeAnchor(b)
		if err != nil {
			return v.fail(v.prevIdx+1, ProblemChanged, "undecodable anchor: %v", err)
		}
		return v.Anchor(a)
	}
	return v.fail(v.prevIdx+1, ProblemChanged, "unknown stream element (first byte 0x%02x)", firstByte(b))
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// Anchor starts (or restarts) the chain: the next record must be
// a.Index+1 and link to a.Hash. A stream starts with one when it begins at
// the first retained record (a.Hash is then the hash of the last purged
// record) or at --from N (the hash of record N-1).
func (v *Verifier) Anchor(a Anchor) error {
	if v.err != nil {
		return v.err
	}
	if v.started {
		// An export restarted mid-stream (a JetStream or syslog sink
		// cannot read back what it holds) may restate the anchor: one
		// that says what the chain already has says nothing new.
		if h, ok := v.recent[a.Index]; ok && h == a.Hash && a.Index <= v.prevIdx {
			return nil
		}
		if _, ok := v.recent[a.Index]; !ok && a.Index < v.sum.First {
			// Before the verified range (a stream read from its middle):
			// it cannot be checked, and it changes nothing.
			return nil
		}
		return v.fail(v.prevIdx+1, ProblemInserted, "anchor (index %d, hash %s) inside the stream does not restate the chain", a.Index, a.Hash)
	}
	v.started, v.anchor = true, true
	v.prevIdx, v.prev = a.Index, a.Hash
	v.chained = v.chained || !a.Hash.IsZero()
	v.sum.Linked = true
	v.remember(a.Index, a.Hash)
	return nil
}

// Record feeds one record in its stored encoding.
func (v *Verifier) Record(raw []byte) error {
	if v.err != nil {
		return v.err
	}
	expect := v.prevIdx + 1
	var r Record
	if err := DecodeInto(&r, raw); err != nil {
		if !v.started {
			if idx, ok := PeekIndex(raw); ok {
				expect = idx
			}
		}
		return v.fail(expect, ProblemChanged, "undecodable record: %v", err)
	}
	afterAnchor := v.anchor
	v.anchor = false
	if !v.started {
		// The first record with no anchor: its link cannot be checked.
		v.started = true
		v.sum.First = r.Index
		if Chained(raw) {
			v.chained = true
			v.accept(r.Index, r.Hash, false)
			return nil
		}
		v.prevIdx, expect = r.Index-1, r.Index
	}
	switch {
	case r.Index > expect:
		return v.fail(expect, ProblemMissing, "record %d is followed by %d", v.prevIdx, r.Index)
	case r.Index < expect && afterAnchor:
		return v.fail(r.Index, ProblemPurgeBreak, "record %d follows the anchor of record %d", r.Index, v.prevIdx)
	case r.Index < expect:
		return v.fail(expect, ProblemInserted, "record %d where %d was expected", r.Index, expect)
	}
	if v.sum.First == 0 {
		v.sum.First = r.Index
	}
	if !Chained(raw) {
		if v.chained {
			return v.fail(r.Index, ProblemChanged, "record has no hash after the chain started")
		}
		v.sum.Legacy++
		v.accept(r.Index, Hash{}, true)
		return nil
	}
	if got := ChainHash(v.prev, raw[:len(raw)-HashSize]); got != r.Hash {
		if afterAnchor && v.prevIdx != 0 {
			return v.fail(r.Index, ProblemPurgeBreak, "record %d does not link to the anchor (hash of record %d, %s)", r.Index, v.prevIdx, v.prev)
		}
		return v.fail(r.Index, ProblemChanged, "stored hash %s, computed %s", r.Hash, got)
	}
	v.chained = true
	v.accept(r.Index, r.Hash, false)
	return nil
}

func (v *Verifier) accept(idx Index, h Hash, legacy bool) {
	v.prevIdx, v.prev = idx, h
	v.sum.Last = idx
	v.sum.Records++
	if !legacy {
		v.remember(idx, h)
	}
}

// Checkpoint feeds one checkpoint.
func (v *Verifier) Checkpoint(c *Checkpoint) error {
	if v.err != nil {
		return v.err
	}
	// Problems are reported where the checkpoint sits in the stream.
	at := v.prevIdx + 1
	if !v.started {
		at = c.Position
	}
	if !c.SignatureValid() {
		return v.fail(at, ProblemBadSignature, "checkpoint %d (index %d) does not verify with its signer %s", c.Seq, c.Index, FormatPublicKey(c.Signer))
	}
	if v.tofu && len(v.keys) == 0 {
		v.keys = []ed25519.PublicKey{c.Signer}
	}
	if !v.trusted(c.Signer) {
		if c.Kind == CheckpointRotation {
			return v.fail(at, ProblemBadSignature, "key rotation checkpoint %d (index %d, new key %s) is signed by %s, not by the trusted (old) key", c.Seq, c.Index, FormatPublicKey(c.Next), FormatPublicKey(c.Signer))
		}
		return v.fail(at, ProblemBadSignature, "checkpoint %d (index %d) is signed by %s, which is not a trusted key", c.Seq, c.Index, FormatPublicKey(c.Signer))
	}
	if v.sum.Checkpoints+v.sum.Skipped > 0 && c.Seq != v.ckSeq+1 {
		if c.Seq <= v.ckSeq {
			return v.fail(at, ProblemInserted, "checkpoint %d after checkpoint %d", c.Seq, v.ckSeq)
		}
		return v.fail(at, ProblemMissing, "checkpoints %d..%d are missing", v.ckSeq+1, c.Seq-1)
	}
	if v.started && c.Position != v.prevIdx+1 {
		return v.fail(min(c.Position, v.prevIdx+1), ProblemInserted, "checkpoint %d sits before record %d but the stream is at %d", c.Seq, c.Position, v.prevIdx+1)
	}
	v.ckSeq = c.Seq
	h, ok := v.recent[c.Index]
	switch {
	case v.started && c.Index > v.prevIdx:
		return v.fail(at, ProblemInserted, "checkpoint %d covers index %d, which is not written yet", c.Seq, c.Index)
	case !ok:
		// Covers a record before the verified range.
		v.sum.Skipped++
	case h != c.Hash:
		from := max(v.sum.Signed+1, v.sum.First)
		return v.fail(from, ProblemChanged,
			"checkpoint %d signs hash %s for index %d but the chain has %s: records %d..%d were altered",
			c.Seq, c.Hash, c.Index, h, from, c.Index)
	default:
		v.sum.Checkpoints++
		v.sum.Signed = max(v.sum.Signed, c.Index)
	}
	if c.Kind == CheckpointRotation {
		v.keys = []ed25519.PublicKey{c.Next}
	}
	return nil
}

func (v *Verifier) trusted(k ed25519.PublicKey) bool {
	for _, t := range v.keys {
		if bytes.Equal(t, k) {
			return true
		}
	}
	return false
}

// JSONLine feeds one line of a verifiable NDJSON export: a record line
// (the record's JSON view with hash and raw, as lfs changelog --output json
// --hash and fidlog-export write them), a {"checkpoint": ...} line or an
// {"anchor": ...} line. The fields a line shows are checked against its
// raw encoding, so changing what a reader sees is caught even when the raw
// bytes are left alone. Fields the chain does not cover (derived ones such
// as paths) are ignored.
func (v *Verifier) JSONLine(line []byte) error {
	if v.err != nil {
		return v.err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(line, &probe); err != nil {
		return v.fail(v.prevIdx+1, ProblemChanged, "line is not JSON: %v", err)
	}
	var lineDev string
	if d, ok := probe["device"]; ok && (probe["checkpoint"] != nil || probe["anchor"] != nil) {
		// The stream's device, for routing a multi-MDT export; not part
		// of the checkpoint or anchor (a checkpoint signs its own).
		if err := json.Unmarshal(d, &lineDev); err != nil || lineDev == "" {
			return v.fail(v.prevIdx+1, ProblemChanged, "line's device is %s", d)
		}
		delete(probe, "device")
	}
	if c, ok := probe["checkpoint"]; ok {
		// Problems are reported at the record the checkpoint precedes.
		at := v.prevIdx + 1
		var cj CheckpointJSON
		if err := json.Unmarshal(c, &cj); err != nil {
			return v.fail(at, ProblemChanged, "checkpoint line: %v", err)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(cj.Raw)
		if err != nil {
			return v.fail(at, ProblemChanged, "checkpoint line: raw: %v", err)
		}
		ck, err := DecodeCheckpoint(raw)
		if err != nil {
			return v.fail(at, ProblemChanged, "checkpoint line: %v", err)
		}
		if !v.started {
			at = ck.Position
		}
		if len(probe) != 1 {
			return v.fail(at, ProblemChanged, "checkpoint line with other fields")
		}
		if want, err := json.Marshal(ck.JSON()); err != nil || !bytes.Equal(want, bytes.TrimSpace(c)) {
			return v.fail(at, ProblemChanged, "checkpoint line %d: its fields differ from its raw encoding", ck.Seq)
		}
		if lineDev != "" && lineDev != ck.Device {
			return v.fail(at, ProblemChanged, "checkpoint line %d says device %s, the checkpoint signs %s", ck.Seq, lineDev, ck.Device)
		}
		return v.Checkpoint(ck)
	}
	if a, ok := probe["anchor"]; ok {
		var aj AnchorJSON
		if err := json.Unmarshal(a, &aj); err != nil {
			return v.fail(v.prevIdx+1, ProblemChanged, "anchor line: %v", err)
		}
		at := v.prevIdx + 1
		if !v.started {
			at = Index(aj.Index) + 1
		}
		if len(probe) != 1 {
			return v.fail(at, ProblemChanged, "anchor line with other fields")
		}
		h, err := ParseHash(aj.Hash)
		if err != nil {
			return v.fail(at, ProblemChanged, "anchor line: %v", err)
		}
		if want, err := json.Marshal(AnchorJSON{Index: aj.Index, Hash: h.String()}); err != nil || !bytes.Equal(want, bytes.TrimSpace(a)) {
			return v.fail(at, ProblemChanged, "anchor line is not in its canonical form")
		}
		return v.Anchor(Anchor{Index: Index(aj.Index), Hash: h})
	}
	expect := v.prevIdx + 1
	var rawText string
	if err := json.Unmarshal(probe["raw"], &rawText); err != nil || rawText == "" {
		return v.fail(expect, ProblemChanged, "record line without its raw encoding (write it with --hash)")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(rawText)
	if err != nil {
		return v.fail(expect, ProblemChanged, "raw: %v", err)
	}
	r, err := Decode(raw)
	if err != nil {
		return v.fail(expect, ProblemChanged, "raw: %v", err)
	}
	if !v.started {
		expect = r.Index
	}
	// Every field the line shows must be what the raw encoding says.
	var wantMap map[string]json.RawMessage
	if want, err := json.Marshal(r.JSONRaw(raw)); err != nil {
		return fmt.Errorf("changelog: rendering record %d: %w", r.Index, err)
	} else if err := json.Unmarshal(want, &wantMap); err != nil {
		return fmt.Errorf("changelog: rendering record %d: %w", r.Index, err)
	}
	for k, got := range probe {
		w, known := wantMap[k]
		if !known {
			if _, export := exportFields[k]; !export {
				return v.fail(expect, ProblemChanged, "line has field %s, which its record does not", k)
			}
			if k == "schemaVersion" && string(got) != `"`+exportSchema+`"` {
				return v.fail(expect, ProblemChanged, "schemaVersion is %s, not \"%s\"", got, exportSchema)
			}
			continue
		}
		if !jsonEqual(got, w) && !(k == "time" && sameTime(got, w)) {
			return v.fail(expect, ProblemChanged, "field %s is %s, the record says %s", k, got, w)
		}
	}
	for k := range wantMap {
		if _, ok := probe[k]; !ok {
			if _, opt := optionalFields[k]; !opt {
				return v.fail(expect, ProblemChanged, "line lacks field %s of its record", k)
			}
		}
	}
	if _, ok := probe["hash"]; !ok && !r.Hash.IsZero() {
		return v.fail(expect, ProblemChanged, "line without its hash")
	}
	return v.Record(raw)
}

// exportFields are fields an exporter adds that the chain does not cover
// (paths, and their _b64 companions, are resolved at export time; the
// device is the stream's).
var exportFields = map[string]struct{}{"schemaVersion": {}, "device": {}, "path": {}, "path_b64": {}, "source_path": {}, "source_path_b64": {}}

// exportSchema is the schemaVersion of fidlog-export's ndjson lines.
const exportSchema = "1.0"

// optionalFields are record fields an export format may leave out: they
// repeat what other fields say.
var optionalFields = map[string]struct{}{"type_num": {}, "time_ns": {}, "extra_flags": {}}

// sameTime reports whether two JSON strings are the same RFC 3339 instant
// (exporters may print all nine digits of nanoseconds).
func sameTime(a, b json.RawMessage) bool {
	var x, y string
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	tx, err1 := time.Parse(time.RFC3339Nano, x)
	ty, err2 := time.Parse(time.RFC3339Nano, y)
	// Only the two renderings (time.Parse also takes a comma for the
	// decimal point, which would let a line differ unseen).
	canonical := x == tx.Format(time.RFC3339Nano) || x == tx.Format("2006-01-02T15:04:05.000000000Z07:00")
	return err1 == nil && err2 == nil && canonical && tx.Equal(ty) && strings.HasSuffix(x, "Z") == strings.HasSuffix(y, "Z")
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	// Numbers as written: float64 would equate neighbouring nanoseconds.
	dx, dy := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	dx.UseNumber()
	dy.UseNumber()
	if dx.Decode(&x) != nil || dy.Decode(&y) != nil {
		return false
	}
	xb, errx := json.Marshal(x)
	yb, erry := json.Marshal(y)
	return errx == nil && erry == nil && bytes.Equal(xb, yb)
}

// ItemJSON returns the NDJSON line (no newline) of a stream element for a
// verifiable export: a record's JSON view with its hash and raw encoding,
// {"checkpoint": ...} or {"anchor": ...}. Verifier.JSONLine reads them.
func ItemJSON(b []byte) ([]byte, error) {
	switch KindOf(b) {
	case ItemRecord:
		r, err := Decode(b)
		if err != nil {
			return nil, err
		}
		return json.Marshal(r.JSONRaw(b))
	case ItemCheckpoint:
		c, err := DecodeCheckpoint(b)
		if err != nil {
			return nil, err
		}
		j := c.JSON()
		return json.Marshal(Line{Checkpoint: &j})
	case ItemAnchor:
		a, err := DecodeAnchor(b)
		if err != nil {
			return nil, err
		}
		return json.Marshal(Line{Anchor: &AnchorJSON{Index: uint64(a.Index), Hash: a.Hash.String()}})
	}
	return nil, fmt.Errorf("%w: unknown stream element (first byte 0x%02x)", ErrCorrupt, firstByte(b))
}
