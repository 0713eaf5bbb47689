package main

import (
	"math"
	"strings"
)

// strtoll parses s as C's strtoll(s, NULL, 10) does: leading blanks, an
// optional sign, then as many decimal digits as there are; text without
// digits is 0 and overflow saturates. Lustre's lfs parses record numbers
// this way, so "abc" means 0.
func strtoll(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var v uint64
	over := false
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			over = true
			break
		}
		v = v*10 + d
	}
	switch {
	case neg && (over || v > 1<<63):
		return math.MinInt64
	case neg:
		return -int64(v)
	case over || v > math.MaxInt64:
		return math.MaxInt64
	default:
		return int64(v)
	}
}
