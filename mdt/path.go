package mdt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// Name and path limits.
const (
	// MaxName is the longest entry name (NAME_MAX).
	MaxName = changelog.MaxName
	// MaxPath is the longest path accepted (PATH_MAX).
	MaxPath = 4096
)

// validName checks one path component.
func validName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("%w: bad name '%s'", ErrInvalid, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: name '%s' contains '/' or NUL", ErrInvalid, name)
	case len(name) > MaxName:
		return fmt.Errorf("%w: name of %d bytes (max %d)", ErrNameTooLong, len(name), MaxName)
	}
	return nil
}

// splitPath splits a path relative to the root into components. "" and "/"
// are the root; leading, repeated and trailing slashes are ignored. Every
// component must be a valid name ("." and ".." are refused).
func splitPath(p string) ([]string, error) {
	if len(p) > MaxPath {
		return nil, fmt.Errorf("%w: path of %d bytes (max %d)", ErrNameTooLong, len(p), MaxPath)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return nil, fmt.Errorf("%w: path contains NUL", ErrInvalid)
	}
	out := make([]string, 0, strings.Count(p, "/")+1)
	for c := range strings.SplitSeq(p, "/") {
		if c == "" {
			continue
		}
		if err := validName(c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Permission request bits.
const (
	mayExec  = 1
	mayWrite = 2
	mayRead  = 4
)

// permitted reports whether id may access ino as asked: root (unless
// squashed, which makes it not root) may do anything except execute a
// non-directory without any x bit; others get the owner, group
// (primary or supplementary) or other bits, the first class that matches.
func permitted(id *Identity, ino *inode, want uint32) bool {
	if id.UID == 0 {
		if want&mayExec != 0 && ino.Type != TypeDir && ino.Mode&0111 == 0 {
			return false
		}
		return true
	}
	var bits uint32
	switch {
	case id.UID == ino.UID:
		bits = ino.Mode >> 6 & 7
	case id.inGroup(ino.GID):
		bits = ino.Mode >> 3 & 7
	default:
		bits = ino.Mode & 7
	}
	return want&^bits == 0
}

// mayDelete checks that id may remove or replace the entry of victim in dir:
// write and search on dir, and with the sticky bit, ownership of dir or
// victim (or root).
func mayDelete(id *Identity, dir, victim *inode) error {
	if !permitted(id, dir, mayWrite|mayExec) {
		return ErrPermission
	}
	if dir.Mode&01000 != 0 && id.UID != 0 && id.UID != dir.UID && id.UID != victim.UID {
		return ErrPermission
	}
	return nil
}

// getInode reads an object (a copy the caller may change); ErrNotFound if
// it does not exist. The namespace cache answers if it can.
func (m *MDT) getInode(f fid.FID) (ino *inode, err error) {
	var gen uint64
	if m.nsc != nil {
		if ino, gen = m.nsc.getInode(f); ino != nil {
			return ino, nil
		}
	}
	ok, err := get(m.db, inodeKey(f), func(v []byte) error {
		ino, err = decodeInode(f, v)
		return err
	})
	if err == nil && !ok {
		return nil, ErrNotFound
	}
	if err == nil && m.nsc != nil {
		m.nsc.fillInode(ino, gen)
	}
	return ino, err
}

// lookup finds name in directory dir; ok is false if there is no entry.
// The namespace cache answers if it can.
func (m *MDT) lookup(dir fid.FID, name string) (f fid.FID, t FileType, ok bool, err error) {
	var gen uint64
	if m.nsc != nil {
		d, r, g := m.nsc.lookup(dir, name)
		switch r {
		case lookupFound:
			return d.fid, d.typ, true, nil
		case lookupAbsent:
			return fid.FID{}, 0, false, nil
		}
		gen = g
	}
	ok, err = get(m.db, direntKey(dir, name), func(v []byte) error {
		f, t, err = decodeDirent(v)
		return err
	})
	ok = ok && err == nil
	if ok && m.nsc != nil {
		m.nsc.fillDent(dir, name, dent{fid: f, typ: t}, gen)
	}
	if !ok && err == nil && m.nsc != nil {
		// A name not found in a directory the cache does not know
		// whole: load it whole if it is small, so that the next names
		// looked up in it (the next creates) need no read.
		m.loadDir(dir)
	}
	return f, t, ok, err
}

// loadDir caches every entry of directory dir and marks it complete,
// unless it has more than dirLoadMax entries or its entries changed
// while they were read (see nsCache.loadEnd). A read error leaves the
// cache as it was.
func (m *MDT) loadDir(dir fid.FID) {
	cd, ver := m.nsc.loadStart(dir)
	if cd == nil {
		return
	}
	var ents []DirEntry
	lo, hi := direntRange(dir)
	err := m.scan(lo, hi, func(k, v []byte) error {
		if len(ents) == dirLoadMax {
			return errFound
		}
		f, t, err := decodeDirent(v)
		if err != nil {
			return err
		}
		ents = append(ents, DirEntry{Name: direntName(k), FID: f, Type: t})
		return nil
	})
	if h := m.nsc.loadHook; h != nil {
		h(dir)
	}
	switch {
	case errors.Is(err, errFound):
		m.nsc.loadEnd(dir, cd, ver, nil, true)
	case err == nil:
		m.nsc.loadEnd(dir, cd, ver, ents, false)
	}
}

// resolveOpts select how resolve treats a path. The zero value resolves
// from the root, without locks, and accepts a missing final entry.
type resolveOpts struct {
	// locks, if set, makes resolve take the stripe of the last directory
	// and of the object (ls.need) before reading them, for an operation
	// that changes them; resolve returns errRelock when the lock set must
	// be retaken in order.
	locks *lockSet
	// existing makes a missing final entry ErrNotFound.
	existing bool
	// from is the directory a relative path starts at (a symlink's
	// directory); the zero FID is the root.
	from fid.FID
	// fid, if not zero, names the object instead of the path (the *FID
	// variants: an object reached through an open file, possibly
	// unlinked): no walk, no parent.
	fid fid.FID
}

// resolved is a path resolved without following a final symlink.
type resolved struct {
	parent *inode // nil for the root
	name   string // "" for the root
	obj    *inode // nil if the entry does not exist
}

// resolve is the one path resolver: it resolves p like lstat, checking
// search permission on every directory passed through; intermediate
// components must be directories (symlinks and other non-directories give
// ENOTDIR); the final component is not followed. Path2Fid, Stat and every
// operation that names a path use it; Fid2Path is its inverse.
func (m *MDT) resolve(id *Identity, p string, o resolveOpts) (resolved, error) {
	if !o.fid.IsZero() {
		if o.locks != nil && !o.locks.need(o.fid) {
			return resolved{}, o.locks.relock()
		}
		obj, err := m.getInode(o.fid)
		return resolved{obj: obj}, err
	}
	comps, err := splitPath(p)
	if err != nil {
		return resolved{}, err
	}
	start := o.from
	if start.IsZero() {
		start = fid.Root
	}
	if len(comps) == 0 {
		if start != fid.Root {
			return resolved{}, fmt.Errorf("%w: empty relative path", ErrNotFound)
		}
		if o.locks != nil && !o.locks.need(fid.Root) {
			return resolved{}, o.locks.relock()
		}
		root, err := m.getInode(fid.Root)
		return resolved{obj: root}, err
	}
	parent, err := m.walk(id, start, comps[:len(comps)-1], o.locks)
	if err != nil {
		return resolved{}, err
	}
	r := resolved{parent: parent, name: comps[len(comps)-1]}
	f, _, ok, err := m.lookup(parent.FID, r.name)
	if err != nil {
		return r, err
	}
	if !ok {
		if o.existing {
			return r, ErrNotFound
		}
		return r, nil
	}
	if o.locks != nil && !o.locks.need(f) {
		return resolved{}, o.locks.relock()
	}
	r.obj, err = m.getInode(f)
	return r, err
}

// walk resolves the directories comps below start and returns the last
// one, having checked search permission on every directory passed through
// (start included). Root may search every directory, so its walk reads
// only the last inode. With ls, the last directory's stripe is taken
// (ls.need) before its inode is read, for an operation that changes it or
// its entries. The directories above it are read without stripes; under
// the shared namespace lock they cannot move (directory renames and
// permission changes of directories run alone), only be removed once
// empty, which the walk then sees as ENOENT. A last directory removed
// after it was looked up has nlink 0 (or is gone): ENOENT as well.
func (m *MDT) walk(id *Identity, start fid.FID, comps []string, ls *lockSet) (*inode, error) {
	f := start
	for _, c := range comps {
		// Root's inode read is skipped: a directory removed meanwhile
		// has no entries left, so the lookup below fails with ENOENT
		// as the read would.
		if id.UID != 0 {
			dir, err := m.getInode(f)
			if err != nil {
				return nil, err
			}
			if dir.Type != TypeDir {
				return nil, ErrNotDir
			}
			if !permitted(id, dir, mayExec) {
				return nil, ErrPermission
			}
		}
		g, t, ok, err := m.lookup(f, c)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotFound
		}
		if t != TypeDir {
			return nil, ErrNotDir
		}
		f = g
	}
	if ls != nil && !ls.need(f) {
		return nil, ls.relock()
	}
	dir, err := m.getInode(f)
	if err != nil {
		return nil, err
	}
	if dir.Nlink == 0 {
		return nil, ErrNotFound
	}
	if dir.Type != TypeDir {
		return nil, ErrNotDir
	}
	if !permitted(id, dir, mayExec) {
		return nil, ErrPermission
	}
	return dir, nil
}

// followLink resolves the target of symlink ln (in directory dir) one
// level: a relative target from dir, an absolute one from the root. A
// target that is itself a symlink gives ELOOP. The target's parent and
// object are locked as resolve does with locks.
func (m *MDT) followLink(id *Identity, dir *inode, ln *inode, ls *lockSet) (resolved, error) {
	o := resolveOpts{locks: ls}
	if !strings.HasPrefix(ln.Target, "/") {
		o.from = dir.FID
	}
	r, err := m.resolve(id, ln.Target, o)
	if err != nil {
		return r, err
	}
	if r.obj != nil && r.obj.Type == TypeLnk {
		return r, ErrLoop
	}
	return r, nil
}
