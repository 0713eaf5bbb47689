package fid_test

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/fid"
)

// refSyntax is an independent statement of the accepted syntax; refParse
// uses it with strconv to check Parse.
var refSyntax = regexp.MustCompile(`^[ \t\n\v\f\r]*(\[*)` +
	`(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*):` +
	`(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*):` +
	`(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(\]?)$`)

// refParse is a slow reference implementation of Parse that returns a bare
// sentinel on failure.
func refParse(s string) (fid.FID, error) {
	m := refSyntax.FindStringSubmatch(s)
	if m == nil || (m[1] == "" && m[5] != "") {
		return fid.FID{}, fid.ErrInvalid
	}
	var v [3]uint64
	for i, bits := range []int{64, 32, 32} {
		n, err := strconv.ParseUint(m[2+i], 0, bits)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return fid.FID{}, fid.ErrRange
			}
			return fid.FID{}, fid.ErrInvalid // not reached: refSyntax matched
		}
		v[i] = n
	}
	return fid.FID{Seq: v[0], Oid: uint32(v[1]), Ver: uint32(v[2])}, nil
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"[",
		"[0x200000401:0x6:0x0]",
		"0x200000401:0x6:0x0",
		"[0:0x0:0x0]",
		"  [[0x200000007:0x1:0x0",
		"8589934599:01:0",
		"0xffffffffffffffff:0xffffffff:0xffffffff",
		"0x10000000000000000:0x1:0x0",
		"0x1:0x100000000:0",
		"[0x1:0x2]",
		"0x1:0x2:0x3:0x4",
		"[0x1:0x2:0x3]x",
		"0x1:-1:0",
		"0x1:0x1_0:0",
		"0o7:0b1:0",
		"08:0x:0X",
		"\t0x1:0x2:0x3]",
		(fid.FID{Seq: math.MaxUint64}).String(),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := fid.Parse(s)
		want, wantErr := refParse(s)
		if err != nil {
			checkParseError(t, s, err)
			if got != fid.Zero {
				t.Errorf("Parse(%q) returned %v with its error", s, got)
			}
			if wantErr == nil {
				t.Fatalf("Parse(%q): %v; reference parsed %v", s, err, want)
			}
			if !errors.Is(err, wantErr) {
				t.Fatalf("Parse(%q): %v; reference says %v", s, err, wantErr)
			}
			if !strings.Contains(err.Error(), "'"+s+"'") {
				t.Fatalf("Parse(%q) error %q does not quote the input", s, err)
			}
			return
		}
		if wantErr != nil {
			t.Fatalf("Parse(%q) = %v; reference says %v", s, got, wantErr)
		}
		if got != want {
			t.Fatalf("Parse(%q) = %v; reference parsed %v", s, got, want)
		}
		again, err := fid.Parse(got.String())
		if err != nil || again != got {
			t.Fatalf("Parse(%q) = %v, %v; want %v", got.String(), again, err, got)
		}
	})
}
