package cli

import (
	"fmt"
	"math/bits"
	"strconv"
)

// NumberError reports a command-line value that is not a number the
// command accepts. Its message names the value.
type NumberError struct {
	Value string
	// Octal is true for a mode (octal digits), false for a decimal number.
	Octal bool
	// Max is the largest value accepted; 0 when the text is not a number
	// at all.
	Max uint64
}

func (e *NumberError) Error() string {
	kind := "a whole decimal number"
	if e.Octal {
		kind = "an octal number"
	}
	if e.Max != 0 {
		if e.Octal {
			return fmt.Sprintf("'%s' is out of range (at most %#o)", e.Value, e.Max)
		}
		return fmt.Sprintf("'%s' is out of range (at most %d)", e.Value, e.Max)
	}
	return fmt.Sprintf("'%s' is not %s", e.Value, kind)
}

// ParseUint is the one parser of decimal numbers on the command lines: s
// must be one or more ASCII digits and nothing else (no sign, blank,
// base prefix, exponent or '_'), at most max. "abc", "12x", "-5", "+5",
// "1e3", "0x10", "0b11", "1_000" and "" are errors (*NumberError).
func ParseUint(s string, max uint64) (uint64, error) {
	return parse(s, 10, max)
}

// ParseOctal parses a mode: one or more octal digits (an optional leading
// 0 is just a digit) and nothing else, at most max.
func ParseOctal(s string, max uint64) (uint64, error) {
	return parse(s, 8, max)
}

func parse(s string, base uint64, max uint64) (uint64, error) {
	bad := &NumberError{Value: s, Octal: base == 8}
	if s == "" {
		return 0, bad
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := uint64(s[i]) - '0'
		if s[i] < '0' || d >= base {
			return 0, bad
		}
		hi, lo := bits.Mul64(v, base)
		if hi != 0 || lo+d < lo {
			bad.Max = max
			return 0, bad
		}
		v = lo + d
	}
	if v > max {
		bad.Max = max
		return 0, bad
	}
	return v, nil
}

// Uint32Value is a pflag.Value for ids and counts: ParseUint up to
// MaxUint32.
type Uint32Value uint32

// NewUint32Value returns a Uint32Value set to def, stored at p.
func NewUint32Value(p *uint32, def uint32) *Uint32Value {
	*p = def
	return (*Uint32Value)(p)
}

// Set implements pflag.Value.
func (v *Uint32Value) Set(s string) error {
	n, err := ParseUint(s, 1<<32-1)
	if err != nil {
		return err
	}
	*v = Uint32Value(n)
	return nil
}

// String implements pflag.Value.
func (v *Uint32Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

// Type implements pflag.Value.
func (v *Uint32Value) Type() string { return "uint32" }

// Uint64Value is a pflag.Value for record numbers: ParseUint up to
// MaxInt64 (the largest index a changelog can reach).
type Uint64Value uint64

// NewUint64Value returns a Uint64Value set to def, stored at p.
func NewUint64Value(p *uint64, def uint64) *Uint64Value {
	*p = def
	return (*Uint64Value)(p)
}

// Set implements pflag.Value.
func (v *Uint64Value) Set(s string) error {
	n, err := ParseUint(s, 1<<63-1)
	if err != nil {
		return err
	}
	*v = Uint64Value(n)
	return nil
}

// String implements pflag.Value.
func (v *Uint64Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

// Type implements pflag.Value.
func (v *Uint64Value) Type() string { return "uint" }
