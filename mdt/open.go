package mdt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// errNopen is the EACCES of an open refused by the object's permissions,
// which NOPEN audits (other refusals of an open are DENY's).
var errNopen error = &nopenError{}

type nopenError struct{}

func (*nopenError) Error() string { return ErrPermission.Error() }
func (*nopenError) Unwrap() error { return ErrPermission }

// openKey identifies openers for OPEN/CLOSE dedup and the denied-open rate
// limit: one object, one mapped uid/gid, one mode ("r--", "rw-", "--x").
type openKey struct {
	fid      fid.FID
	uid, gid uint32
	mode     string
}

// handle is one open file.
type handle struct {
	key     openKey
	flags   uint32
	counted bool // counted in omu.openers (OPEN was in the mask at open)
	wrote   bool // data was written through it (MTIME at close); guarded by omu
}

// openCount returns the number of open handles of f.
func (m *MDT) openCount(f fid.FID) int {
	m.omu.Lock()
	defer m.omu.Unlock()
	return m.omu.perFID[f]
}

// OpenHandles returns the number of open handles.
func (m *MDT) OpenHandles() int {
	m.omu.Lock()
	defer m.omu.Unlock()
	return len(m.omu.handles)
}

const accessBits = changelog.OpenRead | changelog.OpenWrite | changelog.OpenExec

func isWriteOpen(flags uint32) bool {
	return flags&(changelog.OpenWrite|changelog.OpenTrunc|changelog.OpenAppend) != 0
}

// Open opens the object at p with store.Open* flags and returns a
// handle for CloseFile. Without any of READ/WRITE/EXEC the open is
// read-only (READ is added). CREATE creates a missing regular file with
// mode (CREAT and OPEN in one batch); with EXCL an existing entry is
// EEXIST. A final symlink is followed one level (its target must exist and
// not be a symlink: ELOOP); intermediate symlinks are ENOTDIR. TRUNC on an
// existing regular file sets its size to 0 with setattr's record rules.
//
// Audit (reference section 5): OPEN is recorded once per (object, uid,
// gid, mode) while such an open is outstanding and OPEN is enabled; a
// permission failure records NOPEN at most once per key per
// changelog_deniednext seconds and still fails with EACCES. Unlike Lustre,
// a denied open leaves no opener entry, so a later successful open of the
// same key records OPEN.
func (m *MDT) Open(ctx context.Context, c Cred, p string, flags uint32, mode uint32) (uint64, Attr, error) {
	if flags&accessBits == 0 {
		flags |= changelog.OpenRead
	}
	cl, err := m.begin(ctx, c)
	if err != nil {
		return 0, Attr{}, pathErr("open", p, err)
	}
	if err := m.reserveHandle(); err != nil {
		return 0, Attr{}, pathErr("open", p, err)
	}
	var (
		h    uint64
		a    Attr
		pend *store.Pending
	)
	err = m.update(func(ls *lockSet) (err error) {
		h, a, pend, err = m.openLocked(cl, ls, p, flags, mode)
		return err
	})
	if err != nil {
		m.unreserveHandle() // a successful open turned it into its handle
	}
	if werr := m.wait(pend); werr != nil && err == nil {
		// Not durable: the open did not happen.
		m.dropHandle(h)
		err = werr
	}
	if err != nil {
		err = pathErr("open", p, err)
		if !errors.Is(err, errNopen) { // NOPEN audits the object's refusal
			op := changelog.CLOpen
			if flags&changelog.OpenCreate != 0 {
				op = changelog.CLCreate
			}
			err = m.deny(ctx, c, denial{op: op, path: p}, err)
		}
		return 0, Attr{}, err
	}
	return h, a, nil
}

func (m *MDT) openLocked(cl *caller, ls *lockSet, p string, flags, mode uint32) (uint64, Attr, *store.Pending, error) {
	r, err := m.resolve(&cl.id, p, resolveOpts{locks: ls})
	if err != nil {
		return 0, Attr{}, nil, err
	}
	t := m.newTxn(cl)
	defer t.close()
	obj := r.obj
	created := false
	if obj == nil {
		if flags&changelog.OpenCreate == 0 {
			return 0, Attr{}, nil, ErrNotFound
		}
		if !permitted(&cl.id, r.parent, mayWrite|mayExec) {
			return 0, Attr{}, nil, ErrPermission
		}
		if obj, err = t.create(r.parent, r.name, TypeReg, mode, 0, ""); err != nil {
			return 0, Attr{}, nil, err
		}
		t.record(changelog.CLCreate, obj.FID, r.parent.FID, r.name)
		created = true
	} else {
		if flags&changelog.OpenCreate != 0 && flags&changelog.OpenExcl != 0 {
			return 0, Attr{}, nil, ErrExists
		}
		if obj.Type == TypeLnk {
			tr, err := m.followLink(&cl.id, r.parent, obj, ls)
			if err != nil {
				return 0, Attr{}, nil, err
			}
			if tr.obj == nil {
				return 0, Attr{}, nil, ErrNotFound
			}
			r, obj = tr, tr.obj
		}
		if pend, err := m.mayOpenLocked(cl, obj, flags); err != nil {
			return 0, Attr{}, pend, err
		}
	}
	return m.addHandleLocked(cl, t, r.parent, obj, flags, created, false)
}

// mayOpenLocked checks that cl may open the existing object obj with
// flags: EISDIR for a directory opened for writing, errNopen (with the
// NOPEN record due, whose batch it returns) when the object's permissions
// refuse the access asked for.
func (m *MDT) mayOpenLocked(cl *caller, obj *inode, flags uint32) (*store.Pending, error) {
	if obj.Type == TypeDir && flags&(changelog.OpenWrite|changelog.OpenTrunc|changelog.OpenAppend) != 0 {
		return nil, ErrIsDir
	}
	var want uint32
	if flags&changelog.OpenRead != 0 {
		want |= mayRead
	}
	if isWriteOpen(flags) {
		want |= mayWrite
	}
	if flags&changelog.OpenExec != 0 {
		want |= mayExec
	}
	if !permitted(&cl.id, obj, want) || flags&changelog.OpenExec != 0 && obj.Type != TypeReg {
		return m.deniedLocked(cl, obj.FID, flags), errNopen
	}
	return nil, nil
}

// reserveHandle takes a slot below MaxOpenHandles for an open under way,
// so that concurrent opens cannot pass the cap; a successful open turns it
// into its handle, a failed one gives it back (unreserveHandle).
func (m *MDT) reserveHandle() error {
	m.omu.Lock()
	defer m.omu.Unlock()
	if len(m.omu.handles)+m.omu.reserved >= m.opts.MaxOpenHandles {
		return ErrTooManyOpen
	}
	if m.omu.next == 0 {
		// The first handle of this run: the start counter is stored (and
		// synced) now rather than at Open, so a start that opens nothing
		// writes nothing (and the next Open has no WAL to replay).
		boot, err := m.nextBoot()
		if err != nil {
			return err
		}
		m.omu.next = boot << handleBits
	}
	m.omu.reserved++
	return nil
}

func (m *MDT) unreserveHandle() {
	m.omu.Lock()
	m.omu.reserved--
	m.omu.Unlock()
}

// addHandleLocked finishes an open of obj whose checks passed: the OPEN
// record due (none for a reopen, whose original open was recorded), the
// truncation of TRUNC (not for a reopen), the batch t, and the handle.
// parent is the directory the open came through (nil when by FID).
func (m *MDT) addHandleLocked(cl *caller, t *txn, parent, obj *inode, flags uint32, created, reopen bool) (uint64, Attr, *store.Pending, error) {
	key := openKey{fid: obj.FID, uid: cl.id.UID, gid: cl.id.GID, mode: changelog.ModeString(flags)}
	counted := m.wants(cl, changelog.CLOpen)
	quiet := false // the dedup window suppressed this key's OPEN
	if counted && !reopen {
		m.omu.Lock()
		first := m.omu.openers[key] == 0
		m.omu.Unlock()
		if first {
			if rec := t.record(changelog.CLOpen, obj.FID, fid.Zero, ""); rec != nil {
				rec.Flags = uint16(flags) & changelog.FlagMask
				rec.OpenFlags = flags
				if !m.dedupDue(rec) {
					t.unrecord(rec)
					quiet = true
				}
			}
		}
	}
	if flags&changelog.OpenTrunc != 0 && obj.Type == TypeReg && !created && !reopen {
		size := uint64(0)
		t.setattr(parent, obj, SetattrArgs{Size: &size})
	}
	pend, err := t.apply()
	if err != nil {
		return 0, Attr{}, nil, err
	}
	m.omu.Lock()
	m.omu.reserved--
	m.omu.next++
	h := m.omu.next
	m.omu.handles[h] = &handle{key: key, flags: flags, counted: counted}
	m.omu.perFID[obj.FID]++
	if counted {
		if m.omu.openers[key] == 0 && quiet {
			m.omu.quiet[key] = true
		}
		m.omu.openers[key]++
	}
	m.omu.Unlock()
	return h, obj.attr(), pend, nil
}

// deniedLocked records NOPEN for a denied open if due (rate limit per key
// and changelog_deniednext) and returns the pending batch, if any.
func (m *MDT) deniedLocked(cl *caller, f fid.FID, flags uint32) *store.Pending {
	if !m.wants(cl, changelog.CLDeniedOpen) {
		return nil
	}
	key := openKey{fid: f, uid: cl.id.UID, gid: cl.id.GID, mode: changelog.ModeString(flags)}
	// As mdd_open: a recorded denial sets the key's "next allowed" time
	// to now + changelog_deniednext (the value at that moment); a denial
	// before that time is not recorded and does not move it.
	now := m.opts.Clock()
	m.omu.Lock()
	next, seen := m.omu.denied.Get(key)
	m.omu.Unlock()
	if seen && now.Before(next) {
		return nil
	}
	t := m.newTxn(cl)
	defer t.close()
	rec := t.record(changelog.CLDeniedOpen, f, fid.Zero, "")
	if rec == nil {
		return nil
	}
	rec.Flags = uint16(flags) & changelog.FlagMask
	rec.OpenFlags = flags
	if !m.dedupDue(rec) {
		return nil
	}
	pend, err := t.apply()
	if err != nil {
		// The open fails with EACCES anyway; a lost NOPEN is logged.
		m.opts.Logger.Warn("nopen_not_recorded", "device", m.dev, "fid", f.String(), "err", err)
		return nil
	}
	dn := time.Duration(m.deniedNext.Load()) * time.Second
	m.omu.Lock()
	m.omu.denied.Add(key, now.Add(dn))
	m.omu.Unlock()
	return pend
}

// dropHandle forgets handle h without records (used when an open's batch
// could not be made durable).
func (m *MDT) dropHandle(h uint64) {
	m.omu.Lock()
	defer m.omu.Unlock()
	hd, ok := m.omu.handles[h]
	if !ok {
		return
	}
	delete(m.omu.handles, h)
	m.releaseLocked(hd)
}

// releaseLocked updates the counters for a closed handle; it reports
// whether this was the last close of its key. Needs omu.
func (m *MDT) releaseLocked(hd *handle) (lastOfKey bool) {
	if n := m.omu.perFID[hd.key.fid] - 1; n > 0 {
		m.omu.perFID[hd.key.fid] = n
	} else {
		delete(m.omu.perFID, hd.key.fid)
	}
	if hd.counted {
		if n := m.omu.openers[hd.key] - 1; n > 0 {
			m.omu.openers[hd.key] = n
		} else {
			delete(m.omu.openers, hd.key)
			delete(m.omu.quiet, hd.key)
			lastOfKey = true
		}
	}
	return lastOfKey
}

// CloseFile closes a handle from Open. CLOSE is recorded (flags = low 12
// bits of the open flags, no p=) when OPEN is enabled and this is the last
// close of the handle's key, or, when OPEN is not enabled, for handles
// opened for writing. The last close of an unlinked object removes it. If
// the batch cannot be stored the handle stays open and the error is
// returned. (Named CloseFile because Close closes the MDT.)
func (m *MDT) CloseFile(ctx context.Context, c Cred, h uint64) error {
	name := "handle " + strconv.FormatUint(h, 10)
	cl, err := m.begin(ctx, c)
	if err != nil {
		return pathErr("close", name, err)
	}
	var pend *store.Pending
	err = m.update(func(ls *lockSet) (err error) {
		pend, err = m.closeLocked(cl, ls, h)
		return err
	})
	if err == nil {
		err = m.wait(pend)
	}
	return pathErr("close", name, err)
}

func (m *MDT) closeLocked(cl *caller, ls *lockSet, h uint64) (*store.Pending, error) {
	m.omu.Lock()
	hd, ok := m.omu.handles[h]
	m.omu.Unlock()
	if !ok {
		return nil, ErrBadHandle
	}
	// The object's stripe orders this close with opens, unlinks and
	// other closes of it; the handle is looked up again under it.
	if !ls.need(hd.key.fid) {
		return nil, ls.relock()
	}
	m.omu.Lock()
	hd, ok = m.omu.handles[h]
	var last, lastHandle bool
	if ok {
		// A key whose OPEN the dedup window suppressed closes quietly.
		last = hd.counted && m.omu.openers[hd.key] == 1 && !m.omu.quiet[hd.key]
		lastHandle = m.omu.perFID[hd.key.fid] == 1
	}
	m.omu.Unlock()
	if !ok {
		return nil, ErrBadHandle
	}
	t := m.newTxn(cl)
	defer t.close()
	m.omu.Lock()
	wrote := hd.wrote
	m.omu.Unlock()
	ino, err := m.getInode(hd.key.fid)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err // ErrNotFound: already gone, nothing to drop
	}
	if wrote && ino != nil && ino.Nlink > 0 {
		if err := t.closeTimes(ino); err != nil {
			return nil, err
		}
	}
	if m.wants(cl, changelog.CLClose) {
		var due bool
		if m.log.Enabled(changelog.CLOpen) {
			due = last
		} else {
			due = isWriteOpen(hd.flags)
		}
		if due {
			if rec := t.record(changelog.CLClose, hd.key.fid, fid.Zero, ""); rec != nil {
				rec.Flags = uint16(hd.flags) & changelog.FlagMask
			}
		}
	}
	if lastHandle && ino != nil && ino.Nlink == 0 {
		if err := t.deleteObject(ino.FID); err != nil {
			return nil, err
		}
	}
	pend, err := t.apply()
	if err != nil {
		return nil, err
	}
	m.omu.Lock()
	delete(m.omu.handles, h)
	m.releaseLocked(hd)
	m.omu.Unlock()
	return pend, nil
}

// String returns a short description of the key (tests, logs).
func (k openKey) String() string {
	return fmt.Sprintf("%v %d:%d %s", k.fid, k.uid, k.gid, k.mode)
}
