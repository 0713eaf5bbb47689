package mdt

import (
	"context"
	"errors"
	"fmt"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// Stat returns the attributes of the object at p (not following a final
// symlink, like lstat). Search permission is needed on every directory on
// the way.
func (m *MDT) Stat(ctx context.Context, c Cred, p string) (Attr, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return Attr{}, pathErr("stat", p, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.resolve(&cl.id, p, resolveOpts{existing: true})
	if err != nil {
		return Attr{}, pathErr("stat", p, err)
	}
	return r.obj.attr(), nil
}

// StatFID returns the attributes of object f, including an unlinked object
// still held open. It needs no permission (like .lustre/fid access by root).
func (m *MDT) StatFID(ctx context.Context, c Cred, f fid.FID) (Attr, error) {
	if _, err := m.begin(ctx, c); err != nil {
		return Attr{}, pathErr("stat", f.String(), err)
	}
	if f.IsZero() {
		return Attr{}, pathErr("stat", f.String(), ErrInvalid)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	ino, err := m.getInode(f)
	if err != nil {
		return Attr{}, pathErr("stat", f.String(), err)
	}
	return ino.attr(), nil
}

// Readdir lists directory p in name order. It needs read permission on it.
func (m *MDT) Readdir(ctx context.Context, c Cred, p string) ([]DirEntry, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.resolve(&cl.id, p, resolveOpts{existing: true})
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	if r.obj.Type != TypeDir {
		return nil, pathErr("readdir", p, ErrNotDir)
	}
	if !permitted(&cl.id, r.obj, mayRead) {
		return nil, pathErr("readdir", p, ErrPermission)
	}
	ents, err := m.readdir(r.obj.FID)
	return ents, pathErr("readdir", p, err)
}

func (m *MDT) readdir(dir fid.FID) ([]DirEntry, error) {
	var out []DirEntry
	lo, hi := direntRange(dir)
	err := m.scan(lo, hi, func(k, v []byte) error {
		f, t, err := decodeDirent(v)
		if err != nil {
			return err
		}
		out = append(out, DirEntry{Name: direntName(k), FID: f, Type: t})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isEmptyDir reports whether dir has no entries.
func (m *MDT) isEmptyDir(dir fid.FID) (bool, error) {
	lo, hi := direntRange(dir)
	err := m.scan(lo, hi, func(_, _ []byte) error { return errFound })
	if errors.Is(err, errFound) {
		return false, nil
	}
	return err == nil, err
}

// errFound stops a scan at the first key.
var errFound = errors.New("mdt: found")

// Mkdir creates directory p. mode is the permission bits (the client has
// applied its umask).
func (m *MDT) Mkdir(ctx context.Context, c Cred, p string, mode uint32) (Attr, error) {
	a, _, err := m.mknode(ctx, c, p, TypeDir, mode, 0, "", false, 0)
	return a, m.deny(ctx, c, denial{op: changelog.CLMkdir, path: p}, pathErr("mkdir", p, err))
}

// Create creates regular file p. If it exists, excl gives EEXIST; without
// excl an existing non-directory is returned unchanged (no record).
func (m *MDT) Create(ctx context.Context, c Cred, p string, mode uint32, excl bool) (Attr, error) {
	a, _, err := m.CreateFile(ctx, c, p, mode, excl)
	return a, err
}

// CreateFile is Create that also reports whether this call created the
// file (false when a non-exclusive create found it already there).
func (m *MDT) CreateFile(ctx context.Context, c Cred, p string, mode uint32, excl bool) (Attr, bool, error) {
	a, created, err := m.mknode(ctx, c, p, TypeReg, mode, 0, "", !excl, 0)
	return a, created, m.deny(ctx, c, denial{op: changelog.CLCreate, path: p}, pathErr("create", p, err))
}

// Mknod creates a special file (or a regular file for TypeReg). Device
// nodes need root (EPERM otherwise).
func (m *MDT) Mknod(ctx context.Context, c Cred, p string, typ FileType, mode uint32, rdev uint64) (Attr, error) {
	switch typ {
	case TypeReg, TypeChr, TypeBlk, TypeFifo, TypeSock:
	default:
		return Attr{}, pathErr("mknod", p, fmt.Errorf("%w: mknod of type %v", ErrInvalid, typ))
	}
	if typ != TypeChr && typ != TypeBlk {
		rdev = 0
	}
	a, _, err := m.mknode(ctx, c, p, typ, mode, rdev, "", false, 0)
	return a, m.deny(ctx, c, denial{op: createType(typ), path: p}, pathErr("mknod", p, err))
}

// Symlink creates symlink p pointing at target (stored verbatim).
func (m *MDT) Symlink(ctx context.Context, c Cred, target, p string) (Attr, error) {
	switch {
	case target == "":
		return Attr{}, pathErr("symlink", p, fmt.Errorf("%w: empty symlink target", ErrNotFound))
	case len(target) > MaxPath:
		return Attr{}, pathErr("symlink", p, fmt.Errorf("%w: symlink target of %d bytes", ErrNameTooLong, len(target)))
	}
	for i := 0; i < len(target); i++ {
		if target[i] == 0 {
			return Attr{}, pathErr("symlink", p, fmt.Errorf("%w: symlink target contains NUL", ErrInvalid))
		}
	}
	a, _, err := m.mknode(ctx, c, p, TypeLnk, 0777, 0, target, false, 0)
	return a, m.deny(ctx, c, denial{op: changelog.CLSoftlink, path: p}, pathErr("symlink", p, err))
}

func createType(t FileType) changelog.Type {
	switch t {
	case TypeDir:
		return changelog.CLMkdir
	case TypeReg:
		return changelog.CLCreate
	case TypeLnk:
		return changelog.CLSoftlink
	}
	return changelog.CLMknod
}

// mknode creates an object. With existingOK an existing non-directory is
// returned as is (created = false). openFlags, if non-zero, adds an OPEN
// for the new file to the same batch (see Open).
func (m *MDT) mknode(ctx context.Context, c Cred, p string, typ FileType, mode uint32, rdev uint64, target string, existingOK bool, openFlags uint32) (Attr, bool, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return Attr{}, false, err
	}
	if (typ == TypeChr || typ == TypeBlk) && cl.id.UID != 0 {
		return Attr{}, false, ErrNotPermitted
	}
	comps, err := splitPath(p)
	if err != nil {
		return Attr{}, false, err
	}
	if len(comps) == 0 {
		return Attr{}, false, ErrExists
	}
	var (
		pend    *store.Pending
		a       Attr
		created bool
	)
	err = m.update(func(ls *lockSet) (err error) {
		pend, a, created, err = m.mknodeLocked(cl, ls, comps, typ, mode, rdev, target, existingOK)
		return err
	})
	if err != nil {
		return Attr{}, false, err
	}
	return a, created, m.wait(pend)
}

func (m *MDT) mknodeLocked(cl *caller, ls *lockSet, comps []string, typ FileType, mode uint32, rdev uint64, target string, existingOK bool) (*store.Pending, Attr, bool, error) {
	parent, err := m.walk(&cl.id, fid.Root, comps[:len(comps)-1], ls)
	if err != nil {
		return nil, Attr{}, false, err
	}
	name := comps[len(comps)-1]
	if f, t, ok, err := m.lookup(parent.FID, name); err != nil {
		return nil, Attr{}, false, err
	} else if ok {
		if !existingOK {
			return nil, Attr{}, false, ErrExists
		}
		if t == TypeDir {
			return nil, Attr{}, false, ErrIsDir
		}
		ino, err := m.getInode(f)
		if err != nil {
			return nil, Attr{}, false, err
		}
		return nil, ino.attr(), false, nil
	}
	if !permitted(&cl.id, parent, mayWrite|mayExec) {
		return nil, Attr{}, false, ErrPermission
	}
	t := m.newTxn(cl)
	defer t.close()
	ino, err := t.create(parent, name, typ, mode, rdev, target)
	if err != nil {
		return nil, Attr{}, false, err
	}
	t.record(createType(typ), ino.FID, parent.FID, name)
	pend, err := t.apply()
	if err != nil {
		return nil, Attr{}, false, err
	}
	return pend, ino.attr(), true, nil
}

// create adds a new object named name in parent to the batch and updates
// the parent (entry, nlink for directories, times).
func (t *txn) create(parent *inode, name string, typ FileType, mode uint32, rdev uint64, target string) (*inode, error) {
	f, err := t.m.alloc.Next()
	if err != nil {
		return nil, err
	}
	ino := &inode{
		FID: f, Type: typ, Mode: mode & 07777, UID: t.cl.id.UID, GID: t.cl.id.GID, Nlink: 1,
		Atime: t.now, Mtime: t.now, Ctime: t.now, Rdev: rdev, Target: target,
	}
	if typ == TypeLnk {
		ino.Size = uint64(len(target))
		ino.Mode = 0777
	}
	if parent.Mode&02000 != 0 { // setgid directory: group inherited
		ino.GID = parent.GID
		if typ == TypeDir {
			ino.Mode |= 02000
		}
	}
	if typ == TypeDir {
		ino.Nlink = 2
		parent.Nlink++
		t.ns.newDirs = append(t.ns.newDirs, f)
	}
	t.addLink(parent.FID, name, ino)
	t.putInode(ino)
	t.ns.markFresh(ino.FID)
	parent.Mtime, parent.Ctime = t.now, t.now
	t.putInode(parent)
	return ino, nil
}

// Link adds hard link newPath to the object at oldPath (not followed).
// Directories cannot be linked (EPERM).
func (m *MDT) Link(ctx context.Context, c Cred, oldPath, newPath string) (Attr, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return Attr{}, pathErr("link", newPath, err)
	}
	comps, err := splitPath(newPath)
	if err != nil {
		return Attr{}, pathErr("link", newPath, err)
	}
	if len(comps) == 0 {
		return Attr{}, pathErr("link", newPath, ErrExists)
	}
	var (
		pend *store.Pending
		a    Attr
	)
	err = m.update(func(ls *lockSet) (err error) {
		pend, a, err = m.linkLocked(cl, ls, oldPath, comps)
		return err
	})
	if err == nil {
		err = m.wait(pend)
	}
	return a, m.deny(ctx, c, denial{op: changelog.CLHardlink, path: newPath, src: oldPath}, pathErr("link", newPath, err))
}

func (m *MDT) linkLocked(cl *caller, ls *lockSet, oldPath string, comps []string) (*store.Pending, Attr, error) {
	src, err := m.resolve(&cl.id, oldPath, resolveOpts{locks: ls, existing: true})
	if errors.Is(err, errRelock) {
		return nil, Attr{}, err
	} else if err != nil {
		return nil, Attr{}, &PathError{Op: "link", Path: oldPath, Err: err}
	}
	if src.obj.Type == TypeDir {
		return nil, Attr{}, ErrNotPermitted
	}
	if src.obj.Nlink == 0 {
		return nil, Attr{}, ErrNotFound
	}
	parent, err := m.walk(&cl.id, fid.Root, comps[:len(comps)-1], ls)
	if err != nil {
		return nil, Attr{}, err
	}
	name := comps[len(comps)-1]
	if _, _, ok, err := m.lookup(parent.FID, name); err != nil {
		return nil, Attr{}, err
	} else if ok {
		return nil, Attr{}, ErrExists
	}
	if !permitted(&cl.id, parent, mayWrite|mayExec) {
		return nil, Attr{}, ErrPermission
	}
	t := m.newTxn(cl)
	defer t.close()
	ino := src.obj
	ino.Nlink++
	ino.Ctime = t.now
	t.addLink(parent.FID, name, ino)
	t.putInode(ino)
	parent.Mtime, parent.Ctime = t.now, t.now
	t.putInode(parent)
	t.record(changelog.CLHardlink, ino.FID, parent.FID, name)
	pend, err := t.apply()
	if err != nil {
		return nil, Attr{}, err
	}
	return pend, ino.attr(), nil
}

// Unlink removes the entry p of a non-directory. The UNLNK record has
// flag 0x1 when the object lost its last link (also when it is still
// open: it is then kept until the last close).
func (m *MDT) Unlink(ctx context.Context, c Cred, p string) error {
	return m.deny(ctx, c, denial{op: changelog.CLUnlink, path: p}, pathErr("unlink", p, m.remove(ctx, c, p, false)))
}

// Rmdir removes the empty directory p.
func (m *MDT) Rmdir(ctx context.Context, c Cred, p string) error {
	return m.deny(ctx, c, denial{op: changelog.CLRmdir, path: p}, pathErr("rmdir", p, m.remove(ctx, c, p, true)))
}

func (m *MDT) remove(ctx context.Context, c Cred, p string, dir bool) error {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return err
	}
	var pend *store.Pending
	err = m.update(func(ls *lockSet) (err error) {
		pend, err = m.removeLocked(cl, ls, p, dir)
		return err
	})
	if err != nil {
		return err
	}
	return m.wait(pend)
}

func (m *MDT) removeLocked(cl *caller, ls *lockSet, p string, dir bool) (*store.Pending, error) {
	r, err := m.resolve(&cl.id, p, resolveOpts{locks: ls, existing: true})
	if err != nil {
		return nil, err
	}
	if r.parent == nil {
		if dir {
			return nil, ErrBusy
		}
		return nil, ErrIsDir
	}
	obj := r.obj
	switch {
	case dir && obj.Type != TypeDir:
		return nil, ErrNotDir
	case !dir && obj.Type == TypeDir:
		return nil, ErrIsDir
	}
	if err := mayDelete(&cl.id, r.parent, obj); err != nil {
		return nil, err
	}
	if dir {
		empty, err := m.isEmptyDir(obj.FID)
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, ErrNotEmpty
		}
	}
	t := m.newTxn(cl)
	defer t.close()
	last, err := t.unlinkEntry(r.parent, r.name, obj)
	if err != nil {
		return nil, err
	}
	r.parent.Mtime, r.parent.Ctime = t.now, t.now
	t.putInode(r.parent)
	typ := changelog.CLUnlink
	if dir {
		typ = changelog.CLRmdir
	}
	if rec := t.record(typ, obj.FID, r.parent.FID, r.name); rec != nil && last {
		rec.Flags = changelog.FlagUnlinkLast
	}
	return t.apply()
}

// unlinkEntry removes parent/name of obj (parent's nlink is adjusted for
// directories, the caller writes the parent) and reports whether obj lost
// its last link. On error the batch must not be committed.
func (t *txn) unlinkEntry(parent *inode, name string, obj *inode) (bool, error) {
	if err := t.removeLink(parent.FID, name, obj); err != nil {
		return false, err
	}
	if obj.Type == TypeDir {
		parent.Nlink--
		obj.Nlink = 0
	} else if obj.Nlink > 0 {
		obj.Nlink--
	}
	obj.Ctime = t.now
	if obj.Nlink == 0 {
		return true, t.dropLastLink(obj)
	}
	t.putInode(obj)
	return false, nil
}

// Rename moves src to dst, replacing dst if it exists under POSIX rules:
// file over file, directory over empty directory; directory over a
// non-empty directory is ENOTEMPTY, file over directory EISDIR, directory
// over file ENOTDIR; a directory never moves into its own subtree (EINVAL);
// renaming an object onto itself (same entry, or two links of one object)
// does nothing and records nothing.
func (m *MDT) Rename(ctx context.Context, c Cred, src, dst string) error {
	return m.RenameFlags(ctx, c, src, dst, 0)
}

// Flags of RenameFlags, as renameat2(2)'s.
const (
	// RenameNoReplace fails with EEXIST if dst exists (checked with the
	// rename, atomically).
	RenameNoReplace uint32 = 1
	// RenameExchange swaps src and dst atomically; both must exist
	// (ENOENT), of any types.
	RenameExchange uint32 = 2
)

// RenameFlags is Rename with renameat2(2)'s flags (0, RenameNoReplace or
// RenameExchange; both, or any other bit, is EINVAL).
//
// An exchange records one RENME whose fields read as a rename's (t= the
// object that was at dst, p= dst's directory, name = dst's name, s= the
// object that was at src, sp=/sname its directory and name) with flag
// changelog.FlagRenameExchange (0x4, fidlog's own: Lustre has no
// exchange): t= was not removed but moved to sp=/sname. Directories that
// change parents move with their ".." (EINVAL into their own subtree),
// and both parents' nlink follow.
func (m *MDT) RenameFlags(ctx context.Context, c Cred, src, dst string, flags uint32) error {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return pathErr("rename", src, err)
	}
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return pathErr("rename", src, fmt.Errorf("%w: rename flags %#x", ErrInvalid, flags))
	}
	var pend *store.Pending
	err = m.update(func(ls *lockSet) (err error) {
		pend, err = m.renameLocked(cl, ls, src, dst, flags)
		return err
	})
	if err == nil {
		err = m.wait(pend)
	}
	return m.deny(ctx, c, denial{op: changelog.CLRename, path: dst, src: src}, pathErr("rename", src, err))
}

func (m *MDT) renameLocked(cl *caller, ls *lockSet, src, dst string, flags uint32) (*store.Pending, error) {
	s, err := m.resolve(&cl.id, src, resolveOpts{locks: ls, existing: true})
	if err != nil {
		return nil, err
	}
	if s.obj.Type == TypeDir {
		// Moving a directory changes the ancestry that path walks
		// rely on: it runs alone.
		if err := ls.exclusiveNeeded(); err != nil {
			return nil, err
		}
	}
	dcomps, err := splitPath(dst)
	if err != nil {
		return nil, &PathError{Op: "rename", Path: dst, Err: err}
	}
	if s.parent == nil || len(dcomps) == 0 {
		return nil, ErrBusy
	}
	dparent, err := m.walk(&cl.id, fid.Root, dcomps[:len(dcomps)-1], ls)
	if errors.Is(err, errRelock) {
		return nil, err
	} else if err != nil {
		return nil, &PathError{Op: "rename", Path: dst, Err: err}
	}
	dname := dcomps[len(dcomps)-1]
	var victim *inode
	if f, _, ok, err := m.lookup(dparent.FID, dname); err != nil {
		return nil, err
	} else if ok {
		if flags&RenameNoReplace != 0 {
			return nil, &PathError{Op: "rename", Path: dst, Err: ErrExists}
		}
		if f == s.obj.FID {
			return nil, nil // same object: nothing to do
		}
		if !ls.need(f) {
			return nil, ls.relock()
		}
		if victim, err = m.getInode(f); err != nil {
			return nil, err
		}
	}
	if flags&RenameExchange != 0 {
		if victim == nil {
			return nil, &PathError{Op: "rename", Path: dst, Err: ErrNotFound}
		}
		return m.exchangeLocked(cl, ls, s, dparent, dname, victim, src, dst)
	}
	obj := s.obj
	isDir := obj.Type == TypeDir
	if victim != nil {
		switch {
		case isDir && victim.Type != TypeDir:
			return nil, ErrNotDir
		case !isDir && victim.Type == TypeDir:
			return nil, ErrIsDir
		}
	}
	if err := mayDelete(&cl.id, s.parent, obj); err != nil {
		return nil, err
	}
	if victim != nil {
		if err := mayDelete(&cl.id, dparent, victim); err != nil {
			return nil, err
		}
	} else if !permitted(&cl.id, dparent, mayWrite|mayExec) {
		return nil, ErrPermission
	}
	sameDir := s.parent.FID == dparent.FID
	if isDir && !sameDir {
		// Moving a directory rewrites its "..": write permission on it.
		if !permitted(&cl.id, obj, mayWrite) {
			return nil, ErrPermission
		}
		if in, err := m.isAncestor(obj.FID, dparent.FID); err != nil {
			return nil, err
		} else if in {
			return nil, fmt.Errorf("%w: cannot move '%s' into its own subtree '%s'", ErrInvalid, src, dst)
		}
	}
	if victim != nil && victim.Type == TypeDir {
		empty, err := m.isEmptyDir(victim.FID)
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, ErrNotEmpty
		}
	}

	t := m.newTxn(cl)
	defer t.close()
	// With one parent, both sides must update the same in-memory inode.
	sp, dp := s.parent, dparent
	if sameDir {
		dp = sp
	}
	last := false
	if victim != nil {
		var err error
		if last, err = t.unlinkEntry(dp, dname, victim); err != nil {
			return nil, err
		}
	}
	if err := t.removeLink(sp.FID, s.name, obj); err != nil {
		return nil, err
	}
	t.addLink(dp.FID, dname, obj)
	obj.Ctime = t.now
	t.putInode(obj)
	if isDir && !sameDir {
		sp.Nlink--
		dp.Nlink++
	}
	t.touchDirs(sp, dp, sameDir)
	var tfid fid.FID
	if victim != nil {
		tfid = victim.FID
	}
	if rec := t.record(changelog.CLRename, tfid, dp.FID, dname); rec != nil {
		rec.SFID, rec.SPFID, rec.SName = obj.FID, sp.FID, s.name
		if last {
			rec.Flags = changelog.FlagRenameLast
		}
	}
	return t.apply()
}

// exchangeLocked swaps the entries s (src) and dparent/dname (dst, naming
// victim), for RenameFlags with RenameExchange.
func (m *MDT) exchangeLocked(cl *caller, ls *lockSet, s resolved, dparent *inode, dname string, victim *inode, src, dst string) (*store.Pending, error) {
	obj := s.obj
	if victim.Type == TypeDir {
		if err := ls.exclusiveNeeded(); err != nil {
			return nil, err
		}
	}
	if err := mayDelete(&cl.id, s.parent, obj); err != nil {
		return nil, err
	}
	if err := mayDelete(&cl.id, dparent, victim); err != nil {
		return nil, err
	}
	sameDir := s.parent.FID == dparent.FID
	if !sameDir {
		// A directory that changes parents rewrites its "..": write
		// permission on it, and never into its own subtree.
		for _, mv := range []struct {
			dir *inode
			to  fid.FID
			at  string
		}{{obj, dparent.FID, dst}, {victim, s.parent.FID, src}} {
			if mv.dir.Type != TypeDir {
				continue
			}
			if !permitted(&cl.id, mv.dir, mayWrite) {
				return nil, ErrPermission
			}
			if in, err := m.isAncestor(mv.dir.FID, mv.to); err != nil {
				return nil, err
			} else if in {
				return nil, fmt.Errorf("%w: cannot move a directory into its own subtree at '%s'", ErrInvalid, mv.at)
			}
		}
	}
	t := m.newTxn(cl)
	defer t.close()
	sp, dp := s.parent, dparent
	if sameDir {
		dp = sp
	}
	if err := t.removeLink(sp.FID, s.name, obj); err != nil {
		return nil, err
	}
	if err := t.removeLink(dp.FID, dname, victim); err != nil {
		return nil, err
	}
	t.addLink(dp.FID, dname, obj)
	t.addLink(sp.FID, s.name, victim)
	obj.Ctime, victim.Ctime = t.now, t.now
	t.putInode(obj)
	t.putInode(victim)
	if !sameDir {
		if obj.Type == TypeDir && victim.Type != TypeDir {
			sp.Nlink--
			dp.Nlink++
		} else if victim.Type == TypeDir && obj.Type != TypeDir {
			dp.Nlink--
			sp.Nlink++
		}
	}
	t.touchDirs(sp, dp, sameDir)
	if rec := t.record(changelog.CLRename, victim.FID, dp.FID, dname); rec != nil {
		rec.SFID, rec.SPFID, rec.SName = obj.FID, sp.FID, s.name
		rec.Flags = changelog.FlagRenameExchange
	}
	return t.apply()
}

// isAncestor reports whether directory a is d or one of d's ancestors.
func (m *MDT) isAncestor(a, d fid.FID) (bool, error) {
	for range 1 << 16 {
		if d == a {
			return true, nil
		}
		if d == fid.Root {
			return false, nil
		}
		ls, err := m.links(d)
		if err != nil {
			return false, err
		}
		if len(ls) == 0 {
			return false, nil
		}
		d = ls[0].parent
	}
	return false, fmt.Errorf("%w: directory tree too deep at %v", ErrLoop, d)
}

// touchDirs sets the mtime and ctime of a rename's source and target
// directories and stores them (once when they are the same directory).
func (t *txn) touchDirs(sp, dp *inode, sameDir bool) {
	sp.Mtime, sp.Ctime = t.now, t.now
	dp.Mtime, dp.Ctime = t.now, t.now
	t.putInode(sp)
	if !sameDir {
		t.putInode(dp)
	}
}
