package mdt

import (
	"context"
	"fmt"
	"math"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// Attribute-valid bits (LA_*), whose low 12 bits are the flags of setattr
// records.
const (
	validAtime uint32 = 0x1
	validMtime uint32 = 0x2
	validCtime uint32 = 0x4
	validSize  uint32 = 0x8
	validMode  uint32 = 0x10
	validUID   uint32 = 0x20
	validGID   uint32 = 0x40

	validTimes = validAtime | validMtime | validCtime
)

// Setattr changes attributes of the object at p (a final symlink is not
// followed, like lchown/utimensat(AT_SYMLINK_NOFOLLOW)). Rules: mode by
// the owner or root (EPERM); uid by root only; gid by root, or by the
// owner to a group the owner is in; size needs write permission and a
// regular file (EISDIR for directories, EINVAL otherwise); times by the
// owner, root or anyone with write permission. As the kernel does, a size
// change also sets mtime and ctime, and any change sets ctime.
//
// At most one record: TRUNC, SATTR, MTIME, CTIME, ATIME candidates, ANDed
// with the effective mask, lowest type wins; MTIME/CTIME/ATIME are skipped
// for an object that already had a record in the current epoch. Flags are
// the attribute-valid bits; p= is the parent in p, and only for a regular
// file whose mtime changes (mdt_reint_setattr).
func (m *MDT) Setattr(ctx context.Context, c Cred, p string, s SetattrArgs) (Attr, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return Attr{}, pathErr("setattr", p, err)
	}
	if err := s.check(); err != nil {
		return Attr{}, pathErr("setattr", p, err)
	}
	var (
		a    Attr
		pend *store.Pending
	)
	err = m.update(func(ls *lockSet) (err error) {
		a, pend, err = m.setattrLocked(cl, ls, p, s)
		return err
	})
	if err == nil {
		err = m.wait(pend)
	}
	if err != nil {
		return Attr{}, m.denySetattr(ctx, c, s, denial{path: p}, pathErr("setattr", p, err))
	}
	return a, nil
}

// check refuses values no file can take: a size beyond off_t's range,
// and the uid or gid (uid_t)-1, which chown(2) reads as "leave as is".
func (s SetattrArgs) check() error {
	if s.Size != nil && *s.Size > math.MaxInt64 {
		return fmt.Errorf("%w: size %d is beyond the largest file size (%d)", ErrInvalid, *s.Size, int64(math.MaxInt64))
	}
	if s.UID != nil && *s.UID == math.MaxUint32 {
		return fmt.Errorf("%w: uid %d is (uid_t)-1, not an owner", ErrInvalid, *s.UID)
	}
	if s.GID != nil && *s.GID == math.MaxUint32 {
		return fmt.Errorf("%w: gid %d is (gid_t)-1, not a group", ErrInvalid, *s.GID)
	}
	return nil
}

// denySetattr records the DENY of a setattr (by path or by FID, as d
// names it) through deny: TRUNC when it changed the size, SATTR otherwise.
func (m *MDT) denySetattr(ctx context.Context, c Cred, s SetattrArgs, d denial, err error) error {
	d.op = changelog.CLSetattr
	if s.Size != nil {
		d.op = changelog.CLTrunc
	}
	return m.deny(ctx, c, d, err)
}

func (m *MDT) setattrLocked(cl *caller, ls *lockSet, p string, s SetattrArgs) (Attr, *store.Pending, error) {
	r, err := m.resolve(&cl.id, p, resolveOpts{locks: ls, existing: true})
	if err != nil {
		return Attr{}, nil, err
	}
	return m.setattrObjLocked(cl, ls, r.parent, r.obj, s, false)
}

// setattrObjLocked checks and applies s to obj (parent: for p=, may be
// nil). writer says the caller holds obj open for writing: a size change
// needs no write permission then.
func (m *MDT) setattrObjLocked(cl *caller, ls *lockSet, parent, obj *inode, s SetattrArgs, writer bool) (Attr, *store.Pending, error) {
	id := &cl.id
	if obj.Type == TypeDir && (s.Mode != nil || s.UID != nil || s.GID != nil) {
		// Path walks check search permission on directories without
		// their stripes: changing it runs alone.
		if err := ls.exclusiveNeeded(); err != nil {
			return Attr{}, nil, err
		}
	}
	owner := id.UID == 0 || id.UID == obj.UID
	if s.Mode != nil && !owner {
		return Attr{}, nil, ErrNotPermitted
	}
	if s.UID != nil && id.UID != 0 && *s.UID != obj.UID {
		return Attr{}, nil, ErrNotPermitted
	}
	if s.GID != nil && id.UID != 0 && *s.GID != obj.GID && (id.UID != obj.UID || !id.inGroup(*s.GID)) {
		return Attr{}, nil, ErrNotPermitted
	}
	if s.Size != nil {
		switch {
		case obj.Type == TypeDir:
			return Attr{}, nil, ErrIsDir
		case obj.Type != TypeReg:
			return Attr{}, nil, ErrInvalid
		case !writer && !permitted(id, obj, mayWrite):
			return Attr{}, nil, ErrPermission
		}
	}
	if (s.Atime != nil || s.Mtime != nil || s.Ctime != nil) && !owner && !permitted(id, obj, mayWrite) {
		return Attr{}, nil, ErrNotPermitted
	}
	t := m.newTxn(cl)
	defer t.close()
	if !t.setattr(parent, obj, s) {
		return obj.attr(), nil, nil
	}
	pend, err := t.apply()
	if err != nil {
		return Attr{}, nil, err
	}
	return obj.attr(), pend, nil
}

// setattr applies s to obj in the batch and adds the record due. It
// reports false if s changes nothing at all.
func (t *txn) setattr(parent *inode, obj *inode, s SetattrArgs) bool {
	var valid uint32
	if s.Mode != nil {
		valid |= validMode
		mode := *s.Mode & 07777
		if t.cl.id.UID != 0 && obj.Type != TypeDir && !t.cl.id.inGroup(obj.GID) {
			mode &^= 02000 // as chmod(2): setgid needs the file's group
		}
		obj.Mode = mode
	}
	if s.UID != nil {
		valid |= validUID
		obj.UID = *s.UID
	}
	if s.GID != nil {
		valid |= validGID
		obj.GID = *s.GID
	}
	if s.Size != nil {
		valid |= validSize | validMtime | validCtime
		if err := t.truncateData(obj.FID, obj.Size, *s.Size); err != nil && t.err == nil {
			t.err = err
		}
		obj.Size = *s.Size
		obj.Mtime = t.now
	}
	if s.Atime != nil {
		valid |= validAtime
		obj.Atime = s.Atime.UnixNano()
	}
	if s.Mtime != nil {
		valid |= validMtime
		obj.Mtime = s.Mtime.UnixNano()
	}
	if valid == 0 && s.Ctime == nil {
		return false
	}
	valid |= validCtime
	obj.Ctime = t.now
	if s.Ctime != nil {
		obj.Ctime = s.Ctime.UnixNano()
	}
	t.putInode(obj)

	if !t.cl.id.Audit {
		return true
	}
	var cand changelog.Mask
	if valid&validSize != 0 {
		cand |= changelog.MaskOf(changelog.CLTrunc)
	}
	if valid&^validTimes != 0 {
		cand |= changelog.MaskOf(changelog.CLSetattr)
	}
	if valid&validMtime != 0 {
		cand |= changelog.MaskOf(changelog.CLMtime)
	}
	if valid&validCtime != 0 {
		cand |= changelog.MaskOf(changelog.CLCtime)
	}
	if valid&validAtime != 0 {
		cand |= changelog.MaskOf(changelog.CLAtime)
	}
	types := (cand & t.m.log.EffectiveMask()).Types()
	if len(types) == 0 {
		return true
	}
	typ := types[0]
	if typ == changelog.CLMtime || typ == changelog.CLCtime || typ == changelog.CLAtime {
		if ep, ok := t.m.timeSeen.Get(obj.FID); ok && ep == t.m.epoch.Load() {
			return true
		}
	}
	// As mdt_reint_setattr: the parent FID goes with the record only for
	// a regular file whose mtime is set (a chmod's SATTR has no p=), and
	// it is the directory of the file's first link (mdt_attr_get_pfid
	// reads link #0), whichever link the path named.
	var pfid fid.FID
	if parent != nil && obj.Type == TypeReg && valid&validMtime != 0 {
		pfid = parent.FID
		if obj.Nlink > 1 {
			if fp, err := t.m.firstParent(obj.FID); err == nil && fp != nil {
				pfid = fp.FID
			}
		}
	}
	if rec := t.record(typ, obj.FID, pfid, ""); rec != nil {
		rec.Flags = uint16(valid) & changelog.FlagMask
	}
	return true
}
