package fid

import (
	"errors"
	"math"
)

// Sentinel errors of Parse. Callers map ErrInvalid to EINVAL and ErrRange to
// ERANGE; match them with errors.Is.
var (
	// ErrInvalid reports text that is not a FID at all.
	ErrInvalid = errors.New("fid: invalid FID syntax")
	// ErrRange reports a well-formed FID whose sequence does not fit 64
	// bits or whose object id or version does not fit 32 bits.
	ErrRange = errors.New("fid: FID field out of range")
)

// ParseError is the error Parse returns. Input is the text given to Parse,
// unchanged; Err is ErrInvalid or ErrRange.
type ParseError struct {
	Input string
	Err   error
}

// Error returns "fid: invalid FID '<input>'", with ": out of range" added
// for ErrRange, in the manner of "lfs fid2path: invalid FID 'X'".
func (e *ParseError) Error() string {
	msg := "fid: invalid FID '" + e.Input + "'"
	switch {
	case e.Err == nil || errors.Is(e.Err, ErrInvalid):
		return msg
	case errors.Is(e.Err, ErrRange):
		return msg + ": out of range"
	default:
		return msg + ": " + e.Err.Error()
	}
}

// Unwrap returns e.Err.
func (e *ParseError) Unwrap() error { return e.Err }

// Parse parses a FID the way Lustre's llapi_fid_parse does, requiring that
// nothing trails it. The accepted form is:
//
//   - optional leading white space (C isspace: space, \t, \n, \v, \f, \r);
//   - optional '[' characters (any number, as in Lustre);
//   - seq ':' oid ':' ver, each a non-empty unsigned number with C strtoull
//     base detection: "0x"/"0X" then hex digits, a leading "0" for octal,
//     otherwise decimal. Signs, inner spaces, underscores and Go's "0o"/"0b"
//     prefixes are rejected;
//   - one optional ']', accepted only if a '[' was seen;
//   - end of input.
//
// Seq must fit 64 bits and Oid and Ver 32 bits. Every error is a
// *ParseError; syntax is checked over the whole input before ranges, so an
// input with both kinds of fault reports ErrInvalid. Parse accepts every
// string that String returns.
func Parse(s string) (FID, error) {
	f, err := parse(s)
	if err != nil {
		return FID{}, &ParseError{Input: s, Err: err}
	}
	return f, nil
}

// MustParse is like Parse but panics on error. It is meant for constants
// and tests.
func MustParse(s string) FID {
	f, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return f
}

// parse does the work of Parse and returns a bare sentinel on failure.
func parse(s string) (FID, error) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	bracket := false
	for i < len(s) && s[i] == '[' {
		bracket = true
		i++
	}
	var (
		val      [3]uint64
		overflow bool
	)
	for k := range val {
		if k > 0 {
			if i >= len(s) || s[i] != ':' {
				return FID{}, ErrInvalid
			}
			i++
		}
		v, over, end, ok := scanUint(s, i)
		if !ok {
			return FID{}, ErrInvalid
		}
		val[k] = v
		overflow = overflow || over
		i = end
	}
	if bracket && i < len(s) && s[i] == ']' {
		i++
	}
	if i != len(s) {
		return FID{}, ErrInvalid
	}
	if overflow || val[1] > math.MaxUint32 || val[2] > math.MaxUint32 {
		return FID{}, ErrRange
	}
	return FID{Seq: val[0], Oid: uint32(val[1]), Ver: uint32(val[2])}, nil
}

// scanUint scans the unsigned number that starts at s[i], detecting its base
// like strtoull with base 0. It returns the value, whether the value
// overflowed 64 bits (the digits are consumed regardless), and the index just
// past the number. ok is false if there is no digit where one is required.
func scanUint(s string, i int) (v uint64, overflow bool, end int, ok bool) {
	base := uint64(10)
	if i < len(s) && s[i] == '0' {
		if i+1 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') {
			base = 16
			i += 2
		} else {
			// The leading 0 is itself an octal digit.
			base = 8
		}
	}
	start := i
	for ; i < len(s); i++ {
		d := digitValue(s[i])
		if d >= base {
			break
		}
		if v > (math.MaxUint64-d)/base {
			overflow = true
			continue
		}
		v = v*base + d
	}
	return v, overflow, i, i > start
}

// digitValue returns the value of c as a digit in bases up to 16, or 16 if c
// is not such a digit.
func digitValue(c byte) uint64 {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0')
	case 'a' <= c && c <= 'f':
		return uint64(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return uint64(c-'A') + 10
	default:
		return 16
	}
}

// isSpace reports whether c is white space in the C locale's isspace.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}
