package integration

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// TestMountRsync: rsync -aHX into the mount, then an update pass with
// --delete, give the same tree as into a local directory (contents, modes
// with a setuid bit, hard links, symlinks, user xattrs, a Latin-1 name,
// the source's mtimes), and the changelog replays onto the server's
// namespace. rsync writes each file under a temporary name and renames it
// over the old one, so the update pass records RENME with the overwrite
// flag (the old file's last link), all with j=rsync.0.
func TestMountRsync(t *testing.T) {
	needFUSE(t, "rsync", "setfattr")
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	src := filepath.Join(shortTempDir(t), "src")
	local := shortTempDir(t)
	// Times older than archiveTime, so that treeOf compares them.
	sh(t, filepath.Dir(src), nil, `
mkdir -p src/a/b src/c
echo one > src/a/f1 && echo two > src/a/b/f2 && printf 'caf\351' > "src/c/caf$(printf '\351')"
ln src/a/f1 src/a/hard && ln -s f1 src/a/sym
setfattr -n user.k -v v src/a/f1 && chmod 4755 src/a/b/f2 && chmod 0700 src/c
touch -h -d 2021-01-01T00:00:00Z src/a/f1 src/a/b/f2 src/a/sym "src/c/caf$(printf '\351')"
`)
	sync := "rsync -aHX --delete " + src + "/ dst/\n"
	sh(t, local, nil, sync)
	sh(t, m.Dir, nil, sync)
	sh(t, filepath.Dir(src), nil, `
echo more >> src/a/b/f2 && touch -d 2021-01-02T00:00:00Z src/a/b/f2
rm src/a/sym && mv "src/c/caf$(printf '\351')" src/a/ && setfattr -n user.k -v w src/a/f1
`)
	sh(t, local, nil, sync)
	sh(t, m.Dir, nil, sync)
	// The records of rsync's work (treeOf's reads below add their own).
	recs := readAll(t, c)

	want, got := treeOf(t, local), treeOf(t, m.Dir)
	if !slices.Equal(got, want) {
		t.Fatalf("mount tree (%d) differs from the local tree (%d): %s", len(got), len(want), firstDiff(got, want))
	}
	if !slices.ContainsFunc(got, func(l string) bool {
		return strings.Contains(l, `"dst/a/f1" mode=100644 nlink=2`) && strings.Contains(l, `user.k="w"`)
	}) {
		t.Fatalf("the tree lacks dst/a/f1 with 2 links and user.k=w:\n%s", strings.Join(got, "\n"))
	}

	mir := mirror{}
	overwrites := 0
	for _, r := range recs {
		mir.apply(r)
		if r.JobID != "rsync.0" {
			t.Errorf("record with job id %q, want rsync.0: %s", r.JobID, r.Line())
		}
		if r.Type == changelog.CLRename && r.Flags&changelog.FlagRenameLast != 0 {
			overwrites++
		}
	}
	if got, want := mir.lines(), serverNamespace(t, c).lines(); !slices.Equal(got, want) {
		t.Fatalf("replaying %d records does not reproduce the namespace: %s", len(recs), firstDiff(got, want))
	}
	if overwrites == 0 {
		t.Error("no RENME with the overwrite flag: rsync's update pass renames its temporary file over the old one")
	}
	m.Unmount()
}
