package fid_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/fid"
	"pgregory.net/rapid"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want fid.FID
	}{
		{"[0x200000401:0x6:0x0]", fid.FID{Seq: 0x200000401, Oid: 6}},
		{"0x200000401:0x6:0x0", fid.FID{Seq: 0x200000401, Oid: 6}},
		{"[0:0x0:0x0]", fid.Zero},
		{"0:0:0", fid.Zero},
		{"[0x200000007:0x1:0x0]", fid.Root},
		{"0X200000007:0X1:0X0", fid.Root},
		{"[0x20000000A:0xaBc:0xF]", fid.FID{Seq: 0x20000000a, Oid: 0xabc, Ver: 0xf}},
		{"8589934599:1:0", fid.Root},                      // decimal
		{"0100000000007:01:00", fid.Root},                 // octal
		{"0x200000007:1:00", fid.Root},                    // mixed bases
		{"0x000000000200000007:0x00000001:0x0", fid.Root}, // leading zeros
		{"  [0x200000007:0x1:0x0]", fid.Root},             // leading spaces
		{" \t\n\v\f\r0x200000007:0x1:0x0", fid.Root},      // C isspace
		{"[[0x200000007:0x1:0x0]", fid.Root},              // Lustre skips every '['
		{"[[0x200000007:0x1:0x0", fid.Root},               // ']' is optional
		{"[0x200000007:0x1:0x0", fid.Root},                // ']' is optional
		{"0xffffffffffffffff:0xffffffff:0xffffffff", fid.FID{Seq: math.MaxUint64, Oid: math.MaxUint32, Ver: math.MaxUint32}},
		{"18446744073709551615:4294967295:037777777777", fid.FID{Seq: math.MaxUint64, Oid: math.MaxUint32, Ver: math.MaxUint32}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := fid.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseReject(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", fid.ErrInvalid},
		{" ", fid.ErrInvalid},
		{"[", fid.ErrInvalid},
		{"[]", fid.ErrInvalid},
		{"]", fid.ErrInvalid},
		{"[0x1:0x2]", fid.ErrInvalid},
		{"0x1:0x2", fid.ErrInvalid},
		{"0x1:0x2:", fid.ErrInvalid},
		{"0x1::0x3", fid.ErrInvalid},
		{":0x2:0x3", fid.ErrInvalid},
		{"0x1:0x2:0x3:0x4", fid.ErrInvalid},
		{"[0x1:0x2:0x3]x", fid.ErrInvalid},
		{"[0x1:0x2:0x3]]", fid.ErrInvalid},
		{"0x1:0x2:0x3]", fid.ErrInvalid}, // ']' without '['
		{"0x1:0x2:0x3 ", fid.ErrInvalid},
		{"0x1:0x2:0x3\n", fid.ErrInvalid},
		{"0x1: 0x2:0x3", fid.ErrInvalid},
		{"0x1:-1:0", fid.ErrInvalid},
		{"+1:1:0", fid.ErrInvalid},
		{"0x1:0x1_0:0", fid.ErrInvalid},
		{"1_0:1:0", fid.ErrInvalid},
		{"0x:0x1:0x0", fid.ErrInvalid},
		{"0xg:0x1:0x0", fid.ErrInvalid},
		{"08:1:0", fid.ErrInvalid},
		{"0o7:1:0", fid.ErrInvalid},
		{"0b1:1:0", fid.ErrInvalid},
		{"x1:1:0", fid.ErrInvalid},
		{"0x1;0x2;0x3", fid.ErrInvalid},
		{"[0x1:0x2:0x3]\x00", fid.ErrInvalid},
		{"１:2:3", fid.ErrInvalid},                          // full-width digit
		{"0x100000000000000000:0x1:0x0]x", fid.ErrInvalid}, // syntax wins over range
		{"[0x200000401:0x100000000:0x0]", fid.ErrRange},
		{"[0x200000401:0x1:0x100000000]", fid.ErrRange},
		{"0x1:4294967296:0", fid.ErrRange},
		{"0x1:040000000000:0", fid.ErrRange},
		{"0x10000000000000000:0x1:0x0", fid.ErrRange},
		{"18446744073709551616:1:0", fid.ErrRange},
		{"02000000000000000000000:1:0", fid.ErrRange},
		{"0x" + strings.Repeat("f", 100) + ":1:0", fid.ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := fid.Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.in, got)
			}
			if got != fid.Zero {
				t.Errorf("Parse(%q) returned %v with its error, want the zero FID", tt.in, got)
			}
			checkParseError(t, tt.in, err)
			if !errors.Is(err, tt.want) {
				t.Errorf("Parse(%q) error %v: errors.Is(%v) = false", tt.in, err, tt.want)
			}
		})
	}
}

// checkParseError checks the parts of a Parse error that do not depend on
// the kind of fault.
func checkParseError(t testing.TB, in string, err error) {
	t.Helper()
	var pe *fid.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse(%q) error %T, want *fid.ParseError", in, err)
	}
	if pe.Input != in {
		t.Errorf("ParseError.Input = %q, want %q", pe.Input, in)
	}
	if isInvalid, isRange := errors.Is(err, fid.ErrInvalid), errors.Is(err, fid.ErrRange); isInvalid == isRange {
		t.Errorf("Parse(%q) error %v: Is(ErrInvalid) = %v, Is(ErrRange) = %v, want exactly one", in, err, isInvalid, isRange)
	}
	if want := "fid: invalid FID '" + in + "'"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Parse(%q) error %q, want prefix %q", in, err.Error(), want)
	}
}

func TestParseErrorMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&fid.ParseError{Input: "bad", Err: fid.ErrInvalid}, "fid: invalid FID 'bad'"},
		{&fid.ParseError{Input: "0x1:0x100000000:0", Err: fid.ErrRange}, "fid: invalid FID '0x1:0x100000000:0': out of range"},
		{&fid.ParseError{Input: "", Err: fid.ErrInvalid}, "fid: invalid FID ''"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	_, err := fid.Parse("[0x1:0x2]")
	if got, want := err.Error(), "fid: invalid FID '[0x1:0x2]'"; got != want {
		t.Errorf("Parse error = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("lookup: %w", err)
	if !errors.Is(wrapped, fid.ErrInvalid) {
		t.Errorf("wrapped ParseError does not match ErrInvalid")
	}
}

func TestMustParse(t *testing.T) {
	if got := fid.MustParse("[0x200000007:0x1:0x0]"); got != fid.Root {
		t.Errorf("MustParse = %v, want %v", got, fid.Root)
	}
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, fid.ErrInvalid) {
			t.Errorf("MustParse(garbage) panicked with %v, want an ErrInvalid error", r)
		}
	}()
	fid.MustParse("garbage")
}

func TestParseStringRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFID().Draw(t, "f")
		s := f.String()
		got, err := fid.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got != f {
			t.Fatalf("Parse(%q) = %v, want %v", s, got, f)
		}
	})
}

// TestParseAnyForm writes a FID with random bases, case, leading spaces and
// brackets, and checks that Parse reads it back.
func TestParseAnyForm(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFID().Draw(t, "f")
		var b strings.Builder
		b.WriteString(rapid.StringOf(rapid.SampledFrom([]rune(" \t\n\v\f\r"))).Draw(t, "space"))
		open := rapid.IntRange(0, 2).Draw(t, "open")
		b.WriteString(strings.Repeat("[", open))
		for i, v := range []uint64{f.Seq, uint64(f.Oid), uint64(f.Ver)} {
			if i > 0 {
				b.WriteByte(':')
			}
			zeros := strings.Repeat("0", rapid.IntRange(0, 3).Draw(t, "zeros"))
			switch rapid.IntRange(0, 3).Draw(t, "base") {
			case 0:
				fmt.Fprintf(&b, "%d", v)
			case 1:
				fmt.Fprintf(&b, "0%s%o", zeros, v)
			case 2:
				fmt.Fprintf(&b, "0x%s%x", zeros, v)
			case 3:
				fmt.Fprintf(&b, "0X%s%X", zeros, v)
			}
		}
		if open > 0 && rapid.Bool().Draw(t, "close") {
			b.WriteByte(']')
		}
		s := b.String()
		got, err := fid.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got != f {
			t.Fatalf("Parse(%q) = %v, want %v", s, got, f)
		}
	})
}
