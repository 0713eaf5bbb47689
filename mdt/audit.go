package mdt

import (
	"context"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// This file holds the two audit features Lustre lacks: DENY records for
// namespace operations refused for permission, and the access-record dedup
// window (changelog_dedup_window).

// denyKey identifies repeats of one refused operation for DENY's rate
// limit: the operation, where it was aimed and who tried it.
type denyKey struct {
	op       changelog.Type
	tfid     fid.FID
	pfid     fid.FID
	name     string
	uid, gid uint32
}

// accessKey identifies identical access records for the dedup window: same
// type, target (object, parent and name, xattr name), identity (uid, gid,
// NID) and flags.
type accessKey struct {
	typ        changelog.Type
	tfid, pfid fid.FID
	name       string
	xattr      string
	uid, gid   uint64
	nid        string
	flags      uint16
}

func accessKeyOf(r *changelog.Record) accessKey {
	return accessKey{typ: r.Type, tfid: r.TFID, pfid: r.PFID, name: r.Name, xattr: r.XattrName,
		uid: r.UID, gid: r.GID, nid: r.NID, flags: r.Flags & changelog.FlagMask}
}

// dedupTypes are the access record types the dedup window applies to.
var dedupTypes = changelog.MaskOf(changelog.CLOpen, changelog.CLGetxattr, changelog.CLDeniedOpen, changelog.CLDenied)

// dedupDue reports whether access record r is due under the dedup window:
// with a window of 0 (the default) always; otherwise only if no identical
// record was stored within the window before now. A suppressed record is
// counted (changelog_dedup_suppressed). Call dedupNote once r is stored.
func (m *MDT) dedupDue(r *changelog.Record) bool {
	w := time.Duration(m.dedupWindow.Load()) * time.Second
	if w == 0 || !dedupTypes.Has(r.Type) {
		return true
	}
	last, ok := m.dedupSeen.Get(accessKeyOf(r))
	if ok && m.opts.Clock().Before(last.Add(w)) {
		m.dedupSuppressed.Add(1)
		return false
	}
	return true
}

// dedupNote starts a window for each stored access record: identical ones
// within the window after it are suppressed. Suppressed records do not
// extend a window.
func (m *MDT) dedupNote(recs []*changelog.Record) {
	if m.dedupWindow.Load() == 0 {
		return
	}
	now := m.opts.Clock()
	for _, r := range recs {
		if dedupTypes.Has(r.Type) {
			m.dedupSeen.Add(accessKeyOf(r), now)
		}
	}
}

// DedupSuppressed returns how many access records the dedup window
// suppressed since the MDT was opened (changelog_dedup_suppressed).
func (m *MDT) DedupSuppressed() uint64 { return m.dedupSuppressed.Load() }

// parseDedupWindow parses changelog_dedup_window: seconds as an unsigned
// int in any C base; 0 turns the window off.
func parseDedupWindow(v string) (uint32, error) {
	n, err := store.ParseUint("changelog_dedup_window", v, 0, 32)
	return uint32(n), err
}

// loadDedupWindow reads the persisted changelog_dedup_window (default 0).
func (m *MDT) loadDedupWindow() error {
	v, ok, err := m.getMeta(metaDedupWindow)
	if err != nil || !ok {
		return err
	}
	n, err := strconv.ParseUint(string(v), 10, 32)
	if err != nil {
		return &PathError{Op: "open", Path: "changelog_dedup_window", Err: ErrCorrupt}
	}
	m.dedupWindow.Store(uint32(n))
	return nil
}

// denial describes an operation for deny: its record type and where it
// was aimed.
type denial struct {
	op    changelog.Type
	path  string  // the entry the operation names
	src   string  // rename: the source entry; link: the object linked
	xattr string  // setxattr/removexattr: the attribute name
	fid   fid.FID // an operation by FID (path empty): the object
}

// deny records a DENY for an operation that failed with EACCES or EPERM,
// if DENY is wanted from this caller (effective mask, nodemap audit_mode)
// and due (at most one per operation, target and identity per
// changelog_deniednext seconds, as NOPEN; then the dedup window). The
// record has t= the object the operation named (zero for a create), p= its
// directory and the entry name; for a rename the source as s=, sp= and its
// name; for an xattr change x=; flags DenyFlags(op, errno). It returns err
// unchanged: the operation fails with its errno whether or not a record is
// written; a DENY that cannot be stored is logged.
//
// It runs after the operation released its locks and reads the names as
// root, so an object the caller may not see is still named.
func (m *MDT) deny(ctx context.Context, c Cred, d denial, err error) error {
	errno := Errno(err)
	if errno != syscall.EACCES && errno != syscall.EPERM || !m.log.Enabled(changelog.CLDenied) {
		return err
	}
	cl, berr := m.begin(context.WithoutCancel(ctx), c)
	if berr != nil || !m.wants(cl, changelog.CLDenied) {
		return err
	}
	m.mu.RLock()
	tfid, pfid, name := m.namedEntry(d.path)
	if !d.fid.IsZero() {
		tfid, pfid, name = d.fid, fid.Zero, ""
	}
	var sfid, spfid fid.FID
	var sname string
	if d.op == changelog.CLRename {
		sfid, spfid, sname = m.namedEntry(d.src)
	} else if d.op == changelog.CLHardlink {
		tfid, _, _ = m.namedEntry(d.src)
	}
	m.mu.RUnlock()

	key := denyKey{op: d.op, tfid: tfid, pfid: pfid, name: name, uid: cl.id.UID, gid: cl.id.GID}
	now := m.opts.Clock()
	if next, ok := m.denyNext.Get(key); ok && now.Before(next) {
		return err
	}
	t := m.newTxn(cl)
	defer t.close()
	rec := t.record(changelog.CLDenied, tfid, pfid, name)
	rec.Flags = changelog.DenyFlags(d.op, uint16(errno))
	if !sfid.IsZero() {
		rec.SFID, rec.SPFID, rec.SName = sfid, spfid, sname
	}
	if d.xattr != "" {
		rec.ExtraFlags |= changelog.ExtraXattr
		rec.XattrName = d.xattr
	}
	if !m.dedupDue(rec) {
		return err
	}
	pend, aerr := t.apply()
	if aerr == nil {
		m.denyNext.Add(key, now.Add(time.Duration(m.deniedNext.Load())*time.Second))
		aerr = m.wait(pend)
	}
	if aerr != nil {
		m.opts.Logger.Warn("deny_not_recorded", "device", m.dev, "path", d.path, "err", aerr)
	}
	return err
}

// namedEntry returns, read as root, the object at p (zero if there is
// none), its directory (zero if that cannot be found) and the entry name.
// Needs m.mu for reading.
func (m *MDT) namedEntry(p string) (obj, dir fid.FID, name string) {
	root := Identity{}
	r, err := m.resolve(&root, p, resolveOpts{})
	if err != nil {
		return fid.Zero, fid.Zero, path.Base(strings.TrimRight(p, "/"))
	}
	if r.obj != nil {
		obj = r.obj.FID
	}
	if r.parent != nil {
		dir = r.parent.FID
	}
	return obj, dir, r.name
}
