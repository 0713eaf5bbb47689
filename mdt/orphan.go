package mdt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// Orphans across a restart (see doc.go, "Open unlinked files").
//
// An object whose last link goes while handles are open on it stays, with
// nlink 0 and an orphan key, until its last close. Handles live in memory
// and end with the process, so at Open the orphans found are kept for the
// grace window mdd.<dev>.orphan_grace (seconds, default
// DefaultOrphanGrace), as a Lustre MDT keeps them through its recovery
// window while clients replay their opens: a client that held a handle
// reopens the object by FID (OpenFID with reopen), reads and writes it, and
// its last close removes it. When the window ends, the orphans nobody
// reopened are removed, in one batch each, with no record (the UNLNK was
// recorded when the last link went; Lustre's orphan cleanup after recovery
// writes none either, and no process closed them).

// DefaultOrphanGrace is the default of mdd.<dev>.orphan_grace.
const DefaultOrphanGrace = 300 * time.Second

// maxOrphanGrace bounds orphan_grace (one day).
const maxOrphanGrace = 86400

// handleBits is how many low bits of a handle number count opens within
// one start of the MDT; the bits above hold the start counter, so a
// handle from before a restart is never a handle of another open after
// it.
const handleBits = 40

// nextBoot increments and durably stores the start counter and returns
// it.
func (m *MDT) nextBoot() (uint64, error) {
	var boot uint64
	if v, ok, err := m.getMeta(metaBoot); err != nil {
		return 0, err
	} else if ok {
		if len(v) != 8 {
			return 0, fmt.Errorf("%w: stored start counter of %d bytes", ErrCorrupt, len(v))
		}
		boot = binary.BigEndian.Uint64(v)
	}
	boot++
	if err := m.setMeta(metaBoot, binary.BigEndian.AppendUint64(nil, boot)); err != nil {
		return 0, err
	}
	return boot, nil
}

// loadOrphans lists the orphans left by the previous run and loads
// orphan_grace; startOrphanWindow then starts their window.
func (m *MDT) loadOrphans() error {
	m.orphans.grace = uint32(DefaultOrphanGrace / time.Second)
	if v, ok, err := m.getMeta(metaOrphanGrace); err != nil {
		return err
	} else if ok {
		n, err := strconv.ParseUint(string(v), 10, 32)
		if err != nil {
			return fmt.Errorf("%w: stored orphan_grace %q", ErrIO, v)
		}
		m.orphans.grace = uint32(n)
	}
	lo, hi := orphanRange()
	return m.scan(lo, hi, func(k, _ []byte) error {
		f, err := fid.FromKey(k[1:])
		if err != nil {
			return fmt.Errorf("%w: orphan key %x: %w", ErrCorrupt, k, err)
		}
		if m.orphans.pending == nil {
			m.orphans.pending = make(map[fid.FID]bool)
		}
		m.orphans.pending[f] = true
		return nil
	})
}

// startOrphanWindow starts the goroutine that removes, when the window
// ends, the orphans of the previous run that nobody reopened. Close stops
// it and waits for it.
func (m *MDT) startOrphanWindow() {
	if len(m.orphans.pending) == 0 {
		return
	}
	if m.orphans.grace == 0 {
		m.reclaimOrphans() // no window: removed before Open returns
		return
	}
	m.orphans.start = time.Now()
	m.orphans.kick = make(chan struct{}, 1)
	m.orphans.stop = make(chan struct{})
	m.orphans.wg.Go(m.orphanWindow)
}

func (m *MDT) orphanWindow() {
	for {
		m.orphans.mu.Lock()
		left := time.Duration(m.orphans.grace)*time.Second - time.Since(m.orphans.start)
		m.orphans.mu.Unlock()
		if left <= 0 {
			m.reclaimOrphans()
			return
		}
		tm := time.NewTimer(left)
		select {
		case <-tm.C:
		case <-m.orphans.kick: // orphan_grace changed
			tm.Stop()
		case <-m.orphans.stop:
			tm.Stop()
			return
		}
	}
}

// reclaimOrphans removes the orphans of the previous run that have no
// handle: each in its own batch, synced; one that cannot be removed now
// (a storage error) stays, with its orphan key, for the next start.
func (m *MDT) reclaimOrphans() {
	m.orphans.mu.Lock()
	var fids []fid.FID
	for f := range m.orphans.pending {
		fids = append(fids, f)
	}
	m.orphans.pending = nil
	m.orphans.mu.Unlock()
	sys := &caller{} // no identity: no records
	n, kept := 0, 0
	for _, f := range fids {
		var pend *store.Pending
		removed := false
		err := m.update(func(ls *lockSet) error {
			if !ls.need(f) {
				return ls.relock()
			}
			if m.openCount(f) > 0 {
				kept++
				return nil // reopened: its last close removes it
			}
			ino, err := m.getInode(f)
			if errors.Is(err, ErrNotFound) {
				return nil // closed after a reopen
			} else if err != nil {
				return err
			}
			t := m.newTxn(sys)
			defer t.close()
			if ino.Nlink > 0 {
				t.del(orphanKey(f))
			} else if err := t.deleteObject(f); err != nil {
				return err
			}
			pend, err = t.apply()
			removed = err == nil && ino.Nlink == 0
			return err
		})
		if err == nil {
			err = m.wait(pend)
		}
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				m.opts.Logger.Warn("orphan_not_reclaimed", "device", m.dev, "fid", f.String(), "err", err)
			}
			continue
		}
		if removed {
			n++
		}
	}
	m.opts.Logger.Info("orphan_window_end", "device", m.dev, "reclaimed", n, "reopened", kept)
}

// stopOrphanWindow ends the window's goroutine (Close).
func (m *MDT) stopOrphanWindow() {
	if m.orphans.stop != nil {
		close(m.orphans.stop)
	}
	m.orphans.wg.Wait()
}

// setOrphanGrace stores orphan_grace and moves the end of a running
// window.
func (m *MDT) setOrphanGrace(n uint32) error {
	if err := m.setMeta(metaOrphanGrace, []byte(strconv.FormatUint(uint64(n), 10))); err != nil {
		return err
	}
	m.orphans.mu.Lock()
	m.orphans.grace = n
	m.orphans.mu.Unlock()
	if m.orphans.kick != nil {
		select {
		case m.orphans.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func parseOrphanGrace(v string) (uint32, error) {
	n, err := store.ParseUint("orphan_grace", v, 0, 32)
	if err != nil {
		return 0, err
	}
	if n > maxOrphanGrace {
		return 0, &changelog.ParamError{Name: "orphan_grace", Value: v, Reason: "at most " + strconv.Itoa(maxOrphanGrace) + " seconds"}
	}
	return uint32(n), nil
}

// orphanCount returns the number of unlinked objects kept: open, or
// awaiting a reopen within the window.
func (m *MDT) orphanCount() (int, error) {
	n := 0
	lo, hi := orphanRange()
	err := m.scan(lo, hi, func(_, _ []byte) error { n++; return nil })
	return n, err
}

// OpenFID opens object f by FID, as Open does by path, and returns a
// handle for CloseFile: the same permission checks (NOPEN when the
// object's mode refuses), OPEN record and handle rules, for an object that
// has links or is an orphan (unlinked, still open, or kept after a restart
// within orphan_grace). CREATE and EXCL are EINVAL (but see reopen); a
// symlink is ELOOP.
//
// reopen re-establishes a handle a client held, after a restart of the MDT
// or a lost connection: if reopen is still an open handle of f it is
// returned unchanged; otherwise a new handle is opened without an OPEN
// record (the original open was recorded) and without TRUNC's truncation
// (done by the original open), counted as an opener so that its last
// close records CLOSE as the original's would have. flags are then the
// original open's, CREATE and EXCL included (kept for the CLOSE record's
// flags, not acted on), and they are not checked against the object's
// current mode: the original open was, and a descriptor keeps its access
// after a chmod (the API lets only trusted peers, such as the mount, use
// FIDs).
func (m *MDT) OpenFID(ctx context.Context, c Cred, f fid.FID, flags uint32, reopen uint64) (uint64, Attr, error) {
	name := f.String()
	if flags&accessBits == 0 {
		flags |= changelog.OpenRead
	}
	cl, err := m.begin(ctx, c)
	if err != nil {
		return 0, Attr{}, pathErr("open", name, err)
	}
	if f.IsZero() || reopen == 0 && flags&(changelog.OpenCreate|changelog.OpenExcl) != 0 {
		return 0, Attr{}, pathErr("open", name, ErrInvalid)
	}
	if err := m.reserveHandle(); err != nil {
		return 0, Attr{}, pathErr("open", name, err)
	}
	var (
		h    uint64
		a    Attr
		pend *store.Pending
		kept bool
	)
	err = m.update(func(ls *lockSet) error {
		if !ls.need(f) {
			return ls.relock()
		}
		if reopen != 0 {
			m.omu.Lock()
			hd, ok := m.omu.handles[reopen]
			m.omu.Unlock()
			if ok && hd.key.fid == f {
				ino, err := m.getInode(f)
				if err != nil {
					return err
				}
				h, a, kept = reopen, ino.attr(), true
				return nil
			}
		}
		ino, err := m.getInode(f)
		if err != nil {
			return err
		}
		if ino.Type == TypeLnk {
			return ErrLoop
		}
		if reopen != 0 {
			// The original open was checked; a descriptor keeps its
			// access after a chmod, so the reopen is not checked
			// against the current mode.
			if ino.Type == TypeDir && isWriteOpen(flags) {
				return ErrIsDir
			}
		} else if p, err := m.mayOpenLocked(cl, ino, flags); err != nil {
			pend = p
			return err
		}
		t := m.newTxn(cl)
		defer t.close()
		var parent *inode
		if ino.Nlink > 0 {
			// No p= when the links cannot be read; the open goes on.
			if fp, err := m.firstParent(f); err == nil {
				parent = fp
			}
		}
		h, a, pend, err = m.addHandleLocked(cl, t, parent, ino, flags, false, reopen != 0)
		return err
	})
	if err != nil || kept {
		m.unreserveHandle()
	}
	if werr := m.wait(pend); werr != nil && err == nil {
		m.dropHandle(h)
		err = werr
	}
	if err != nil {
		err = pathErr("open", name, err)
		if !errors.Is(err, errNopen) {
			err = m.deny(ctx, c, denial{op: changelog.CLOpen, fid: f}, err)
		}
		return 0, Attr{}, err
	}
	return h, a, nil
}

// SetattrFID changes attributes of object f by FID, with Setattr's rules
// and records, for an object reached through an open file (ftruncate,
// fchmod, futimens) including an unlinked one. If h is not 0 it must be an
// open handle of f (EBADF otherwise); a size change through a handle open
// for writing needs no write permission (ftruncate checks the file
// descriptor, not the mode). p= of an MTIME record is the directory of the
// object's first link (none for an orphan).
func (m *MDT) SetattrFID(ctx context.Context, c Cred, f fid.FID, h uint64, s SetattrArgs) (Attr, error) {
	name := f.String()
	cl, err := m.begin(ctx, c)
	if err != nil {
		return Attr{}, pathErr("setattr", name, err)
	}
	if f.IsZero() {
		return Attr{}, pathErr("setattr", name, ErrInvalid)
	}
	if err := s.check(); err != nil {
		return Attr{}, pathErr("setattr", name, err)
	}
	var (
		a    Attr
		pend *store.Pending
	)
	err = m.update(func(ls *lockSet) error {
		if !ls.need(f) {
			return ls.relock()
		}
		writer := false
		if h != 0 {
			m.omu.Lock()
			hd, ok := m.omu.handles[h]
			m.omu.Unlock()
			if !ok || hd.key.fid != f {
				return ErrBadHandle
			}
			writer = isWriteOpen(hd.flags)
		}
		obj, err := m.getInode(f)
		if err != nil {
			return err
		}
		var parent *inode
		if obj.Nlink > 0 && obj.Type != TypeDir {
			if parent, err = m.firstParent(f); err != nil {
				return err
			}
		}
		a, pend, err = m.setattrObjLocked(cl, ls, parent, obj, s, writer)
		return err
	})
	if err == nil {
		err = m.wait(pend)
	}
	if err != nil {
		return Attr{}, m.denySetattr(ctx, c, s, denial{fid: f}, pathErr("setattr", name, err))
	}
	return a, nil
}

// firstParent returns the directory of f's first link (link #0, the one
// mdt_attr_get_pfid reads), or nil if f has no link.
func (m *MDT) firstParent(f fid.FID) (*inode, error) {
	ls, err := m.links(f)
	if err != nil || len(ls) == 0 {
		return nil, err
	}
	return &inode{FID: ls[0].parent}, nil
}
