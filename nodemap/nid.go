package nodemap

import (
	"cmp"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// netType is an LNet network type (LND). Zero means "no network".
type netType uint8

const (
	netLO netType = iota + 1
	netTCP
	netO2IB
	netGNI
	netGIP
	netPTLF
	netKFI
	netEFA
	netBXI3F
)

// netTypes lists the network types Lustre knows, in the order Lustre
// matches their names, and whether their addresses are IP addresses
// (otherwise they are 32-bit numbers).
var netTypes = [...]struct {
	typ  netType
	name string
	ip   bool
}{
	{netLO, "lo", false},
	{netTCP, "tcp", true},
	{netO2IB, "o2ib", true},
	{netGNI, "gni", false},
	{netGIP, "gip", true},
	{netPTLF, "ptlf", false},
	{netKFI, "kfi", false},
	{netEFA, "efa", true},
	{netBXI3F, "bxi3f", false},
}

func (t netType) name() string {
	for _, nt := range netTypes {
		if nt.typ == t {
			return nt.name
		}
	}
	return ""
}

func (t netType) isIP() bool {
	for _, nt := range netTypes {
		if nt.typ == t {
			return nt.ip
		}
	}
	return false
}

// Net is an LNet network: a type such as tcp, o2ib or kfi and a network
// number (tcp1 is type tcp, number 1). The zero Net is not valid.
type Net struct {
	typ netType
	num uint16
}

// TCP is the network "tcp" (tcp0), the one mdtd's TCP clients are on.
func TCP() Net { return Net{typ: netTCP} }

// ParseNet parses a network name: a known type (lo, tcp, o2ib, gni, gip,
// ptlf, kfi, efa, bxi3f) optionally followed by a decimal network number
// up to 65535; "lo" takes no number. "tcp0" and "tcp" are the same network.
func ParseNet(s string) (Net, error) {
	n, ok := parseNet(s)
	if !ok {
		return Net{}, &ParseError{Text: s, Err: ErrBadNID, Reason: "unknown network"}
	}
	return n, nil
}

func parseNet(s string) (Net, bool) {
	for _, nt := range netTypes {
		rest, ok := strings.CutPrefix(s, nt.name)
		if !ok {
			continue
		}
		if rest == "" {
			return Net{typ: nt.typ}, true
		}
		if nt.typ == netLO || !allDigits(rest) {
			return Net{}, false
		}
		v, err := strconv.ParseUint(rest, 10, 16)
		if err != nil {
			return Net{}, false
		}
		return Net{typ: nt.typ, num: uint16(v)}, true
	}
	return Net{}, false
}

// IsValid reports whether n is a real network (not the zero Net).
func (n Net) IsValid() bool { return n.typ != 0 }

// IsIP reports whether addresses on n are IP addresses.
func (n Net) IsIP() bool { return n.typ.isIP() }

// String returns the network's name as Lustre prints it: "tcp" for tcp0,
// "tcp1", "o2ib", "kfi", "lo". The zero Net prints as "".
func (n Net) String() string {
	if n.typ == 0 {
		return ""
	}
	if n.num == 0 {
		return n.typ.name()
	}
	return n.typ.name() + strconv.FormatUint(uint64(n.num), 10)
}

func (n Net) compare(o Net) int {
	return cmp.Or(cmp.Compare(n.typ, o.typ), cmp.Compare(n.num, o.num))
}

// NID is an LNet network identifier, an address on a network:
// "192.168.1.5@tcp", "2001:db8::5@o2ib1", "17@kfi", "0@lo". NIDs are
// comparable and can be map keys. The zero NID is not valid.
//
// IP addresses are held unmapped (an IPv4-mapped IPv6 address is its IPv4
// address) and without zone, so one host has one NID per network.
type NID struct {
	net  Net
	addr netip.Addr // IP networks only
	num  uint32     // numeric networks only
}

// LoNID returns 0@lo, the NID of a local client (mdtd's unix socket).
func LoNID() NID { return NID{net: Net{typ: netLO}} }

// NIDFromAddr returns addr@tcp, the NID of a TCP client at addr. It
// returns the zero NID if addr is not valid.
func NIDFromAddr(addr netip.Addr) NID {
	nid, _ := NIDFromAddrNet(addr, TCP())
	return nid
}

// NIDFromAddrNet returns addr@net. It reports false, and returns the zero
// NID, if addr is not valid or net is not an IP network.
func NIDFromAddrNet(addr netip.Addr, net Net) (NID, bool) {
	if !addr.IsValid() || !net.IsIP() {
		return NID{}, false
	}
	return NID{net: net, addr: addr.Unmap().WithZone("")}, true
}

// NIDFromNum returns num@net for a numeric network such as kfi or gni. It
// reports false, and returns the zero NID, if net is an IP network, or is
// lo and num is not 0.
func NIDFromNum(num uint32, net Net) (NID, bool) {
	if !net.IsValid() || net.IsIP() || (net.typ == netLO && num != 0) {
		return NID{}, false
	}
	return NID{net: net, num: num}, true
}

// ParseNID parses a NID as Lustre's libcfs_strnid does:
//
//   - ADDR@NET, where NET is as for ParseNet;
//   - on IP networks ADDR is a dotted-quad IPv4 address or an IPv6
//     address (no zone);
//   - on numeric networks ADDR is a decimal number or "0x" followed by
//     hexadecimal digits, up to 2^32-1;
//   - on lo, ADDR is 0 (0@lo is the only loopback NID);
//   - an address without "@NET" is on tcp, as in Lustre.
//
// Every error is a *ParseError wrapping ErrBadNID. ParseNID accepts every
// string String returns and gives back the same NID.
func ParseNID(s string) (NID, error) {
	n, reason := parseNID(s)
	if reason != "" {
		return NID{}, &ParseError{Text: s, Err: ErrBadNID, Reason: reason}
	}
	return n, nil
}

// MustParseNID is like ParseNID but panics on error. It is meant for
// constants and tests.
func MustParseNID(s string) NID {
	n, err := ParseNID(s)
	if err != nil {
		panic(err)
	}
	return n
}

// parseNID does the work of ParseNID and returns the reason for a failure.
func parseNID(s string) (NID, string) {
	addr, netName, found := strings.Cut(s, "@")
	net := TCP()
	if found {
		var ok bool
		if net, ok = parseNet(netName); !ok {
			return NID{}, "unknown network " + strconv.Quote(netName)
		}
	}
	if net.IsIP() {
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return NID{}, "bad IP address " + strconv.Quote(addr)
		}
		return NID{net: net, addr: a.Unmap()}, ""
	}
	v, ok := parseNumAddr(addr)
	if !ok {
		return NID{}, "bad numeric address " + strconv.Quote(addr)
	}
	if net.typ == netLO && v != 0 {
		return NID{}, "the only lo address is 0"
	}
	return NID{net: net, num: v}, ""
}

// parseNumAddr parses a numeric NID address: decimal, or hexadecimal after
// "0x"/"0X", as libcfs_num_str2addr does.
func parseNumAddr(s string) (uint32, bool) {
	base := 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s, base = s[2:], 16
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

// IsValid reports whether n is a real NID (not the zero NID).
func (n NID) IsValid() bool { return n.net.IsValid() }

// Net returns the network n is on.
func (n NID) Net() Net { return n.net }

// Addr returns n's IP address, or the zero netip.Addr on a numeric network.
func (n NID) Addr() netip.Addr { return n.addr }

// Num returns n's address on a numeric network, or 0 on an IP network.
func (n NID) Num() uint32 { return n.num }

// String returns n as Lustre prints it ("192.168.1.5@tcp",
// "2001:db8::5@o2ib1", "17@kfi", "0@lo"); the zero NID prints as "<?>",
// Lustre's text for LNET_ANY_NID.
func (n NID) String() string {
	if !n.IsValid() {
		return "<?>"
	}
	if n.net.IsIP() {
		return n.addr.String() + "@" + n.net.String()
	}
	return strconv.FormatUint(uint64(n.num), 10) + "@" + n.net.String()
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (n NID) MarshalText() ([]byte, error) {
	if !n.IsValid() {
		return []byte{}, nil
	}
	return []byte(n.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseNID; empty
// text gives the zero NID.
func (n *NID) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*n = NID{}
		return nil
	}
	v, err := ParseNID(string(text))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// family orders the kinds of addresses on one network.
type family uint8

const (
	famNone family = iota
	famNum
	famV4
	famV6
)

func (n NID) family() family {
	switch {
	case !n.IsValid():
		return famNone
	case !n.net.IsIP():
		return famNum
	case n.addr.Is4():
		return famV4
	default:
		return famV6
	}
}

// Compare returns -1, 0 or +1 ordering NIDs by network type, network
// number, address family (numeric, IPv4, IPv6) and address. The zero NID
// sorts first.
func (n NID) Compare(o NID) int {
	return cmp.Or(n.net.compare(o.net), cmp.Compare(n.family(), o.family()),
		n.addr.Compare(o.addr), cmp.Compare(n.num, o.num))
}

// sameSpace reports whether a and b are on the same network and in the
// same address family, so that an interval between them makes sense.
func sameSpace(a, b NID) bool {
	return a.IsValid() && a.net == b.net && a.family() == b.family()
}

// u32 returns n's address as a number, for numeric and IPv4 NIDs.
func (n NID) u32() uint32 {
	if n.addr.Is4() {
		b := n.addr.As4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return n.num
}

// withU32 returns the NID on n's network and family whose address is v.
func (n NID) withU32(v uint32) NID {
	if n.family() == famV4 {
		return NID{net: n.net, addr: netip.AddrFrom4([4]byte{
			byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})}
	}
	return NID{net: n.net, num: v}
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isDigitIn(c byte, base int) bool {
	switch {
	case c >= '0' && c <= '9':
		return int(c-'0') < base
	case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		return base == 16
	}
	return false
}

// maxU32 is the largest numeric address.
const maxU32 = math.MaxUint32
