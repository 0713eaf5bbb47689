package nodemap_test

import (
	"errors"
	"testing"

	"github.com/fidlog/fidlog/nodemap"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end string // wanted bounds; both "" when err is set
		canonical  string // wanted String(); "" means same as in
		err        error
	}{
		// Single addresses.
		{in: "192.168.1.1@tcp", start: "192.168.1.1@tcp", end: "192.168.1.1@tcp"},
		{in: "192.168.1.[1]@tcp", start: "192.168.1.1@tcp", end: "192.168.1.1@tcp", canonical: "192.168.1.1@tcp"},
		{in: "2001:db8::1@tcp", start: "2001:db8::1@tcp", end: "2001:db8::1@tcp"},
		{in: "5@kfi", start: "5@kfi", end: "5@kfi"},
		{in: "0@lo", start: "0@lo", end: "0@lo"},
		// Octet lists.
		{in: "192.168.1.[1-254]@tcp", start: "192.168.1.1@tcp", end: "192.168.1.254@tcp"},
		{in: "192.168.1.[1-254]@tcp1", start: "192.168.1.1@tcp1", end: "192.168.1.254@tcp1"},
		{in: "10.0.[1-2].[0-255]@tcp", start: "10.0.1.0@tcp", end: "10.0.2.255@tcp", canonical: "10.0.[1-2].*@tcp"},
		{in: "10.0.[1-3].*@o2ib", start: "10.0.1.0@o2ib", end: "10.0.3.255@o2ib", canonical: "10.0.[1-3].*@o2ib"},
		{in: "10.[0-1].*.*@tcp", start: "10.0.0.0@tcp", end: "10.1.255.255@tcp", canonical: "10.0.0.0/15@tcp"},
		{in: "192.168.1.*@tcp", start: "192.168.1.0@tcp", end: "192.168.1.255@tcp", canonical: "192.168.1.0/24@tcp"},
		{in: "192.168.1.[*]@tcp", start: "192.168.1.0@tcp", end: "192.168.1.255@tcp", canonical: "192.168.1.0/24@tcp"},
		{in: "192.168.1.[1-3,4-6]@tcp", start: "192.168.1.1@tcp", end: "192.168.1.6@tcp", canonical: "192.168.1.[1-6]@tcp"},
		{in: "192.168.1.[4-6,1-4]@tcp", start: "192.168.1.1@tcp", end: "192.168.1.6@tcp", canonical: "192.168.1.[1-6]@tcp"},
		{in: "192.168.1.[5-5/3]@tcp", start: "192.168.1.5@tcp", end: "192.168.1.5@tcp", canonical: "192.168.1.5@tcp"},
		{in: "192.168.1.[6-8/5]@tcp", start: "192.168.1.6@tcp", end: "192.168.1.6@tcp", canonical: "192.168.1.6@tcp"},
		{in: "192.168.1.[0x10-0x1f]@tcp", start: "192.168.1.16@tcp", end: "192.168.1.31@tcp", canonical: "192.168.1.16/28@tcp"},
		{in: "192.168.1.[010-011]@tcp", start: "192.168.1.8@tcp", end: "192.168.1.9@tcp", canonical: "192.168.1.8/31@tcp"},
		// Whole networks.
		{in: "*@tcp", start: "0.0.0.0@tcp", end: "255.255.255.255@tcp"},
		{in: "*.*.*.*@tcp", start: "0.0.0.0@tcp", end: "255.255.255.255@tcp", canonical: "*@tcp"},
		{in: "*@kfi", start: "0@kfi", end: "4294967295@kfi"},
		{in: "*@o2ib3", start: "0.0.0.0@o2ib3", end: "255.255.255.255@o2ib3"},
		// CIDR.
		{in: "192.168.0.0/16@tcp", start: "192.168.0.0@tcp", end: "192.168.255.255@tcp"},
		{in: "192.168.7.9/16@tcp", start: "192.168.0.0@tcp", end: "192.168.255.255@tcp", canonical: "192.168.0.0/16@tcp"},
		{in: "10.1.2.3/32@tcp", start: "10.1.2.3@tcp", end: "10.1.2.3@tcp", canonical: "10.1.2.3@tcp"},
		{in: "0.0.0.0/1@tcp", start: "0.0.0.0@tcp", end: "127.255.255.255@tcp"},
		{in: "2001:db8::/32@tcp", start: "2001:db8::@tcp", end: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff@tcp"},
		{in: "2001:db8::/128@o2ib", start: "2001:db8::@o2ib", end: "2001:db8::@o2ib", canonical: "2001:db8::@o2ib"},
		{in: "::ffff:10.0.0.0/104@tcp", start: "10.0.0.0@tcp", end: "10.255.255.255@tcp", canonical: "10.0.0.0/8@tcp"},
		// IPv6 blocks that end in the IPv4-mapped block stop below it.
		{in: "::/80@o2ib", start: "::@o2ib", end: "::fffe:ffff:ffff@o2ib"},
		{in: "::ff00:0:0/88@tcp", start: "::ff00:0:0@tcp", end: "::fffe:ffff:ffff@tcp"},
		{in: "::@tcp:::fffe:ffff:ffff@tcp", start: "::@tcp", end: "::fffe:ffff:ffff@tcp", canonical: "::/80@tcp"},
		// Numeric networks.
		{in: "[1-60000]@kfi", start: "1@kfi", end: "60000@kfi"},
		{in: "[1-3,4]@gni1", start: "1@gni1", end: "4@gni1", canonical: "[1-4]@gni1"},
		// START:END.
		{in: "10.0.1.5@tcp:10.0.3.7@tcp", start: "10.0.1.5@tcp", end: "10.0.3.7@tcp"},
		{in: "10.0.1.0@tcp:10.0.1.255@tcp", start: "10.0.1.0@tcp", end: "10.0.1.255@tcp", canonical: "10.0.1.0/24@tcp"},
		{in: "::1@tcp:::5@tcp", start: "::1@tcp", end: "::5@tcp"},
		{in: "7@kfi:9@kfi", start: "7@kfi", end: "9@kfi", canonical: "[7-9]@kfi"},

		// Not contiguous.
		{in: "192.168.1.[1,5]@tcp", err: nodemap.ErrNotContiguous},
		{in: "192.168.1.[1-10/2]@tcp", err: nodemap.ErrNotContiguous},
		{in: "10.0.[1-2].[1-254]@tcp", err: nodemap.ErrNotContiguous},
		{in: "10.0.[1-2].5@tcp", err: nodemap.ErrNotContiguous},
		{in: "10.*.1.1@tcp", err: nodemap.ErrNotContiguous},
		{in: "[1-3,5-9]@kfi", err: nodemap.ErrNotContiguous},
		// Not parseable.
		{in: "", err: nodemap.ErrBadRange},
		{in: "192.168.1.1", err: nodemap.ErrBadRange},
		{in: "@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.1@", err: nodemap.ErrBadRange},
		{in: "192.168.1.1@foo", err: nodemap.ErrBadRange},
		{in: "192.168.1.1@tcp@tcp@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.256@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.1.1@tcp", err: nodemap.ErrBadRange},
		{in: "192.168..1@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.1-254@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[1-254@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[1,]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[5-1]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[1-5/0]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[1-5/256]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[1-]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[08]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.1.[ 1-5]@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.0.0/0@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.0.0/33@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.0.0/@tcp", err: nodemap.ErrBadRange},
		{in: "192.168.0.0/+8@tcp", err: nodemap.ErrBadRange},
		{in: "2001:db8::/129@tcp", err: nodemap.ErrBadRange},
		{in: "2001:db8::/0@tcp", err: nodemap.ErrBadRange},
		{in: "fe80::1%eth0@tcp", err: nodemap.ErrBadRange},
		{in: "10.0.0.0/8@kfi", err: nodemap.ErrBadRange},
		{in: "[1-4294967296]@kfi", err: nodemap.ErrBadRange},
		{in: "1-5@kfi", err: nodemap.ErrBadRange},
		{in: "a@kfi", err: nodemap.ErrBadRange},
		{in: "10.0.0.9@tcp:10.0.0.1@tcp", err: nodemap.ErrBadRange},
		{in: "10.0.0.1@tcp:10.0.0.9@tcp1", err: nodemap.ErrBadRange},
		{in: "10.0.0.1@tcp:::9@tcp", err: nodemap.ErrBadRange},
		{in: "10.0.0.1@tcp 10.0.0.2@tcp", err: nodemap.ErrBadRange},
		{in: "10.0.0.1@tcp,10.0.0.2@tcp", err: nodemap.ErrBadRange},
		// A parse error wins over non-contiguity.
		{in: "10.0.[1,5].[1-300]@tcp", err: nodemap.ErrBadRange},
	}
	for _, tt := range tests {
		r, err := nodemap.ParseRange(tt.in)
		if tt.err != nil {
			if err == nil {
				t.Errorf("ParseRange(%q) = %v, want %v", tt.in, r, tt.err)
				continue
			}
			var pe *nodemap.ParseError
			if !errors.As(err, &pe) || pe.Text != tt.in || pe.Err != tt.err || !errors.Is(err, nodemap.ErrInvalid) {
				t.Errorf("ParseRange(%q) error = %#v, want *ParseError{Err: %v}", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRange(%q) error: %v", tt.in, err)
			continue
		}
		if r.Start().String() != tt.start || r.End().String() != tt.end {
			t.Errorf("ParseRange(%q) = [%v, %v], want [%s, %s]", tt.in, r.Start(), r.End(), tt.start, tt.end)
		}
		want := tt.canonical
		if want == "" {
			want = tt.in
		}
		if got := r.String(); got != want {
			t.Errorf("ParseRange(%q).String() = %q, want %q", tt.in, got, want)
		}
		back, err := nodemap.ParseRange(r.String())
		if err != nil || back != r {
			t.Errorf("ParseRange(%q) does not round-trip through %q: %v, %v", tt.in, r.String(), back, err)
		}
	}
}

func TestParseRangeMessages(t *testing.T) {
	_, err := nodemap.ParseRange("192.168.1.[1,5]@tcp")
	if got, want := err.Error(), "nodemap ranges must be contiguous: 192.168.1.[1,5]@tcp"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	_, err = nodemap.ParseRange("junk")
	if got, want := err.Error(), "can't parse nid range: junk"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestRangeContainsOverlaps(t *testing.T) {
	r := nodemap.MustParseRange("192.168.1.[10-20]@tcp")
	for nid, want := range map[string]bool{
		"192.168.1.10@tcp":        true,
		"192.168.1.20@tcp":        true,
		"192.168.1.15@tcp":        true,
		"192.168.1.9@tcp":         false,
		"192.168.1.21@tcp":        false,
		"192.168.1.15@tcp1":       false,
		"192.168.1.15@o2ib":       false,
		"::ffff:192.168.1.15@tcp": true,
		"2001:db8::1@tcp":         false,
		"15@kfi":                  false,
		"0@lo":                    false,
	} {
		if got := r.Contains(nodemap.MustParseNID(nid)); got != want {
			t.Errorf("%v.Contains(%s) = %v, want %v", r, nid, got, want)
		}
	}
	if (nodemap.Range{}).Contains(nodemap.NID{}) {
		t.Errorf("zero Range contains the zero NID")
	}
	all := nodemap.MustParseRange("*@tcp")
	if all.Contains(nodemap.MustParseNID("2001:db8::1@tcp")) {
		t.Errorf("*@tcp contains an IPv6 NID (it is every IPv4 address, as in Lustre)")
	}

	overlaps := []struct {
		a, b string
		want bool
	}{
		{"192.168.1.[10-20]@tcp", "192.168.1.[20-30]@tcp", true},
		{"192.168.1.[10-20]@tcp", "192.168.1.[21-30]@tcp", false},
		{"192.168.1.[10-20]@tcp", "192.168.1.[10-20]@tcp1", false},
		{"192.168.1.[10-20]@tcp", "192.168.0.0/16@tcp", true},
		{"*@tcp", "1.2.3.4@tcp", true},
		{"*@tcp", "2001:db8::/32@tcp", false},
		{"2001:db8::/32@tcp", "2001:db8:1::/48@tcp", true},
		{"[1-10]@kfi", "[10-20]@kfi", true},
		{"[1-10]@kfi", "[1-10]@gni", false},
	}
	for _, tt := range overlaps {
		a, b := nodemap.MustParseRange(tt.a), nodemap.MustParseRange(tt.b)
		if a.Overlaps(b) != tt.want || b.Overlaps(a) != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v/%v, want %v", tt.a, tt.b, a.Overlaps(b), b.Overlaps(a), tt.want)
		}
	}
}
