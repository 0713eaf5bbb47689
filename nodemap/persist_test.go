package nodemap_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/nodemap"
)

var (
	genName = rapid.SampledFrom([]string{"default", "a", "b", "c_1", "bad-name"})
	genProp = rapid.SampledFrom(append(nodemap.PropertyNames(), "bogus"))
	genVal  = rapid.SampledFrom([]string{
		"0", "1", "on", "no", "7", "65534", "uid", "gid,projid", "all", "none",
		"chlg_ops", "+hsm_ops", "-chlg_ops", "admin,byfid_ops", "bad",
	})
)

// genRange draws range texts in a small address space so that overlaps are
// common, plus some invalid ones.
func genRange(t *rapid.T) string {
	switch rapid.IntRange(0, 5).Draw(t, "kind") {
	case 0:
		lo := rapid.IntRange(0, 15).Draw(t, "lo")
		hi := rapid.IntRange(lo, 15).Draw(t, "hi")
		return fmt.Sprintf("10.0.0.[%d-%d]@tcp", lo, hi)
	case 1:
		return fmt.Sprintf("10.0.0.%d/%d@tcp", rapid.IntRange(0, 15).Draw(t, "a"), rapid.IntRange(28, 32).Draw(t, "len"))
	case 2:
		lo := rapid.IntRange(0, 9).Draw(t, "lo")
		return fmt.Sprintf("[%d-%d]@kfi", lo, rapid.IntRange(lo, 9).Draw(t, "hi"))
	case 3:
		return fmt.Sprintf("2001:db8::%x/%d@o2ib", rapid.IntRange(0, 15).Draw(t, "a"), rapid.IntRange(124, 128).Draw(t, "len"))
	case 4:
		return rapid.SampledFrom([]string{"0@lo", "*@tcp1", "10.0.0.[1,3]@tcp", "junk"}).Draw(t, "fixed")
	default:
		return fmt.Sprintf("10.0.0.%d@tcp:10.0.1.%d@tcp", rapid.IntRange(0, 15).Draw(t, "s"), rapid.IntRange(0, 15).Draw(t, "e"))
	}
}

func genNID(t *rapid.T) nodemap.NID {
	s := rapid.SampledFrom([]string{
		"10.0.0.%d@tcp", "10.0.1.%d@tcp", "10.0.0.%d@tcp1", "%d@kfi", "2001:db8::%x@o2ib",
	}).Draw(t, "nidfmt")
	return nodemap.MustParseNID(fmt.Sprintf(s, rapid.IntRange(0, 16).Draw(t, "n")))
}

// apply performs one random operation on every config in cs and checks
// that they agree on the outcome.
func apply(t *rapid.T, cs ...*nodemap.Config) {
	var errs []error
	switch rapid.IntRange(0, 5).Draw(t, "op") {
	case 0:
		name := genName.Draw(t, "name")
		for _, c := range cs {
			errs = append(errs, c.Add(name))
		}
	case 1:
		name := genName.Draw(t, "name")
		for _, c := range cs {
			errs = append(errs, c.Del(name))
		}
	case 2:
		name, r := genName.Draw(t, "name"), genRange(t)
		for _, c := range cs {
			errs = append(errs, c.AddRange(name, r))
		}
	case 3:
		name, r := genName.Draw(t, "name"), genRange(t)
		for _, c := range cs {
			errs = append(errs, c.DelRange(name, r))
		}
	case 4:
		name, p, v := genName.Draw(t, "name"), genProp.Draw(t, "prop"), genVal.Draw(t, "value")
		for _, c := range cs {
			errs = append(errs, c.Modify(name, p, v))
		}
	default:
		on := rapid.Bool().Draw(t, "on")
		for _, c := range cs {
			c.Activate(on)
		}
	}
	for i := 1; i < len(errs); i++ {
		err := errs[i]
		if fmt.Sprint(err) != fmt.Sprint(errs[0]) {
			t.Fatalf("configs disagree: %v vs %v", errs[0], err)
		}
	}
}

// checkInvariants checks c against the package's documented invariants
// with a reference classifier.
func checkInvariants(t *rapid.T, c *nodemap.Config) {
	list := c.List()
	if list[0].Name != "default" || list[0].ID != 0 || len(list[0].Ranges) != 0 {
		t.Fatalf("bad default nodemap: %+v", list[0])
	}
	type held struct {
		r    nodemap.Range
		name string
	}
	var all []held
	for _, info := range list {
		if info.Properties.SquashUID == 0 || info.Properties.SquashGID == 0 || info.Properties.MapMode == 0 {
			t.Fatalf("nodemap %s has impossible properties %+v", info.Name, info.Properties)
		}
		for _, ri := range info.Ranges {
			for _, h := range all {
				if h.r.Overlaps(ri.Range) {
					t.Fatalf("ranges %v (%s) and %v (%s) overlap", h.r, h.name, ri.Range, info.Name)
				}
			}
			all = append(all, held{ri.Range, info.Name})
		}
	}
	for range 8 {
		nid := genNID(t)
		want := "default"
		for _, h := range all {
			if h.r.Contains(nid) {
				want = h.name
			}
		}
		if got := c.Classify(nid); got != want {
			t.Fatalf("Classify(%v) = %q, want %q", nid, got, want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := nodemap.New()
		steps := rapid.IntRange(0, 40).Draw(t, "steps")
		for range steps {
			apply(t, c)
		}
		checkInvariants(t, c)

		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var d nodemap.Config
		if err := d.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary: %v\n%s", err, b)
		}
		b2, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the encoding:\n%s\n%s", b, b2)
		}
		if !slices.Equal(c.Params(), d.Params()) || c.Active() != d.Active() {
			t.Fatalf("round trip changed Params or Active")
		}
		for range 8 {
			nid := genNID(t)
			uid := rapid.Uint32Range(0, 2).Draw(t, "uid")
			if c.Map(nid, uid, uid) != d.Map(nid, uid, uid) {
				t.Fatalf("round trip changed Map(%v)", nid)
			}
		}
		// The restored config continues exactly like the original,
		// including the ids it hands out next.
		for range rapid.IntRange(0, 10).Draw(t, "more") {
			apply(t, c, &d)
		}
		b, _ = c.MarshalBinary()
		b2, _ = d.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("restored config diverged:\n%s\n%s", b, b2)
		}
	})
}

func TestUnmarshalRejects(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Add("a"))
	mustOK(t, c.Add("b"))
	mustOK(t, c.AddRange("a", "10.0.0.0/24@tcp"))
	mustOK(t, c.AddRange("b", "10.0.1.0/24@tcp"))
	c.Activate(true)
	good := string(snapshot(t, c))

	tests := []struct {
		name      string
		old, new_ string
	}{
		{"not json", good, "{"},
		{"trailing data", good, good + "{}"},
		{"version", `"version":1`, `"version":2`},
		{"unknown field", `"active":true`, `"active":true,"extra":1`},
		{"overlap", "10.0.1.0/24@tcp", "10.0.0.0/23@tcp"},
		{"bad range", "10.0.1.0/24@tcp", "10.0.1.[1,3]@tcp"},
		{"duplicate name", `"name":"b"`, `"name":"a"`},
		{"bad name", `"name":"b"`, `"name":"b-b"`},
		{"no default", `"name":"default"`, `"name":"c"`},
		{"nodemap id above last", `"last_nodemap_id":2`, `"last_nodemap_id":1`},
		{"range id above last", `"last_range_id":2`, `"last_range_id":1`},
		{"squash 0", `"squash_uid":65534`, `"squash_uid":0`},
		{"map_mode 0", `"map_mode":7`, `"map_mode":0`},
		{"unknown role", `"rbac":32767`, `"rbac":65535`},
		{"gssonly", `"gssonly_identification":false`, `"gssonly_identification":true`},
	}
	for _, tt := range tests {
		data := strings.Replace(good, tt.old, tt.new_, 1)
		if data == good {
			t.Fatalf("%s: replacement %q not found in %s", tt.name, tt.old, good)
		}
		d := nodemap.New()
		before := snapshot(t, d)
		err := d.UnmarshalBinary([]byte(data))
		if !errors.Is(err, nodemap.ErrCorrupt) {
			t.Errorf("%s: UnmarshalBinary = %v, want ErrCorrupt", tt.name, err)
		}
		if !bytes.Equal(before, snapshot(t, d)) {
			t.Errorf("%s: failed UnmarshalBinary changed the state", tt.name)
		}
	}

	d := nodemap.New()
	mustOK(t, d.UnmarshalBinary([]byte(good)))
	if got := d.Classify(nodemap.MustParseNID("10.0.1.5@tcp")); got != "b" || !d.Active() {
		t.Errorf("restored config: Classify = %q, Active = %v", got, d.Active())
	}
}
