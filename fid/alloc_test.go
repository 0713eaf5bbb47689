package fid

import (
	"cmp"
	"errors"
	"math"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

var errInjected = errors.New("injected SaveSeq failure")

// flakyStore is a MemSeqStore whose SaveSeq fails while fail is set. A failed
// save stores nothing.
type flakyStore struct {
	MemSeqStore
	mu struct {
		sync.Mutex
		fail bool
	}
}

func (s *flakyStore) setFail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.fail = fail
}

func (s *flakyStore) SaveSeq(seq uint64) error {
	s.mu.Lock()
	fail := s.mu.fail
	s.mu.Unlock()
	if fail {
		return errInjected
	}
	return s.MemSeqStore.SaveSeq(seq)
}

// errStore fails LoadSeq.
type errStore struct{}

func (errStore) LoadSeq() (uint64, bool, error) { return 0, false, errInjected }
func (errStore) SaveSeq(uint64) error           { return errInjected }

// storedSeq returns the sequence saved in s, failing t if there is none.
func storedSeq(t interface {
	Helper()
	Fatalf(format string, args ...any)
}, s SeqStore) uint64 {
	t.Helper()
	seq, ok, err := s.LoadSeq()
	if err != nil || !ok {
		t.Fatalf("LoadSeq() = %#x, %v, %v; want a saved sequence", seq, ok, err)
	}
	return seq
}

// checkNext calls a.Next and checks the result against Peek and the
// persistence rule: the FID's sequence is saved before it is returned.
func checkNext(t testing.TB, a *Allocator, store SeqStore) FID {
	t.Helper()
	want := a.Peek()
	f, err := a.Next()
	if err != nil {
		t.Fatalf("Next() after %v: %v", want, err)
	}
	if f != want {
		t.Fatalf("Next() = %v, but Peek() said %v", f, want)
	}
	if f.Seq < SeqNormal || f.Oid < 1 || f.Oid > a.width || f.Ver != 0 {
		t.Fatalf("Next() = %v, outside normal sequences or oids 1..%#x", f, a.width)
	}
	if saved := storedSeq(t, store); saved < f.Seq {
		t.Fatalf("Next() = %v, but the store holds only %#x", f, saved)
	}
	return f
}

func TestNewAllocator(t *testing.T) {
	tests := []struct {
		name    string
		seq     uint64 // saved sequence, if ok
		ok      bool
		want    FID // first FID
		wantErr error
	}{
		{name: "empty store", want: FID{Seq: SeqNormal, Oid: 1}},
		{name: "saved normal", seq: SeqNormal, ok: true, want: FID{Seq: SeqNormal + 1, Oid: 1}},
		{name: "saved later", seq: 0x200000403, ok: true, want: FID{Seq: 0x200000404, Oid: 1}},
		{name: "saved penultimate", seq: math.MaxUint64 - 1, ok: true, want: FID{Seq: math.MaxUint64, Oid: 1}},
		{name: "saved last", seq: math.MaxUint64, ok: true, wantErr: ErrExhausted},
		{name: "saved below normal", seq: SeqRoot, ok: true, wantErr: ErrBadSeq},
		{name: "saved zero", seq: 0, ok: true, wantErr: ErrBadSeq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := new(MemSeqStore)
			if tt.ok {
				if err := store.SaveSeq(tt.seq); err != nil {
					t.Fatal(err)
				}
			}
			a, err := NewAllocator(store)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("NewAllocator() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewAllocator(): %v", err)
			}
			if got := a.Peek(); got != tt.want {
				t.Errorf("Peek() = %v, want %v", got, tt.want)
			}
			if got, ok, _ := store.LoadSeq(); got != tt.seq || ok != tt.ok {
				t.Errorf("NewAllocator changed the store to %#x, %v", got, ok)
			}
			if got := checkNext(t, a, store); got != tt.want {
				t.Errorf("Next() = %v, want %v", got, tt.want)
			}
			if got := storedSeq(t, store); got != tt.want.Seq {
				t.Errorf("stored sequence = %#x, want %#x", got, tt.want.Seq)
			}
		})
	}
	t.Run("nil store", func(t *testing.T) {
		if _, err := NewAllocator(nil); err == nil {
			t.Error("NewAllocator(nil) succeeded")
		}
	})
	t.Run("load error", func(t *testing.T) {
		if _, err := NewAllocator(errStore{}); !errors.Is(err, errInjected) {
			t.Errorf("NewAllocator() error = %v, want %v", err, errInjected)
		}
	})
}

// TestAllocatorSequence takes three full sequences and a bit more at the
// real width and checks every FID.
func TestAllocatorSequence(t *testing.T) {
	store := new(MemSeqStore)
	a, err := NewAllocator(store)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3*int(SeqWidth) + 5
	var prev FID
	for i := range n {
		f := checkNext(t, a, store)
		want := FID{Seq: SeqNormal + uint64(i)/uint64(SeqWidth), Oid: uint32(i)%SeqWidth + 1}
		if f != want {
			t.Fatalf("FID %d = %v, want %v", i, f, want)
		}
		if i > 0 && compareFID(prev, f) >= 0 {
			t.Fatalf("FID %d = %v does not follow %v", i, f, prev)
		}
		prev = f
	}
	if got := store.Saves(); got != 4 {
		t.Errorf("SaveSeq called %d times for 4 sequences", got)
	}
	if last := (FID{Seq: SeqNormal, Oid: SeqWidth}); last.String() != "[0x200000400:0x20000:0x0]" {
		t.Errorf("last FID of a sequence prints %v", last)
	}
}

func TestAllocatorConcurrent(t *testing.T) {
	const (
		workers = 16
		each    = 20000 // 320000 in all: over two sequences
	)
	store := new(MemSeqStore)
	a, err := NewAllocator(store)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]FID, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				f, err := a.Next()
				if err != nil {
					errs[w] = err
					return
				}
				got[w] = append(got[w], f)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := make(map[FID]int, workers*each)
	for w, fids := range got {
		for i, f := range fids {
			if i > 0 && compareFID(fids[i-1], f) >= 0 {
				t.Fatalf("worker %d got %v after %v", w, f, fids[i-1])
			}
			if other, dup := seen[f]; dup {
				t.Fatalf("%v handed to workers %d and %d", f, other, w)
			}
			seen[f] = w
		}
	}
	// Together the workers took exactly the first workers*each FIDs.
	const n = workers * each
	want := FID{Seq: SeqNormal + n/uint64(SeqWidth), Oid: n%SeqWidth + 1}
	if p := a.Peek(); p != want {
		t.Errorf("Peek() = %v after %d FIDs, want %v", p, n, want)
	}
	if saved := storedSeq(t, store); saved != want.Seq {
		t.Errorf("stored sequence %#x, want %#x", saved, want.Seq)
	}
}

// TestAllocatorRestart reopens an allocator on the same store after using
// various amounts of a sequence, and checks that no FID repeats and the rest
// of the open sequence is skipped.
func TestAllocatorRestart(t *testing.T) {
	store := new(MemSeqStore)
	seen := make(map[FID]bool)
	for i, n := range []int{0, 1, int(SeqWidth) - 1, int(SeqWidth), int(SeqWidth) + 1, 0, 7} {
		before, _, _ := store.LoadSeq()
		a, err := NewAllocator(store)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		for j := range n {
			f := checkNext(t, a, store)
			if seen[f] {
				t.Fatalf("open %d: %v handed out again", i, f)
			}
			seen[f] = true
			if j == 0 && f != (FID{Seq: max(before+1, SeqNormal), Oid: 1}) {
				t.Fatalf("open %d: first FID %v, want the start of the sequence after %#x", i, f, before)
			}
		}
		// Dropping a without closing it models a crash.
	}
}

func TestAllocatorSaveFailure(t *testing.T) {
	store := new(flakyStore)
	a, err := NewAllocator(store)
	if err != nil {
		t.Fatal(err)
	}

	// The very first sequence cannot be saved.
	store.setFail(true)
	if f, err := a.Next(); !errors.Is(err, errInjected) || f != Zero {
		t.Fatalf("Next() = %v, %v; want zero FID and %v", f, err, errInjected)
	}
	store.setFail(false)
	seen := map[FID]bool{}
	for range SeqWidth {
		seen[checkNext(t, a, store)] = true
	}

	// Roll-over fails twice, then succeeds.
	store.setFail(true)
	want := a.Peek()
	for range 2 {
		if f, err := a.Next(); !errors.Is(err, errInjected) || f != Zero {
			t.Fatalf("Next() = %v, %v; want zero FID and %v", f, err, errInjected)
		}
		if p := a.Peek(); p != want {
			t.Fatalf("Peek() = %v after a failed save, want %v", p, want)
		}
	}
	if saved := storedSeq(t, store); saved != SeqNormal {
		t.Fatalf("stored sequence %#x after failed saves, want %#x", saved, SeqNormal)
	}
	store.setFail(false)
	for i := range 10 {
		f := checkNext(t, a, store)
		if seen[f] {
			t.Fatalf("%v handed out twice", f)
		}
		seen[f] = true
		if i == 0 && f != (FID{Seq: SeqNormal + 1, Oid: 1}) {
			t.Fatalf("first FID after recovery = %v, want [%#x:0x1:0x0]", f, SeqNormal+1)
		}
	}
}

func TestAllocatorExhausted(t *testing.T) {
	store := new(MemSeqStore)
	if err := store.SaveSeq(math.MaxUint64 - 1); err != nil {
		t.Fatal(err)
	}
	a, err := newAllocator(store, 2)
	if err != nil {
		t.Fatal(err)
	}
	for oid := uint32(1); oid <= 2; oid++ {
		if f := checkNext(t, a, store); f != (FID{Seq: math.MaxUint64, Oid: oid}) {
			t.Fatalf("Next() = %v", f)
		}
	}
	for range 2 {
		if f, err := a.Next(); !errors.Is(err, ErrExhausted) || f != Zero {
			t.Fatalf("Next() = %v, %v; want %v", f, err, ErrExhausted)
		}
	}
	if p := a.Peek(); p != Zero {
		t.Errorf("Peek() = %v when exhausted, want the zero FID", p)
	}
	if _, err := NewAllocator(store); !errors.Is(err, ErrExhausted) {
		t.Errorf("reopen error = %v, want %v", err, ErrExhausted)
	}
}

// TestAllocatorStateMachine runs random interleavings of Next, failing
// saves and crashes against a narrow sequence width, checking that no FID
// is ever handed out twice and that each comes from a saved sequence.
func TestAllocatorStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		width := rapid.Uint32Range(1, 5).Draw(t, "width")
		store := new(flakyStore)
		seen := make(map[FID]bool)
		var last FID // greatest FID handed out so far
		open := func() *Allocator {
			a, err := newAllocator(store, width)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return a
		}
		a := open()
		t.Repeat(map[string]func(*rapid.T){
			"next": func(t *rapid.T) {
				want := a.Peek()
				f, err := a.Next()
				if err != nil {
					if !errors.Is(err, errInjected) {
						t.Fatalf("Next(): %v", err)
					}
					if p := a.Peek(); p != want {
						t.Fatalf("failed Next moved Peek from %v to %v", want, p)
					}
					return
				}
				if f != want || seen[f] || f.Oid < 1 || f.Oid > width || f.Ver != 0 || f.Seq < SeqNormal {
					t.Fatalf("Next() = %v (Peek %v, seen %v, width %d)", f, want, seen[f], width)
				}
				if saved := storedSeq(t, store); saved < f.Seq {
					t.Fatalf("Next() = %v before its sequence was saved (store %#x)", f, saved)
				}
				if !last.IsZero() && compareFID(last, f) >= 0 {
					t.Fatalf("Next() = %v after %v", f, last)
				}
				seen[f], last = true, f
			},
			"toggle save failures": func(t *rapid.T) {
				store.setFail(rapid.Bool().Draw(t, "fail"))
			},
			"crash": func(t *rapid.T) {
				a = open()
				if p := a.Peek(); !last.IsZero() && p.Seq <= last.Seq {
					t.Fatalf("reopened at %v, not past the sequence of %v", p, last)
				}
			},
		})
	})
}

// compareFID orders FIDs by (Seq, Oid, Ver).
func compareFID(a, b FID) int {
	return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Oid, b.Oid), cmp.Compare(a.Ver, b.Ver))
}
