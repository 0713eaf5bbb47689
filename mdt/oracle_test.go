package mdt

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

var (
	oracleSeed = flag.Uint64("oracle.seed", 20260819, "seed of the mirror oracle workload")
	oracleOps  = flag.Int("oracle.ops", 10000, "operations of the mirror oracle workload")
)

// kindOf folds file types the way the changelog can tell them apart.
func kindOf(t FileType) string {
	switch t {
	case TypeReg:
		return "file"
	case TypeDir:
		return "dir"
	case TypeLnk:
		return "symlink"
	}
	return "node"
}

// workload drives random operations against an MDT, choosing targets by
// random walks of the live namespace.
type workload struct {
	t   testing.TB
	m   *MDT
	rng *rand.Rand
	ok  map[string]int // successful operations by kind
	// onErr, if set, is told the outcome of every step.
	onErr func(kind string, err error)
}

// pick returns a random existing entry (path, type) or the root.
func (w *workload) pick(wantDir bool) (string, FileType) {
	p, typ := "", TypeDir
	for depth := 0; depth < 6; depth++ {
		ents, err := w.m.Readdir(ctx, root, p)
		if err != nil || len(ents) == 0 {
			break
		}
		de := ents[w.rng.IntN(len(ents))]
		if wantDir && de.Type != TypeDir {
			if w.rng.IntN(3) == 0 {
				break
			}
			continue
		}
		p, typ = p+"/"+de.Name, de.Type
		if de.Type != TypeDir || w.rng.IntN(3) == 0 {
			break
		}
	}
	return p, typ
}

func (w *workload) newName(dir string) string {
	return fmt.Sprintf("%s/n%d", dir, w.rng.IntN(12))
}

func (w *workload) step() {
	dir, _ := w.pick(true)
	any, _ := w.pick(false)
	var kind string
	var err error
	switch n := w.rng.IntN(100); {
	case n < 18:
		kind = "create"
		_, err = w.m.Create(ctx, root, w.newName(dir), 0644, true)
	case n < 28:
		kind = "mkdir"
		_, err = w.m.Mkdir(ctx, root, w.newName(dir), 0755)
	case n < 32:
		kind = "symlink"
		_, err = w.m.Symlink(ctx, root, "target", w.newName(dir))
	case n < 34:
		kind = "mknod"
		_, err = w.m.Mknod(ctx, root, w.newName(dir), TypeFifo, 0644, 0)
	case n < 44:
		kind = "link"
		_, err = w.m.Link(ctx, root, any, w.newName(dir))
	case n < 56:
		kind = "unlink"
		err = w.m.Unlink(ctx, root, any)
	case n < 62:
		kind = "rmdir"
		err = w.m.Rmdir(ctx, root, any)
	case n < 80:
		kind = "rename"
		dst := w.newName(dir)
		var flags uint32
		switch w.rng.IntN(6) {
		case 0, 1:
			dst, _ = w.pick(false) // over an existing entry
		case 2:
			dst, _ = w.pick(false) // swap with an existing entry
			flags, kind = RenameExchange, "exchange"
		case 3:
			if w.rng.IntN(2) == 0 {
				dst, _ = w.pick(false)
			}
			flags, kind = RenameNoReplace, "noreplace"
		}
		err = w.m.RenameFlags(ctx, root, any, dst, flags)
	case n < 88:
		kind = "setattr"
		var s SetattrArgs
		switch w.rng.IntN(3) {
		case 0:
			s.Mode = ptr(uint32(w.rng.IntN(0777)))
		case 1:
			s.Size = ptr(uint64(w.rng.IntN(1 << 20)))
		default:
			s.Mtime = ptr(time.Unix(int64(w.rng.IntN(1<<30)), 0))
		}
		_, err = w.m.Setattr(ctx, root, any, s)
	case n < 94:
		kind = "xattr"
		name := fmt.Sprintf("user.x%d", w.rng.IntN(3))
		if w.rng.IntN(2) == 0 {
			err = w.m.Setxattr(ctx, root, any, name, []byte("v"), 0)
		} else {
			err = w.m.Removexattr(ctx, root, any, name)
		}
	default:
		kind = "open"
		var h uint64
		h, _, err = w.m.Open(ctx, root, w.newName(dir), changelog.OpenWrite|changelog.OpenCreate, 0644)
		if err == nil {
			if cerr := w.m.CloseFile(ctx, root, h); cerr != nil {
				w.t.Errorf("close: %v", cerr)
			}
		}
	}
	if w.onErr != nil {
		w.onErr(kind, err)
	}
	if err == nil {
		w.ok[kind]++
	} else if Errno(err) == 5 { // EIO: never expected
		w.t.Errorf("%s: %v", kind, err)
	}
}

// mirror is the namespace rebuilt from the changelog alone.
type mirror struct {
	entries map[[2]string]fid.FID // (parent FID, name) -> FID
	kinds   map[fid.FID]string
}

func replay(t testing.TB, recs []*changelog.Record) *mirror {
	t.Helper()
	mm := &mirror{entries: map[[2]string]fid.FID{}, kinds: map[fid.FID]string{fid.Root: "dir"}}
	key := func(p fid.FID, name string) [2]string { return [2]string{p.String(), name} }
	for i, r := range recs {
		if i > 0 && r.Index != recs[i-1].Index+1 {
			t.Fatalf("gap: record %d after %d", r.Index, recs[i-1].Index)
		}
		switch r.Type {
		case changelog.CLCreate, changelog.CLMkdir, changelog.CLSoftlink, changelog.CLMknod:
			k := map[changelog.Type]string{changelog.CLCreate: "file", changelog.CLMkdir: "dir", changelog.CLSoftlink: "symlink", changelog.CLMknod: "node"}[r.Type]
			mm.kinds[r.TFID] = k
			mm.entries[key(r.PFID, r.Name)] = r.TFID
		case changelog.CLHardlink:
			mm.entries[key(r.PFID, r.Name)] = r.TFID
		case changelog.CLUnlink, changelog.CLRmdir:
			if got := mm.entries[key(r.PFID, r.Name)]; got != r.TFID {
				t.Fatalf("record %d removes %v/%s = %v, mirror has %v", r.Index, r.PFID, r.Name, r.TFID, got)
			}
			delete(mm.entries, key(r.PFID, r.Name))
		case changelog.CLRename:
			if got := mm.entries[key(r.SPFID, r.SName)]; got != r.SFID {
				t.Fatalf("record %d renames %v/%s = %v, mirror has %v", r.Index, r.SPFID, r.SName, r.SFID, got)
			}
			if got := mm.entries[key(r.PFID, r.Name)]; got != r.TFID {
				t.Fatalf("record %d overwrites %v/%s = %v, mirror has %v", r.Index, r.PFID, r.Name, r.TFID, got)
			}
			delete(mm.entries, key(r.SPFID, r.SName))
			mm.entries[key(r.PFID, r.Name)] = r.SFID
			if r.Flags&changelog.FlagRenameExchange != 0 {
				mm.entries[key(r.SPFID, r.SName)] = r.TFID
			}
		}
	}
	return mm
}

// TestMirrorOracle replays the changelog of a random workload onto an
// empty model and compares it with the namespace.
func TestMirrorOracle(t *testing.T) {
	e := newEnv(t)
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	w := &workload{t: t, m: e.m, rng: rand.New(rand.NewPCG(*oracleSeed, 1)), ok: map[string]int{}}
	n := *oracleOps
	if testing.Short() || raceEnabled {
		n = 2000
	}
	for range n {
		w.step()
	}
	t.Logf("seed %d, successful ops: %v", *oracleSeed, w.ok)
	for _, k := range []string{"create", "mkdir", "symlink", "link", "unlink", "rmdir", "rename", "setattr", "xattr", "open"} {
		if w.ok[k] == 0 {
			t.Errorf("workload never succeeded at %s", k)
		}
	}
	recs := e.records(0)
	if len(recs) == 0 || recs[0].Index != 1 || recs[len(recs)-1].Index != e.current() {
		t.Fatalf("records %d..%d, current %d", recs[0].Index, recs[len(recs)-1].Index, e.current())
	}
	mm := replay(t, recs)
	server := walkTree(t, e.m)
	model := map[entry]bool{}
	nlinks := map[fid.FID]uint32{}
	for k, f := range mm.entries {
		p := fid.MustParse(k[0])
		model[entry{p, k[1], f, 0}] = true
		nlinks[f]++
	}
	// Compare (parent, name, FID, kind).
	fold := func(s map[entry]bool, kinds func(entry) string) map[string]bool {
		out := map[string]bool{}
		for en := range s {
			out[fmt.Sprintf("%v/%s -> %v %s", en.Parent, en.Name, en.FID, kinds(en))] = true
		}
		return out
	}
	got := fold(server, func(en entry) string { return kindOf(en.Type) })
	want := fold(model, func(en entry) string { return mm.kinds[en.FID] })
	for s := range got {
		if !want[s] {
			t.Errorf("server has %s, mirror does not", s)
		}
	}
	for s := range want {
		if !got[s] {
			t.Errorf("mirror has %s, server does not", s)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Link counts of non-directories match the entries naming them, and
	// fid2path lists exactly those entries.
	for f, n := range nlinks {
		if mm.kinds[f] == "dir" {
			continue
		}
		a := must[Attr](t)(e.m.StatFID(ctx, root, f))
		if a.Nlink != n {
			t.Errorf("%v: nlink %d, %d entries", f, a.Nlink, n)
		}
		paths := must[[]string](t)(e.m.Fid2Path(ctx, root, f, -1))
		if uint32(len(paths)) != n {
			t.Errorf("%v: %d paths, %d entries", f, len(paths), n)
		}
	}
	// Directories: nlink = 2 + subdirectories.
	subdirs := map[fid.FID]uint32{fid.Root: 0}
	for en := range server {
		if en.Type == TypeDir {
			subdirs[en.Parent]++
			subdirs[en.FID] += 0
		}
	}
	for d, n := range subdirs {
		if a := must[Attr](t)(e.m.StatFID(ctx, root, d)); a.Nlink != 2+n {
			t.Errorf("directory %v: nlink %d, %d subdirectories", d, a.Nlink, n)
		}
	}
	checkCache(t, e.m)
	// And the same after a restart.
	e.reopen()
	if again := fold(walkTree(t, e.m), func(en entry) string { return kindOf(en.Type) }); len(again) != len(got) {
		t.Fatalf("restart changed the tree: %d -> %d entries", len(got), len(again))
	}
}

// TestConcurrentOracle runs the random workload from several goroutines at
// once (run it with -race) and checks that the changelog, replayed in
// index order, still rebuilds the namespace exactly: commit order and
// record order agree.
func TestConcurrentOracle(t *testing.T) {
	e := newEnv(t)
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	const workers = 8
	per := 400
	if raceEnabled {
		per = 150
	}
	done := make(chan struct{})
	for g := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			w := &workload{t: t, m: e.m, rng: rand.New(rand.NewPCG(*oracleSeed, uint64(g)+100)), ok: map[string]int{}}
			for range per {
				w.step()
			}
		}()
	}
	for range workers {
		<-done
	}
	mm := replay(t, e.records(0))
	server := walkTree(t, e.m)
	n := 0
	for en := range server {
		if mm.entries[[2]string{en.Parent.String(), en.Name}] != en.FID || mm.kinds[en.FID] != kindOf(en.Type) {
			t.Fatalf("server entry %+v not in mirror", en)
		}
		n++
	}
	if n != len(mm.entries) {
		t.Fatalf("server has %d entries, mirror %d", n, len(mm.entries))
	}
	if e.m.OpenHandles() != 0 {
		t.Fatalf("%d handles left open", e.m.OpenHandles())
	}
	checkCache(t, e.m)
}
