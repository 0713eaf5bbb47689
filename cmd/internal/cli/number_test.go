package cli

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseUint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  uint64
		want uint64
		err  string
	}{
		{"0", math.MaxUint64, 0, ""},
		{"12", math.MaxUint64, 12, ""},
		{"007", math.MaxUint64, 7, ""},
		{"18446744073709551615", math.MaxUint64, math.MaxUint64, ""},
		{"18446744073709551616", math.MaxUint64, 0, "'18446744073709551616' is out of range (at most 18446744073709551615)"},
		{"4294967296", math.MaxUint32, 0, "'4294967296' is out of range (at most 4294967295)"},
		{"abc", math.MaxUint64, 0, "'abc' is not a whole decimal number"},
		{"12x", math.MaxUint64, 0, "'12x' is not a whole decimal number"},
		{"-5", math.MaxUint64, 0, "'-5' is not a whole decimal number"},
		{"+5", math.MaxUint64, 0, "'+5' is not"},
		{"1e3", math.MaxUint64, 0, "'1e3' is not"},
		{"0x10", math.MaxUint64, 0, "'0x10' is not"},
		{"0b11", math.MaxUint64, 0, "'0b11' is not"},
		{"0o7", math.MaxUint64, 0, "'0o7' is not"},
		{"1_000", math.MaxUint64, 0, "'1_000' is not"},
		{"", math.MaxUint64, 0, "'' is not a whole decimal number"},
		{" 1", math.MaxUint64, 0, "' 1' is not"},
		{"1 ", math.MaxUint64, 0, "'1 ' is not"},
		{"１", math.MaxUint64, 0, "is not"}, // a full-width digit
		{"1.0", math.MaxUint64, 0, "'1.0' is not"},
	} {
		got, err := ParseUint(tc.in, tc.max)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseUint(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseUint(%q) = %d, %v; want error %q", tc.in, got, err, tc.err)
		case tc.err != "":
			var ne *NumberError
			if !errors.As(err, &ne) || ne.Value != tc.in {
				t.Errorf("ParseUint(%q): error %T does not name the value", tc.in, err)
			}
		}
	}
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{{"0666", 0o666, true}, {"777", 0o777, true}, {"0", 0, true}, {"0999", 0, false}, {"1777", 0, false}, {"0o666", 0, false}, {"", 0, false}, {"-1", 0, false}} {
		got, err := ParseOctal(tc.in, 0o777)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseOctal(%q) = %#o, %v", tc.in, got, err)
		}
	}
}

// FuzzParseUint checks ParseUint against its definition: it accepts
// exactly the non-empty strings of ASCII digits whose value fits, and then
// agrees with strconv.
func FuzzParseUint(f *testing.F) {
	for _, s := range []string{"0", "12", "abc", "12x", "-5", "1e3", "0x10", "", "0b11", "1_000", "18446744073709551616", "4294967295"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, max := range []uint64{math.MaxUint64, math.MaxUint32} {
			got, err := ParseUint(s, max)
			digits := s != "" && strings.Trim(s, "0123456789") == ""
			ref, rerr := strconv.ParseUint(s, 10, 64)
			want := digits && rerr == nil && ref <= max
			if (err == nil) != want {
				t.Fatalf("ParseUint(%q, %d) = %d, %v; want ok=%v", s, max, got, err, want)
			}
			if err == nil && got != ref {
				t.Fatalf("ParseUint(%q) = %d, strconv says %d", s, got, ref)
			}
		}
	})
}
