package nodemap

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Range is a contiguous block of NIDs on one network and in one address
// family: every NID n with Start() <= n <= End(). Ranges come only from
// ParseRange (or UnmarshalText); the zero Range is not valid and contains
// nothing.
type Range struct {
	start, end NID
}

// ParseRange parses a nodemap NID range with the grammar of
// lctl nodemap_add_range (man lctl-nodemap-add-range.8, Lustre's
// cfs_parse_nidlist and nodemap_parse_range). The text is one of:
//
//   - ADDR_RANGE@NET, where NET is as for ParseNet and ADDR_RANGE is
//   - "*": every address of NET (every IPv4 address on IP networks);
//   - on IP networks, four dot-separated parts, each "*", a number, or a
//     bracketed list "[e1,e2,...]" of "n", "*", "lo-hi" or "lo-hi/step"
//     with numbers 0..255 (192.168.1.[1-254]@tcp);
//   - on IP networks, a CIDR block "a.b.c.d/len" (len 1..32) or
//     "ipv6/len" (len 1..128), or a single IPv6 address; host bits are
//     ignored, as in Lustre;
//   - on numeric networks (kfi, gni, lo ...), a number or a bracketed
//     list as above with numbers 0..2^32-1 ([1-60000]@kfi);
//   - START_NID:END_NID, the form lctl hands to the kernel: two NIDs on the
//     same network and family with START <= END (this is how String writes
//     a range no shorter form can express).
//
// Numbers inside ranges are read as the kernel's kstrtouint(.., 0) reads
// them: decimal, "0x" hexadecimal, or octal with a leading 0.
//
// The result must be one contiguous block: a list whose parts leave a gap
// (192.168.1.[1,5]), an octet that varies while a later octet is not the
// full 0-255 (10.0.[1-2].[1-254]), or a stepped expression that names more
// than one number (even if other entries of its list fill the gaps; Lustre
// refuses every step) gives ErrNotContiguous. Lists of adjacent or
// overlapping entries are accepted ([1-3,4-6] is [1-6]).
// Text that does not parse gives ErrBadRange, which takes precedence. Lists
// of several ranges ("a@tcp b@tcp") are not accepted. Every error is a
// *ParseError.
//
// Two texts that denote the same block give equal Ranges, and
// ParseRange(r.String()) == r for every Range r.
func ParseRange(s string) (Range, error) {
	r, pe := parseRange(s)
	if pe != nil {
		pe.Text = s
		return Range{}, pe
	}
	return r, nil
}

// MustParseRange is like ParseRange but panics on error. It is meant for
// constants and tests.
func MustParseRange(s string) Range {
	r, err := ParseRange(s)
	if err != nil {
		panic(err)
	}
	return r
}

// parseRange does the work of ParseRange; on failure it returns a
// *ParseError without Text.
func parseRange(s string) (Range, *ParseError) {
	if strings.Count(s, "@") == 2 {
		return parseStartEnd(s)
	}
	addr, netName, found := strings.Cut(s, "@")
	if !found {
		return Range{}, rangeErr(ErrBadRange, "no @NET")
	}
	net, ok := parseNet(netName)
	if !ok {
		return Range{}, rangeErr(ErrBadRange, "unknown network "+strconv.Quote(netName))
	}
	if addr == "" {
		return Range{}, rangeErr(ErrBadRange, "empty address range")
	}
	if addr == "*" {
		if net.IsIP() {
			return Range{
				start: NID{net: net, addr: netip.IPv4Unspecified()},
				end:   NID{net: net, addr: netip.AddrFrom4([4]byte{255, 255, 255, 255})},
			}, nil
		}
		return Range{start: NID{net: net}, end: NID{net: net, num: maxU32}}, nil
	}
	// A ':' or a '/' outside brackets makes it a netmask (CIDR) range.
	if slash := strings.IndexByte(addr, '/'); strings.ContainsRune(addr, ':') ||
		(slash >= 0 && !strings.ContainsRune(addr[slash:], ']')) {
		if !net.IsIP() {
			return Range{}, rangeErr(ErrBadRange, "netmask on a numeric network")
		}
		return parseNetmask(addr, net)
	}
	if net.IsIP() {
		return parseOctets(addr, net)
	}
	ivs, reason := parseExprList(addr, maxU32)
	if reason != "" {
		return Range{}, rangeErr(ErrBadRange, reason)
	}
	lo, hi, ok := contiguous(ivs)
	if !ok {
		return Range{}, rangeErr(ErrNotContiguous, "gap in address list")
	}
	return Range{start: NID{net: net, num: lo}, end: NID{net: net, num: hi}}, nil
}

// rangeErr returns a *ParseError for ParseRange to complete with the text.
func rangeErr(err error, reason string) *ParseError {
	return &ParseError{Err: err, Reason: reason}
}

// parseStartEnd parses "START_NID:END_NID": the separator is the first ':'
// after the first '@', so IPv6 NIDs work too.
func parseStartEnd(s string) (Range, *ParseError) {
	at := strings.IndexByte(s, '@')
	colon := strings.IndexByte(s[at:], ':')
	if colon < 0 {
		return Range{}, rangeErr(ErrBadRange, "two NIDs without ':' between them")
	}
	start, reason := parseNID(s[:at+colon])
	if reason != "" {
		return Range{}, rangeErr(ErrBadRange, "start: "+reason)
	}
	end, reason := parseNID(s[at+colon+1:])
	if reason != "" {
		return Range{}, rangeErr(ErrBadRange, "end: "+reason)
	}
	if !sameSpace(start, end) {
		return Range{}, rangeErr(ErrBadRange, "start and end on different networks or address families")
	}
	if start.Compare(end) > 0 {
		return Range{}, rangeErr(ErrBadRange, "start after end")
	}
	return Range{start: start, end: end}, nil
}

// parseNetmask parses "a.b.c.d/len", "ipv6/len" or "ipv6" on an IP network.
func parseNetmask(addr string, net Net) (Range, *ParseError) {
	ipText, lenText, hasLen := strings.Cut(addr, "/")
	ip, err := netip.ParseAddr(ipText)
	if err != nil || ip.Zone() != "" {
		return Range{}, rangeErr(ErrBadRange, "bad IP address "+strconv.Quote(ipText))
	}
	bitsLen := ip.BitLen()
	plen := bitsLen
	switch {
	case hasLen:
		v, err := strconv.ParseUint(lenText, 10, 8)
		if !allDigits(lenText) || err != nil || v < 1 || int(v) > bitsLen {
			return Range{}, rangeErr(ErrBadRange, "bad prefix length "+strconv.Quote(lenText))
		}
		plen = int(v)
	case ip.Is4():
		return Range{}, rangeErr(ErrBadRange, "IPv4 netmask without prefix length")
	}
	if ip.Is4In6() && plen >= 96 {
		ip, plen = ip.Unmap(), plen-96
	}
	p, err := ip.Prefix(plen)
	if err != nil {
		return Range{}, rangeErr(ErrBadRange, err.Error())
	}
	end := lastAddr(p)
	if end.Is4In6() {
		// The prefix ends in the IPv4-mapped block. NIDs there are held as
		// IPv4, so no IPv6 NID lies in that block: end the range below it
		// (membership is unchanged) to keep its bounds valid NIDs.
		end = below4In6
	}
	return Range{start: NID{net: net, addr: p.Addr()}, end: NID{net: net, addr: end}}, nil
}

// below4In6 is the IPv6 address just below the IPv4-mapped block
// ::ffff:0:0/96.
var below4In6 = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xfe, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})

// top4In6 is the last address of the IPv4-mapped block.
var top4In6 = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		for i := range b {
			b[i] |= hostMask(p.Bits(), i)
		}
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	for i := range b {
		b[i] |= hostMask(p.Bits(), i)
	}
	return netip.AddrFrom16(b)
}

// hostMask returns the host bits of byte i under a prefix of plen bits.
func hostMask(plen, i int) byte {
	switch n := plen - 8*i; {
	case n <= 0:
		return 0xff
	case n >= 8:
		return 0
	default:
		return 0xff >> n
	}
}

// parseOctets parses the a.b.c.d form on an IP network.
func parseOctets(addr string, net Net) (Range, *ParseError) {
	parts := strings.Split(addr, ".")
	if len(parts) != 4 {
		return Range{}, rangeErr(ErrBadRange, "IPv4 range needs 4 parts")
	}
	var octs [4][]interval
	for i, p := range parts {
		ivs, reason := parseExprList(p, 255)
		if reason != "" {
			return Range{}, rangeErr(ErrBadRange, "part "+strconv.Itoa(i+1)+": "+reason)
		}
		octs[i] = ivs
	}
	var lo, hi uint32
	varying := false
	for i, ivs := range octs {
		l, h, ok := contiguous(ivs)
		if !ok {
			return Range{}, rangeErr(ErrNotContiguous, "gap in part "+strconv.Itoa(i+1))
		}
		if varying && (l != 0 || h != 255) {
			return Range{}, rangeErr(ErrNotContiguous, "part "+strconv.Itoa(i+1)+" must be 0-255 after a varying part")
		}
		if l != h {
			varying = true
		}
		lo, hi = lo<<8|l, hi<<8|h
	}
	v4 := NID{net: net, addr: netip.IPv4Unspecified()}
	return Range{start: v4.withU32(lo), end: v4.withU32(hi)}, nil
}

// interval is an inclusive block [lo, hi] of numbers; step > 1 with
// hi > lo means only every step-th number from lo is included.
type interval struct {
	lo, hi, step uint32
}

// parseExprList parses a number, "*", or a bracketed list of range
// expressions with numbers in 0..max (Lustre's cfs_expr_list_parse).
func parseExprList(s string, max uint32) ([]interval, string) {
	inner, ok := strings.CutPrefix(s, "[")
	if ok {
		inner, ok = strings.CutSuffix(inner, "]")
	}
	if !ok {
		iv, reason := parseRangeExpr(s, max, false)
		if reason != "" {
			return nil, reason
		}
		return []interval{iv}, ""
	}
	var ivs []interval
	for tok := range strings.SplitSeq(inner, ",") {
		iv, reason := parseRangeExpr(tok, max, true)
		if reason != "" {
			return nil, reason
		}
		ivs = append(ivs, iv)
	}
	return ivs, ""
}

// parseRangeExpr parses "*", "n" and, when bracketed, "lo-hi" and
// "lo-hi/step" (Lustre's cfs_range_expr_parse).
func parseRangeExpr(s string, max uint32, bracketed bool) (interval, string) {
	if s == "*" {
		return interval{0, max, 1}, ""
	}
	if n, ok := kstrtouint(s); ok {
		if n > max {
			return interval{}, "number " + s + " out of range"
		}
		return interval{n, n, 1}, ""
	}
	if !bracketed {
		return interval{}, "bad number " + strconv.Quote(s)
	}
	loText, rest, found := strings.Cut(s, "-")
	if !found {
		return interval{}, "bad expression " + strconv.Quote(s)
	}
	hiText, stepText, hasStep := strings.Cut(rest, "/")
	lo, ok1 := kstrtouint(loText)
	hi, ok2 := kstrtouint(hiText)
	step, ok3 := uint32(1), true
	if hasStep {
		step, ok3 = kstrtouint(stepText)
	}
	switch {
	case !ok1 || !ok2 || !ok3:
		return interval{}, "bad expression " + strconv.Quote(s)
	case lo > max || hi > max || step > max:
		return interval{}, "number out of range in " + strconv.Quote(s)
	case step == 0:
		return interval{}, "zero step in " + strconv.Quote(s)
	case lo > hi:
		return interval{}, "low end above high end in " + strconv.Quote(s)
	}
	return interval{lo, hi, step}, ""
}

// kstrtouint parses an unsigned 32-bit number the way the kernel's
// kstrtouint(s, 0, ..) does: "0x" hexadecimal, a leading 0 octal,
// otherwise decimal.
func kstrtouint(s string) (uint32, bool) {
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		s, base = s[2:], 16
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, false
	}
	for i := range len(s) {
		if !isDigitIn(s[i], base) {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, base, 32)
	return uint32(v), err == nil
}

// contiguous reports whether the union of ivs is one block [lo, hi]. A
// stepped interval that names more than one number is never contiguous.
func contiguous(ivs []interval) (lo, hi uint32, ok bool) {
	blocks := make([]interval, 0, len(ivs))
	for _, iv := range ivs {
		if iv.step > 1 {
			if iv.hi-iv.lo >= iv.step {
				return 0, 0, false
			}
			iv.hi = iv.lo
		}
		blocks = append(blocks, iv)
	}
	slices.SortFunc(blocks, func(a, b interval) int { return cmp.Compare(a.lo, b.lo) })
	lo, hi = blocks[0].lo, blocks[0].hi
	for _, b := range blocks[1:] {
		if hi != maxU32 && b.lo > hi+1 {
			return 0, 0, false
		}
		hi = max(hi, b.hi)
	}
	return lo, hi, true
}

// IsValid reports whether r is a real range (not the zero Range).
func (r Range) IsValid() bool { return r.start.IsValid() }

// Start returns the lowest NID in r.
func (r Range) Start() NID { return r.start }

// End returns the highest NID in r.
func (r Range) End() NID { return r.end }

// Net returns the network r is on.
func (r Range) Net() Net { return r.start.net }

// Contains reports whether n lies in r.
func (r Range) Contains(n NID) bool {
	return r.IsValid() && sameSpace(r.start, n) &&
		r.start.Compare(n) <= 0 && n.Compare(r.end) <= 0
}

// Overlaps reports whether r and o have a NID in common.
func (r Range) Overlaps(o Range) bool {
	return r.IsValid() && sameSpace(r.start, o.start) &&
		r.start.Compare(o.end) <= 0 && o.start.Compare(r.end) <= 0
}

// String returns r in the shortest of these forms, all accepted by
// ParseRange: "NID@NET" for one NID; "*@NET" for a whole network;
// "a.b.c.d/len@NET" or "ipv6/len@NET" for a CIDR block;
// "a.b.[lo-hi].*@NET" for other blocks the octet grammar can express;
// "[lo-hi]@NET" on numeric networks; otherwise "START_NID:END_NID". The
// zero Range prints as "".
func (r Range) String() string {
	if !r.IsValid() {
		return ""
	}
	net := "@" + r.start.net.String()
	if r.start == r.end {
		return r.start.String()
	}
	switch r.start.family() {
	case famNum:
		if r.start.num == 0 && r.end.num == maxU32 {
			return "*" + net
		}
		return "[" + strconv.FormatUint(uint64(r.start.num), 10) + "-" +
			strconv.FormatUint(uint64(r.end.num), 10) + "]" + net
	case famV4:
		lo, hi := r.start.u32(), r.end.u32()
		if lo == 0 && hi == maxU32 {
			return "*" + net
		}
		if size := hi - lo + 1; size&(size-1) == 0 && lo&(size-1) == 0 {
			return r.start.addr.String() + "/" + strconv.Itoa(32-bits.TrailingZeros32(size)) + net
		}
		if s, ok := octetForm(lo, hi); ok {
			return s + net
		}
	case famV6:
		if p, ok := v6Prefix(r.start.addr, r.end.addr); ok {
			return p.String() + net
		}
		if r.end.addr == below4In6 {
			if p, ok := v6Prefix(r.start.addr, top4In6); ok {
				return p.String() + net
			}
		}
	}
	return r.start.String() + ":" + r.end.String()
}

// octetForm writes [lo, hi] as a.b.[x-y].* if that denotes exactly it.
func octetForm(lo, hi uint32) (string, bool) {
	var parts [4]string
	varying := false
	for i := range 4 {
		shift := 24 - 8*i
		l, h := lo>>shift&0xff, hi>>shift&0xff
		switch {
		case varying && l == 0 && h == 255:
			parts[i] = "*"
		case varying:
			return "", false
		case l == h:
			parts[i] = strconv.FormatUint(uint64(l), 10)
		default:
			parts[i] = "[" + strconv.FormatUint(uint64(l), 10) + "-" +
				strconv.FormatUint(uint64(h), 10) + "]"
			varying = true
		}
	}
	return strings.Join(parts[:], "."), true
}

// v6Prefix returns the prefix, of length 1 to 128 as ParseRange accepts,
// whose first and last addresses are lo and hi.
func v6Prefix(lo, hi netip.Addr) (netip.Prefix, bool) {
	for plen := 1; plen <= 128; plen++ {
		p, err := lo.Prefix(plen)
		if err == nil && p.Addr() == lo && lastAddr(p) == hi {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (r Range) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseRange; empty
// text gives the zero Range.
func (r *Range) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*r = Range{}
		return nil
	}
	v, err := ParseRange(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
