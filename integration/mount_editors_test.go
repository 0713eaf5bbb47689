package integration

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// TestMountEditors: editors save files in the three ways programs do: sed
// -i writes a temporary file and renames it over the original (a hard link
// keeps the old content), vim keeps a swap file beside the file and, with
// backupcopy=no, renames the original to a backup and writes a new file,
// ed truncates and rewrites in place. In the mount each gives the tree it
// gives in a local directory, the changelog replays onto the server's
// namespace, and every record carries the editor's job id.
func TestMountEditors(t *testing.T) {
	needFUSE(t, "sed", "vim", "ed")
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	local := shortTempDir(t)
	const setup = `printf 'one\ntwo\n' > notes.txt && ln notes.txt notes.link && printf 'x\ny\n' > single.txt && printf 'a\n' > inplace.txt
`
	const edit = `sed -i 's/one/ONE/' notes.txt
vim -u NONE -i NONE -N -es -c 'set swapfile' -c '%s/x/X/' -c 'wq' single.txt
vim -u NONE -i NONE -N -es -c 'set backupcopy=no writebackup' -c '%s/two/TWO/' -c 'wq' notes.link
printf ',s/a/A/\nw\nq\n' | ed -s inplace.txt
`
	sh(t, local, nil, setup)
	sh(t, m.Dir, nil, setup)
	before := len(readAll(t, c))
	sh(t, local, nil, edit)
	sh(t, m.Dir, nil, edit)
	recs := readAll(t, c)

	want, got := treeOf(t, local), treeOf(t, m.Dir)
	if !slices.Equal(got, want) {
		t.Fatalf("mount tree differs from the local tree: %s\nmount:\n%s\nlocal:\n%s", firstDiff(got, want), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range []string{"notes.txt", "notes.link", "single.txt", "inplace.txt"} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, `"`+f+`" mode=100644 nlink=1 `) }) {
			t.Errorf("%s is not a regular file with one link after the edits:\n%s", f, strings.Join(got, "\n"))
		}
	}

	mir := mirror{}
	jobs := map[string]int{}
	types := map[string]int{}
	for i, r := range recs {
		mir.apply(r)
		if i < before {
			continue
		}
		if r.JobID == "sh.0" && r.Type == changelog.CLClose {
			// The setup's shell redirections: a FUSE release reaches
			// the mount after close(2) has returned, so their CLOSE
			// may land after the count above.
			continue
		}
		jobs[r.JobID]++
		types[r.Type.String()]++
	}
	if got, want := mir.lines(), serverNamespace(t, c).lines(); !slices.Equal(got, want) {
		t.Fatalf("replaying %d records does not reproduce the namespace: %s", len(recs), firstDiff(got, want))
	}
	for j := range jobs {
		if j != "sed.0" && j != "vim.0" && j != "ed.0" {
			t.Errorf("records of the edits with job id %q (%v), want sed.0, vim.0 or ed.0", j, jobs)
		}
	}
	for _, j := range []string{"sed.0", "vim.0", "ed.0"} {
		if jobs[j] == 0 {
			t.Errorf("no record with job id %s (%v)", j, jobs)
		}
	}
	// sed's and vim's renames, vim's swap and backup files, ed's rewrite.
	for _, ty := range []string{"RENME", "CREAT", "UNLNK", "TRUNC", "CLOSE"} {
		if types[ty] == 0 {
			t.Errorf("no %s record from the edits (%v)", ty, types)
		}
	}
	m.Unmount()
}
