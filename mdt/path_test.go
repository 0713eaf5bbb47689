package mdt

import (
	"errors"
	"fmt"
	"testing"
)

// TestResolveOneResolver: the unlocked and the locked resolution of a path
// (the same resolver, with and without locks) agree on the object, the
// parent and the errno for every identity, and Fid2Path inverts what
// Path2Fid resolves. Before, six resolver functions each had a copy of the
// walk and could drift apart.
func TestResolveOneResolver(t *testing.T) {
	e := newEnv(t)
	mk := func(p string, mode uint32) {
		_, err := e.m.Mkdir(ctx, root, p, 0755)
		ok(t, err)
		_, err = e.m.Setattr(ctx, root, p, SetattrArgs{Mode: &mode})
		ok(t, err)
	}
	mk("open", 0755)
	mk("open/sub", 0755)
	mk("closed", 0700)
	mk("closed/in", 0755)
	mk("sticky", 01777)
	e.touch(root, "open/sub/f")
	e.touch(root, "closed/in/g")
	e.touch(root, "open/file")
	_, err := e.m.Symlink(ctx, root, "sub/f", "open/rel")
	ok(t, err)
	_, err = e.m.Symlink(ctx, root, "/open/sub", "open/abs")
	ok(t, err)
	ok(t, second(e.m.Link(ctx, root, "open/sub/f", "sticky/f2")))

	paths := []string{
		"", "/", "open", "open/sub", "open/sub/f", "/open//sub/f/", "open/missing",
		"open/missing/x", "open/file/x", "open/rel", "open/rel/x", "open/abs/f",
		"closed", "closed/in", "closed/in/g", "sticky/f2", "open/../open", "a\x00b",
	}
	for _, c := range []Cred{root, user(500)} {
		id, err := e.m.Identify(c)
		ok(t, err)
		for _, p := range paths {
			for _, existing := range []bool{false, true} {
				name := fmt.Sprintf("uid %d %q existing=%v", c.UID, p, existing)
				plain, perr := e.m.resolve(&id, p, resolveOpts{existing: existing})
				var locked resolved
				lerr := e.m.update(func(ls *lockSet) error {
					var err error
					locked, err = e.m.resolve(&id, p, resolveOpts{locks: ls, existing: existing})
					return err
				})
				if Errno(perr) != Errno(lerr) {
					t.Errorf("%s: unlocked %v, locked %v", name, perr, lerr)
					continue
				}
				if perr != nil {
					continue
				}
				if fidOf(plain.obj) != fidOf(locked.obj) || fidOf(plain.parent) != fidOf(locked.parent) || plain.name != locked.name {
					t.Errorf("%s: unlocked %+v, locked %+v", name, plain, locked)
				}
			}
			// Path2Fid is resolve; Fid2Path is its inverse.
			f, err := e.m.Path2Fid(ctx, c, p)
			if err != nil {
				continue
			}
			back, err := e.m.Fid2Path(ctx, root, f, -1)
			ok(t, err)
			found := false
			for _, b := range back {
				g, err := e.m.Path2Fid(ctx, root, b)
				ok(t, err)
				if g != f {
					t.Errorf("fid2path(%v) gave %q, which resolves to %v", f, b, g)
				}
				found = true
			}
			if !found {
				t.Errorf("fid2path(path2fid(%q)) gave no path", p)
			}
		}
	}
	// The search bit counts: user 500 cannot pass through "closed".
	id, _ := e.m.Identify(user(500))
	if _, err := e.m.resolve(&id, "closed/in/g", resolveOpts{}); !errors.Is(err, ErrPermission) {
		t.Errorf("walk through a 0700 directory as a user: %v", err)
	}
	// A relative symlink resolves from its own directory.
	h, a, err := e.m.Open(ctx, root, "open/rel", rd, 0)
	ok(t, err)
	ok(t, e.m.CloseFile(ctx, root, h))
	if want := must[Attr](t)(e.m.Stat(ctx, root, "open/sub/f")); a.FID != want.FID {
		t.Errorf("open of a relative symlink reached %v, want %v", a.FID, want.FID)
	}
}

func fidOf(ino *inode) any {
	if ino == nil {
		return nil
	}
	return ino.FID
}
