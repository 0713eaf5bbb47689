package nodemap_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/nodemap"
)

// expr is one range expression of an octet list, matched as Lustre's
// cfs_expr_list_match does.
type expr struct{ lo, hi, step int }

func (e expr) match(v int) bool { return v >= e.lo && v <= e.hi && (v-e.lo)%e.step == 0 }

func (e expr) String() string {
	switch {
	case e.lo == 0 && e.hi == 255 && e.step == 1:
		return "*"
	case e.lo == e.hi && e.step == 1:
		return fmt.Sprint(e.lo)
	case e.step == 1:
		return fmt.Sprintf("%d-%d", e.lo, e.hi)
	default:
		return fmt.Sprintf("%d-%d/%d", e.lo, e.hi, e.step)
	}
}

func genExprList(t *rapid.T, label string) ([]expr, string) {
	n := rapid.IntRange(1, 3).Draw(t, label+"_n")
	var es []expr
	var texts []string
	for i := range n {
		l := fmt.Sprintf("%s_%d", label, i)
		var e expr
		switch rapid.IntRange(0, 3).Draw(t, l+"_kind") {
		case 0:
			e = expr{0, 255, 1}
		case 1:
			v := rapid.SampledFrom([]int{0, 1, 2, 3, 7, 8, 254, 255}).Draw(t, l+"_v")
			e = expr{v, v, 1}
		default:
			lo := rapid.SampledFrom([]int{0, 1, 2, 5, 8, 128, 250}).Draw(t, l+"_lo")
			hi := rapid.SampledFrom([]int{lo, lo + 1, lo + 3, 255}).Draw(t, l+"_hi")
			step := rapid.SampledFrom([]int{1, 1, 1, 2, 4, 300}).Draw(t, l+"_step")
			e = expr{lo, min(hi, 255), min(step, 255)}
		}
		es = append(es, e)
		texts = append(texts, e.String())
	}
	if n == 1 && !strings.Contains(texts[0], "-") {
		return es, texts[0] // unbracketed number or "*"
	}
	return es, "[" + strings.Join(texts, ",") + "]"
}

// TestParseRangeSemantics checks ParseRange against brute-force matching
// of the address set an a.b.[list].[list] expression denotes: it succeeds
// exactly when that set is one contiguous block (and no expression uses a
// step that skips numbers), and then returns its bounds.
func TestParseRangeSemantics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e3, t3 := genExprList(t, "o3")
		e4, t4 := genExprList(t, "o4")
		text := "10.20." + t3 + "." + t4 + "@tcp"
		matches := func(es []expr, v int) bool {
			for _, e := range es {
				if e.match(v) {
					return true
				}
			}
			return false
		}
		first, last, count := -1, -1, 0
		for v := range 1 << 16 {
			if matches(e3, v>>8) && matches(e4, v&0xff) {
				if first < 0 {
					first = v
				}
				last = v
				count++
			}
		}
		// A stepped expression that names more than one number is refused
		// even where other entries fill its gaps (Lustre refuses every
		// step); otherwise the set itself decides.
		stepped := false
		for _, e := range append(append([]expr{}, e3...), e4...) {
			stepped = stepped || (e.step > 1 && e.hi-e.lo >= e.step)
		}
		contiguous := count == last-first+1 && !stepped

		r, err := nodemap.ParseRange(text)
		if !contiguous {
			if !errors.Is(err, nodemap.ErrNotContiguous) {
				t.Fatalf("ParseRange(%q) = %v, %v; want ErrNotContiguous", text, r, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseRange(%q): %v (set is [%d, %d])", text, err, first, last)
		}
		want := fmt.Sprintf("10.20.%d.%d@tcp-10.20.%d.%d@tcp", first>>8, first&0xff, last>>8, last&0xff)
		if got := r.Start().String() + "-" + r.End().String(); got != want {
			t.Fatalf("ParseRange(%q) = %s, want %s", text, got, want)
		}
	})
}

// TestConcurrentUse exercises the lock under the race detector.
func TestConcurrentUse(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Add("a"))
	c.Activate(true)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				nid := nodemap.MustParseNID(fmt.Sprintf("10.%d.0.%d@tcp", g, i%250))
				_ = c.Map(nid, uint32(i), uint32(i))
				_ = c.Params()
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			r := fmt.Sprintf("10.%d.0.0/24@tcp", i%4)
			_ = c.AddRange("a", r)
			_ = c.Modify("a", "admin", fmt.Sprint(i%2))
			_ = c.DelRange("a", r)
			if _, err := c.MarshalBinary(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}
