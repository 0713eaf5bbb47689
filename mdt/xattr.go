package mdt

import (
	"context"
	"fmt"
	"strings"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// Setxattr flags.
const (
	XattrCreate  = 1 // fail with EEXIST if the xattr exists
	XattrReplace = 2 // fail with ENODATA if it does not
)

// Xattr limits (XATTR_NAME_MAX, XATTR_SIZE_MAX).
const (
	MaxXattrName  = 255
	MaxXattrValue = 65536
)

// xattrClass is what an xattr name means for permissions.
type xattrClass int

const (
	xcUser     xattrClass = iota // user.*: file permissions, reg/dir only
	xcTrusted                    // trusted.*, lustre.*: root only
	xcSecurity                   // security.*: read by all, written by root
	xcACL                        // system.posix_acl_*: read by all, written by the owner
)

func classifyXattr(name string) (xattrClass, error) {
	switch {
	case len(name) > MaxXattrName:
		return 0, fmt.Errorf("%w: xattr name of %d bytes", ErrRange, len(name))
	case strings.HasPrefix(name, "user.") && len(name) > len("user."):
		return xcUser, nil
	case strings.HasPrefix(name, "trusted.") && len(name) > len("trusted."),
		name == "lustre.lov", strings.HasPrefix(name, "lustre.lov."):
		return xcTrusted, nil
	case strings.HasPrefix(name, "security.") && len(name) > len("security."):
		return xcSecurity, nil
	case name == "system.posix_acl_access", name == "system.posix_acl_default":
		return xcACL, nil
	}
	return 0, fmt.Errorf("%w: xattr name '%s'", ErrNotSupported, name)
}

// xattrRecordType is the record a change of xattr name gives, or false for
// none (mdd_xattr_changelog_type).
func xattrRecordType(name string) (changelog.Type, bool) {
	switch {
	case name == "lustre.lov", name == "trusted.lov", strings.HasPrefix(name, "lustre.lov."):
		return changelog.CLLayout, true
	case name == "trusted.hsm":
		return changelog.CLHSM, true
	case name == "trusted.som":
		return 0, false
	case strings.HasPrefix(name, "user."), strings.HasPrefix(name, "trusted."),
		strings.HasPrefix(name, "security."),
		name == "system.posix_acl_access", name == "system.posix_acl_default":
		return changelog.CLXattr, true
	}
	return 0, false
}

// xattrAccess checks whether id may read (write=false) or change xattr
// class c of obj.
func xattrAccess(id *Identity, obj *inode, c xattrClass, write bool) error {
	switch c {
	case xcUser:
		if obj.Type != TypeReg && obj.Type != TypeDir {
			return ErrNotPermitted
		}
		want := uint32(mayRead)
		if write {
			want = mayWrite
		}
		if !permitted(id, obj, want) {
			return ErrPermission
		}
	case xcTrusted:
		if id.UID != 0 {
			return ErrNotPermitted
		}
	case xcSecurity:
		if write && id.UID != 0 {
			return ErrNotPermitted
		}
	case xcACL:
		if write && id.UID != 0 && id.UID != obj.UID {
			return ErrNotPermitted
		}
	}
	return nil
}

func (m *MDT) getXattr(f fid.FID, name string) (v []byte, ok bool, err error) {
	ok, err = get(m.db, xattrKey(f, name), func(b []byte) error {
		v = append([]byte{}, b...)
		return nil
	})
	return v, ok, err
}

// Setxattr sets xattr name of the object at p (not following a final
// symlink). Records: XATTR x=name for user., trusted., security. and POSIX
// ACL names; LYOUT for trusted.lov/lustre.lov; HSM for trusted.hsm;
// nothing for trusted.som.
func (m *MDT) Setxattr(ctx context.Context, c Cred, p, name string, value []byte, flags int) error {
	return m.deny(ctx, c, denial{op: changelog.CLXattr, path: p, xattr: name}, pathErr("setxattr", p, m.changeXattr(ctx, c, p, fid.Zero, name, value, flags, false)))
}

// Removexattr removes xattr name (ENODATA if missing). Removing a name
// whose change is recorded gives XATTR x=name.
func (m *MDT) Removexattr(ctx context.Context, c Cred, p, name string) error {
	return m.deny(ctx, c, denial{op: changelog.CLXattr, path: p, xattr: name}, pathErr("removexattr", p, m.changeXattr(ctx, c, p, fid.Zero, name, nil, 0, true)))
}

// SetxattrFID is Setxattr of object f by FID (fsetxattr on an open file,
// possibly unlinked).
func (m *MDT) SetxattrFID(ctx context.Context, c Cred, f fid.FID, name string, value []byte, flags int) error {
	if f.IsZero() {
		return pathErr("setxattr", f.String(), ErrInvalid)
	}
	return m.deny(ctx, c, denial{op: changelog.CLXattr, fid: f, xattr: name}, pathErr("setxattr", f.String(), m.changeXattr(ctx, c, "", f, name, value, flags, false)))
}

// RemovexattrFID is Removexattr of object f by FID.
func (m *MDT) RemovexattrFID(ctx context.Context, c Cred, f fid.FID, name string) error {
	if f.IsZero() {
		return pathErr("removexattr", f.String(), ErrInvalid)
	}
	return m.deny(ctx, c, denial{op: changelog.CLXattr, fid: f, xattr: name}, pathErr("removexattr", f.String(), m.changeXattr(ctx, c, "", f, name, nil, 0, true)))
}

func (m *MDT) changeXattr(ctx context.Context, c Cred, p string, f fid.FID, name string, value []byte, flags int, remove bool) error {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return err
	}
	class, err := classifyXattr(name)
	if err != nil {
		return err
	}
	if flags&^(XattrCreate|XattrReplace) != 0 || flags == XattrCreate|XattrReplace {
		return fmt.Errorf("%w: setxattr flags %#x", ErrInvalid, flags)
	}
	if len(value) > MaxXattrValue {
		return fmt.Errorf("%w: xattr value of %d bytes", ErrTooBig, len(value))
	}
	var pend *store.Pending
	err = m.update(func(ls *lockSet) (err error) {
		pend, err = m.changeXattrLocked(cl, ls, p, f, name, class, value, flags, remove)
		return err
	})
	if err != nil {
		return err
	}
	return m.wait(pend)
}

func (m *MDT) changeXattrLocked(cl *caller, ls *lockSet, p string, f fid.FID, name string, class xattrClass, value []byte, flags int, remove bool) (*store.Pending, error) {
	r, err := m.resolve(&cl.id, p, resolveOpts{locks: ls, existing: true, fid: f})
	if err != nil {
		return nil, err
	}
	if err := xattrAccess(&cl.id, r.obj, class, true); err != nil {
		return nil, err
	}
	_, exists, err := m.getXattr(r.obj.FID, name)
	if err != nil {
		return nil, err
	}
	switch {
	case remove && !exists, flags == XattrReplace && !exists:
		return nil, fmt.Errorf("%w: xattr '%s'", ErrNoData, name)
	case flags == XattrCreate && exists:
		return nil, fmt.Errorf("%w: xattr '%s'", ErrExists, name)
	}
	t := m.newTxn(cl)
	defer t.close()
	if remove {
		t.del(xattrKey(r.obj.FID, name))
	} else {
		t.set(xattrKey(r.obj.FID, name), value)
	}
	r.obj.Ctime = t.now
	t.putInode(r.obj)
	if typ, ok := xattrRecordType(name); ok {
		if remove {
			typ = changelog.CLXattr
		}
		if rec := t.record(typ, r.obj.FID, fid.Zero, ""); rec != nil && typ == changelog.CLXattr {
			rec.XattrName = name
		} else if rec != nil {
			rec.ExtraFlags &^= changelog.ExtraXattr
		}
	}
	return t.apply()
}

// Getxattr returns the value of xattr name (ENODATA if missing). A read of
// a user.* or POSIX ACL xattr that returns data records GXATR x=name; if
// that record cannot be stored the read fails.
func (m *MDT) Getxattr(ctx context.Context, c Cred, p, name string) ([]byte, error) {
	v, _, err := m.getxattr(ctx, c, p, fid.Zero, name, -1)
	return v, pathErr("getxattr", p, err)
}

// GetxattrSize is Getxattr with getxattr(2)'s buffer size: size 0 returns
// only the value's length (no value, no record: Lustre records only reads
// that return data); a value longer than size is ERANGE (no record); size
// < 0 is Getxattr. It returns the value (if any) and its length.
func (m *MDT) GetxattrSize(ctx context.Context, c Cred, p, name string, size int) ([]byte, int, error) {
	v, n, err := m.getxattr(ctx, c, p, fid.Zero, name, size)
	return v, n, pathErr("getxattr", p, err)
}

// GetxattrFID is GetxattrSize of object f by FID (fgetxattr on an open
// file, possibly unlinked).
func (m *MDT) GetxattrFID(ctx context.Context, c Cred, f fid.FID, name string, size int) ([]byte, int, error) {
	if f.IsZero() {
		return nil, 0, pathErr("getxattr", f.String(), ErrInvalid)
	}
	v, n, err := m.getxattr(ctx, c, "", f, name, size)
	return v, n, pathErr("getxattr", f.String(), err)
}

func (m *MDT) getxattr(ctx context.Context, c Cred, p string, f fid.FID, name string, size int) ([]byte, int, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	class, err := classifyXattr(name)
	if err != nil {
		return nil, 0, err
	}
	audit := (class == xcUser || class == xcACL) && m.wants(cl, changelog.CLGetxattr)
	// fits reports whether v is returned (and recorded) or only its
	// length (size 0) or ERANGE.
	fits := func(v []byte) (bool, error) {
		switch {
		case size < 0:
			return true, nil
		case len(v) > size && size > 0:
			return false, fmt.Errorf("%w: xattr '%s' of %d bytes, buffer of %d", ErrRange, name, len(v), size)
		}
		return size > 0, nil
	}
	if !audit || size == 0 {
		m.mu.RLock()
		defer m.mu.RUnlock()
		r, err := m.resolve(&cl.id, p, resolveOpts{existing: true, fid: f})
		if err != nil {
			return nil, 0, err
		}
		v, err := m.readXattr(&cl.id, r.obj, class, name)
		if err != nil {
			return nil, 0, err
		}
		if ok, err := fits(v); !ok {
			return nil, len(v), err
		}
		return v, len(v), nil
	}
	var (
		v    []byte
		pend *store.Pending
	)
	err = m.update(func(ls *lockSet) error {
		r, err := m.resolve(&cl.id, p, resolveOpts{locks: ls, existing: true, fid: f})
		if err != nil {
			return err
		}
		if v, err = m.readXattr(&cl.id, r.obj, class, name); err != nil {
			return err
		}
		if _, err := fits(v); err != nil {
			return err // ERANGE: no data returned, nothing recorded
		}
		t := m.newTxn(cl)
		defer t.close()
		if rec := t.record(changelog.CLGetxattr, r.obj.FID, fid.Zero, ""); rec != nil {
			rec.XattrName = name
			if !m.dedupDue(rec) {
				t.unrecord(rec)
			}
		}
		pend, err = t.apply()
		return err
	})
	if err != nil {
		return nil, len(v), err
	}
	if err := m.wait(pend); err != nil {
		return nil, 0, err
	}
	return v, len(v), nil
}

// readXattr returns xattr name of obj if id may read it.
func (m *MDT) readXattr(id *Identity, obj *inode, class xattrClass, name string) ([]byte, error) {
	if err := xattrAccess(id, obj, class, false); err != nil {
		return nil, err
	}
	v, ok, err := m.getXattr(obj.FID, name)
	if err == nil && !ok {
		err = fmt.Errorf("%w: xattr '%s'", ErrNoData, name)
	}
	return v, err
}

// Listxattr lists the xattr names of the object at p; trusted.* names are
// shown to root only.
func (m *MDT) Listxattr(ctx context.Context, c Cred, p string) ([]string, error) {
	return m.listxattr(ctx, c, p, fid.Zero)
}

// ListxattrFID is Listxattr of object f by FID.
func (m *MDT) ListxattrFID(ctx context.Context, c Cred, f fid.FID) ([]string, error) {
	if f.IsZero() {
		return nil, pathErr("listxattr", f.String(), ErrInvalid)
	}
	return m.listxattr(ctx, c, f.String(), f)
}

func (m *MDT) listxattr(ctx context.Context, c Cred, p string, f fid.FID) ([]string, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return nil, pathErr("listxattr", p, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.resolve(&cl.id, p, resolveOpts{existing: true, fid: f})
	if err != nil {
		return nil, pathErr("listxattr", p, err)
	}
	out := []string{}
	lo, hi := xattrRange(r.obj.FID)
	err = m.scan(lo, hi, func(k, _ []byte) error {
		n := xattrName(k)
		if c, err := classifyXattr(n); err == nil && c == xcTrusted && cl.id.UID != 0 {
			return nil
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, pathErr("listxattr", p, err)
	}
	return out, nil
}
