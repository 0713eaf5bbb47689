package nodemap_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/fidlog/fidlog/nodemap"
)

func TestParseNID(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical form; "" means the parse must fail
	}{
		{"192.168.1.5@tcp", "192.168.1.5@tcp"},
		{"192.168.1.5@tcp0", "192.168.1.5@tcp"},
		{"192.168.1.5@tcp1", "192.168.1.5@tcp1"},
		{"192.168.1.5@tcp01", "192.168.1.5@tcp1"},
		{"192.168.1.5", "192.168.1.5@tcp"},
		{"10.0.0.1@o2ib", "10.0.0.1@o2ib"},
		{"10.0.0.1@o2ib1", "10.0.0.1@o2ib1"},
		{"10.0.0.1@gip", "10.0.0.1@gip"},
		{"10.0.0.1@efa3", "10.0.0.1@efa3"},
		{"2001:db8::5@tcp", "2001:db8::5@tcp"},
		{"2001:DB8:0:0::5@o2ib2", "2001:db8::5@o2ib2"},
		{"::ffff:10.1.2.3@tcp", "10.1.2.3@tcp"},
		{"0@lo", "0@lo"},
		{"5@kfi", "5@kfi"},
		{"0x10@kfi", "16@kfi"},
		{"4294967295@gni", "4294967295@gni"},
		{"12@ptlf", "12@ptlf"},
		{"7@bxi3f2", "7@bxi3f2"},
		{"65535@kfi65535", "65535@kfi65535"},

		{"", ""},
		{"@tcp", ""},
		{"192.168.1.5@", ""},
		{"192.168.1.5@tcp@tcp", ""},
		{"192.168.1.5@udp", ""},
		{"192.168.1.5@TCP", ""},
		{"192.168.1.5@tcp-1", ""},
		{"192.168.1.5@tcp65536", ""},
		{"192.168.1.256@tcp", ""},
		{"192.168.01.5@tcp", ""},
		{"192.168.1@tcp", ""},
		{"fe80::1%eth0@tcp", ""},
		{"5@tcp", ""},
		{"1.2.3.4@kfi", ""},
		{"4294967296@kfi", ""},
		{"-1@kfi", ""},
		{"0x@kfi", ""},
		{"1@lo", ""},
		{"0@lo1", ""},
		{"*@tcp", ""},
		{" 1.2.3.4@tcp", ""},
	}
	for _, tt := range tests {
		n, err := nodemap.ParseNID(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseNID(%q) = %v, want error", tt.in, n)
				continue
			}
			var pe *nodemap.ParseError
			if !errors.As(err, &pe) || pe.Text != tt.in || !errors.Is(err, nodemap.ErrBadNID) ||
				!errors.Is(err, nodemap.ErrInvalid) {
				t.Errorf("ParseNID(%q) error = %#v, want *ParseError with ErrBadNID and ErrInvalid", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseNID(%q) error: %v", tt.in, err)
			continue
		}
		if got := n.String(); got != tt.want {
			t.Errorf("ParseNID(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		back, err := nodemap.ParseNID(n.String())
		if err != nil || back != n {
			t.Errorf("ParseNID(%q) does not round-trip: %v, %v", n.String(), back, err)
		}
	}
}

func TestNIDConstructors(t *testing.T) {
	if got := nodemap.LoNID(); got != nodemap.MustParseNID("0@lo") || got.String() != "0@lo" {
		t.Errorf("LoNID() = %v", got)
	}
	a := netip.MustParseAddr("::ffff:192.0.2.7")
	if got := nodemap.NIDFromAddr(a); got != nodemap.MustParseNID("192.0.2.7@tcp") {
		t.Errorf("NIDFromAddr(%v) = %v, want 192.0.2.7@tcp", a, got)
	}
	if got := nodemap.NIDFromAddr(netip.Addr{}); got.IsValid() || got.String() != "<?>" {
		t.Errorf("NIDFromAddr(invalid) = %v, want the zero NID", got)
	}
	kfi, err := nodemap.ParseNet("kfi")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := nodemap.NIDFromAddrNet(a, kfi); ok {
		t.Errorf("NIDFromAddrNet on kfi succeeded")
	}
	if n, ok := nodemap.NIDFromNum(9, kfi); !ok || n.String() != "9@kfi" {
		t.Errorf("NIDFromNum(9, kfi) = %v, %v", n, ok)
	}
	if _, ok := nodemap.NIDFromNum(9, nodemap.TCP()); ok {
		t.Errorf("NIDFromNum on tcp succeeded")
	}
}

func TestNIDCompare(t *testing.T) {
	// In order: network type (lo, tcp, o2ib ... kfi), network number,
	// family (IPv4 before IPv6), address.
	ordered := []string{
		"0@lo", "1.2.3.4@tcp", "1.2.3.5@tcp", "::1@tcp", "0.0.0.0@tcp1",
		"0.0.0.1@o2ib", "3@kfi", "4@kfi",
	}
	for i := range ordered {
		for j := range ordered {
			a, b := nodemap.MustParseNID(ordered[i]), nodemap.MustParseNID(ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestNIDText(t *testing.T) {
	n := nodemap.MustParseNID("10.1.1.1@tcp2")
	b, err := n.MarshalText()
	if err != nil || string(b) != "10.1.1.1@tcp2" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	var back nodemap.NID
	if err := back.UnmarshalText(b); err != nil || back != n {
		t.Fatalf("UnmarshalText = %v, %v", back, err)
	}
	if err := back.UnmarshalText([]byte("junk")); !errors.Is(err, nodemap.ErrBadNID) {
		t.Fatalf("UnmarshalText(junk) = %v", err)
	}
}
