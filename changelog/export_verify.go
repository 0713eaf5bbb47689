package changelog

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
)

// ProblemReordered: a record appears later in an export than where it
// belongs (reported by ExportVerifier, which looks ahead after a missing
// record).
const ProblemReordered Problem = ProblemPurgeBreak + 1

// ExportError is the first problem an ExportVerifier found: the device,
// where the line is ("FILE line N", as the caller named it) and what is
// wrong.
type ExportError struct {
	Device string
	Where  string
	Err    *VerifyError
}

func (e *ExportError) Error() string {
	if e.Where == "" {
		return e.Err.Error()
	}
	return e.Where + ": " + e.Err.Error()
}

// Unwrap returns the VerifyError (which unwraps to ErrTampered or
// ErrBadSignature).
func (e *ExportError) Unwrap() error { return e.Err }

// ExportVerifier verifies an exported NDJSON line stream (lfs changelog
// --output json --hash, fidlog-export's ndjson files) offline: it routes
// each line to one Verifier per device (the lines' "device" field; none
// for lfs changelog's own export), stops verifying at the first problem
// and then reads on to tell a reordered record (one that appears later)
// from a missing one.
type ExportVerifier struct {
	keys  []ed25519.PublicKey
	only  string
	vs    map[string]*Verifier
	order []string
	last  string // the device of the last line that parsed
	err   *ExportError
	// lookFor, after a missing-record problem: that record, if it
	// appears later, was moved.
	lookFor Index
}

// NewExportVerifier returns a verifier trusting keys (none: the first
// checkpoint's signer, see NewVerifier); with only set, lines of other
// devices are skipped.
func NewExportVerifier(only string, keys ...ed25519.PublicKey) *ExportVerifier {
	return &ExportVerifier{keys: keys, only: only, vs: map[string]*Verifier{}}
}

// Line feeds one line; where names it in a report. It returns the first
// problem (the same one on every later call).
func (x *ExportVerifier) Line(where string, line []byte) error {
	var head struct {
		Device string `json:"device"`
		Index  Index  `json:"index"`
	}
	if json.Unmarshal(line, &head) != nil {
		// Not JSON (any more): it is reported by the verifier of the
		// device the stream was at.
		head.Device = x.last
	}
	x.last = head.Device
	if x.err != nil {
		if x.lookFor != 0 && head.Device == x.err.Device && head.Index == x.lookFor {
			x.err.Err.Problem = ProblemReordered
			x.err.Err.Detail = fmt.Sprintf("record %d appears later, at %s", x.lookFor, where)
			x.lookFor = 0
		}
		return x.err
	}
	if x.only != "" && head.Device != "" && head.Device != x.only {
		return nil
	}
	v := x.vs[head.Device]
	if v == nil {
		v = NewVerifier(x.keys...)
		x.vs[head.Device] = v
		x.order = append(x.order, head.Device)
	}
	if err := v.JSONLine(line); err != nil {
		ve, ok := err.(*VerifyError)
		if !ok {
			return err
		}
		x.err = &ExportError{Device: head.Device, Where: where, Err: ve}
		if ve.Problem == ProblemMissing && head.Index != 0 {
			// A record line came early: if the missing record comes
			// later, the lines were reordered.
			x.lookFor = ve.Index
		}
		return x.err
	}
	return nil
}

// Finish checks what only the whole export shows: a device with an
// anchor but neither records nor checkpoints (a line moved to another
// device). It returns the first problem, or nil.
func (x *ExportVerifier) Finish() error {
	if x.err != nil {
		return x.err
	}
	for _, d := range x.order {
		v := x.vs[d]
		if s := v.Summary(); v.started && s.Records == 0 && s.Checkpoints+s.Skipped == 0 {
			x.err = &ExportError{Device: d, Err: &VerifyError{Index: v.prevIdx + 1, Problem: ProblemChanged,
				Detail: fmt.Sprintf("device %s has an anchor but no records", d)}}
			return x.err
		}
	}
	return nil
}

// Err returns the first problem (an *ExportError), or nil.
func (x *ExportVerifier) Err() error {
	if x.err == nil {
		return nil
	}
	return x.err
}

// Devices returns the devices seen, in order of first appearance ("" for
// lines without a device).
func (x *ExportVerifier) Devices() []string { return append([]string(nil), x.order...) }

// Summary returns what was verified of dev.
func (x *ExportVerifier) Summary(dev string) VerifySummary {
	if v := x.vs[dev]; v != nil {
		return v.Summary()
	}
	return VerifySummary{}
}
