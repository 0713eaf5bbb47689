package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// entry is one directory entry: parent FID + name -> object FID.
type entry struct {
	parent fid.FID
	name   string
}

// mirror is a namespace rebuilt from changelog records only.
type mirror map[entry]fid.FID

func (m mirror) apply(r *changelog.Record) {
	switch r.Type {
	case changelog.CLCreate, changelog.CLMkdir, changelog.CLSoftlink, changelog.CLMknod, changelog.CLHardlink:
		m[entry{r.PFID, r.Name}] = r.TFID
	case changelog.CLUnlink, changelog.CLRmdir:
		delete(m, entry{r.PFID, r.Name})
	case changelog.CLRename:
		delete(m, entry{r.SPFID, r.SName})
		m[entry{r.PFID, r.Name}] = r.SFID
		if r.Flags&changelog.FlagRenameExchange != 0 { // swapped: t= moved to sp/sname
			m[entry{r.SPFID, r.SName}] = r.TFID
		}
	}
}

func (m mirror) lines() []string {
	var out []string
	for e, f := range m {
		out = append(out, fmt.Sprintf("%s/%s -> %s", e.parent, e.name, f))
	}
	slices.Sort(out)
	return out
}

// serverNamespace walks the server's namespace from the root.
func serverNamespace(t *testing.T, c *Conn) mirror {
	t.Helper()
	ns := mirror{}
	ctx := c.Ctx(context.Background())
	root, err := c.NS.Stat(ctx, &mdtv1.StatRequest{Path: []byte("/")})
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, dir fid.FID)
	walk = func(path string, dir fid.FID) {
		after := ""
		for {
			rd, err := c.NS.Readdir(ctx, &mdtv1.ReaddirRequest{Path: []byte(path), StartAfter: []byte(after)})
			if err != nil {
				t.Fatalf("readdir %q: %v", path, err)
			}
			for _, de := range rd.GetEntries() {
				f := fidOf(de.GetFid())
				ns[entry{dir, string(de.GetName())}] = f
				if de.GetType().String() == "OBJECT_TYPE_DIR" {
					walk(strings.TrimPrefix(path+"/"+string(de.GetName()), "/"), f)
				}
				after = string(de.GetName())
			}
			if !rd.GetMore() {
				return
			}
		}
	}
	walk("", fidOf(root.GetAttr().GetFid()))
	return ns
}

// TestMirrorOracle: a randomized workload (renames over targets, hard
// links, unlinks of open files, xattrs, symlinks) with kill -9 in the
// middle; replaying the whole changelog onto an empty namespace must give
// exactly the server's namespace — so no change committed without its
// record and no record without its change, across crashes.
func TestMirrorOracle(t *testing.T) {
	ops := envIntDefault("FIDLOG_MIRROR_OPS", 10000)
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := context.Background()
	if _, err := c.CL.Register(c.Ctx(ctx), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 4242))
	dirs := []string{""}
	var files []string
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	name := func() string { return fmt.Sprintf("n%d", rng.IntN(40)) }
	join := func(d, n string) string { return strings.TrimPrefix(d+"/"+n, "/") }
	kills := 0
	for i := range ops {
		cx := c.Ctx(ctx)
		switch k := rng.IntN(100); {
		case k < 25:
			p := join(pick(dirs), name())
			if _, err := c.NS.Create(cx, &mdtv1.CreateRequest{Path: []byte(p), Mode: 0o644}); err == nil {
				files = append(files, p)
			}
		case k < 35:
			p := join(pick(dirs), "d"+name())
			if _, err := c.NS.Mkdir(cx, &mdtv1.MkdirRequest{Path: []byte(p), Mode: 0o755}); err == nil {
				dirs = append(dirs, p)
			}
		case k < 45 && len(files) > 0:
			p := join(pick(dirs), name())
			if _, err := c.NS.Link(cx, &mdtv1.LinkRequest{OldPath: []byte(pick(files)), NewPath: []byte(p)}); err == nil {
				files = append(files, p)
			}
		case k < 60 && len(files) > 0:
			// Rename, often over an existing name.
			dst := join(pick(dirs), name())
			if rng.IntN(2) == 0 {
				dst = pick(files)
			}
			src := pick(files)
			if _, err := c.NS.Rename(cx, &mdtv1.RenameRequest{SrcPath: []byte(src), DstPath: []byte(dst)}); err == nil {
				files = append(files, dst)
			}
		case k < 63 && len(dirs) > 1:
			src := pick(dirs[1:])
			dst := join(pick(dirs), "d"+name())
			if _, err := c.NS.Rename(cx, &mdtv1.RenameRequest{SrcPath: []byte(src), DstPath: []byte(dst)}); err == nil {
				dirs = append(dirs, dst)
			}
		case k < 75 && len(files) > 0:
			p := pick(files)
			// Sometimes unlink a file that is open.
			var h uint64
			if rng.IntN(3) == 0 {
				if or, err := c.NS.Open(cx, &mdtv1.OpenRequest{Path: []byte(p), Flags: uint32(changelog.OpenRead | changelog.OpenWrite)}); err == nil {
					h = or.GetHandle()
				}
			}
			_, _ = c.NS.Unlink(cx, &mdtv1.UnlinkRequest{Path: []byte(p)})
			if h != 0 {
				_, _ = c.NS.Close(cx, &mdtv1.CloseRequest{Handle: h})
			}
		case k < 80 && len(dirs) > 1:
			_, _ = c.NS.Rmdir(cx, &mdtv1.RmdirRequest{Path: []byte(pick(dirs[1:]))})
		case k < 85:
			_, _ = c.NS.Symlink(cx, &mdtv1.SymlinkRequest{Target: []byte("../" + name()), Path: []byte(join(pick(dirs), "s"+name()))})
		case k < 92 && len(files) > 0:
			_, _ = c.NS.Setxattr(cx, &mdtv1.SetxattrRequest{Path: []byte(pick(files)), Name: "user.k" + name(), Value: []byte("v")})
		default:
			if len(files) > 0 {
				_, _ = c.NS.Getxattr(cx, &mdtv1.GetxattrRequest{Path: []byte(pick(files)), Name: "user.kn1"})
			}
		}
		if (i+1)%(ops/3) == 0 && i+1 < ops {
			s.Kill()
			s.Restart()
			c = Dial(t, s, 0, 0)
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("the workload never killed the server")
	}
	// Replay the whole log (the only user never cleared, nothing purged).
	m := mirror{}
	st, err := c.CL.Read(c.Ctx(ctx), &changelogv1.ReadRequest{Device: device, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		resp, err := st.Recv()
		if err != nil {
			break
		}
		for _, raw := range resp.GetRawRecords() {
			r, err := changelog.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			m.apply(r)
			n++
		}
	}
	want := serverNamespace(t, c).lines()
	got := m.lines()
	if !slices.Equal(got, want) {
		t.Fatalf("replaying %d records does not reproduce the namespace:\nreplayed (%d entries) vs server (%d entries)\nfirst difference: %s", n, len(got), len(want), firstDiff(got, want))
	}
	t.Logf("%d operations, %d kills, %d records, %d entries: mirror identical", ops, kills, n, len(want))
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("replayed %q, server %q", a[i], b[i])
		}
	}
	if len(a) > len(b) {
		return "replayed has extra " + a[len(b)]
	}
	if len(b) > len(a) {
		return "server has extra " + b[len(a)]
	}
	return "none"
}
