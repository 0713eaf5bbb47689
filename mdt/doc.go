// Package mdt is the metadata server of one MDT: a POSIX-like namespace
// keyed by FID, its changelog (package changelog/store, records in package changelog) and the audit rules
// (OPEN/CLOSE dedup, denied opens, GXATR, time-record dedup, and fidlog's
// own DENY records and access dedup window, audit.go), nodemap
// identity mapping and the lctl parameter tree, all in one Pebble DB whose
// key schema is in keys.go.
//
// # Invariants
//
//   - One transaction per operation: an operation's namespace mutations and
//     the records it owes go into one Pebble batch committed by
//     store.Log.Apply. If the records cannot be stored (retained-records
//     cap: ErrNoSpace; write error: ErrIO) Apply commits nothing and the
//     operation fails with the namespace unchanged. In-memory state (open
//     handles, opener counts, rate limits, time dedup) changes only after
//     Apply succeeded.
//   - Durable before acknowledged: an operation returns success only after
//     Pending.Wait (group-committed WAL sync). A failed Wait is returned
//     as ErrIO (the changelog then refuses writes until reopened).
//   - Commit order = state order: an operation holds the locks of every
//     object it reads and then changes (the stripes of its parent
//     directories, its object and any replaced entry's object, under MDT.mu
//     held for reading; or MDT.mu held for writing) from the first read of
//     that state until Apply has assigned its record indices (two-phase
//     locking), so records appear in the changelog in the order their
//     changes were made and every record describes the state it was
//     derived from.
//   - Records carry the mapped identity (uid:gid after nodemap squashing),
//     the client NID and jobid. Clients of a nodemap with audit_mode=0 get
//     no records at all (none are built).
//   - Namespace consistency: every directory entry (parent, name) -> FID has
//     exactly one link record (FID, seq) -> (parent, name) and vice versa;
//     an object's nlink equals its number of links (directories: 2 + number
//     of subdirectories, the root included); an object with nlink 0 exists
//     only while handles are open on it or while it awaits a reopen after
//     a restart, marked by an orphan key, and such objects are removed at
//     the last close or when orphan_grace ends (see "Open unlinked files").
//   - FIDs are never reused: the allocator's sequence is synced before any
//     FID of it is handed out (fid.Allocator).
//   - Bounded state: open handles are capped (ENFILE); opener counters
//     shrink at each last close; denied-open and DENY rate limits, the
//     time-record dedup map and the dedup window's map are LRU-bounded
//     (MaxAuditEntries each; evicting an entry can only add a record,
//     never lose one that is due).
//   - DENY (type 25, after Lustre's last): an operation refused with
//     EACCES or EPERM (create, mkdir, mknod, symlink, link, unlink, rmdir,
//     rename, setattr, setxattr, removexattr, and an open refused before
//     its object's check) leaves a DENY record when DENY is in the
//     effective mask and the caller is audited, at most once per
//     operation, target and identity per changelog_deniednext seconds. It
//     is written in its own batch after the refused operation released
//     its locks; the operation fails with its errno either way.
//   - Dedup window (changelog_dedup_window seconds, 0 = off): an OPEN,
//     GXATR, NOPEN or DENY identical to one stored within the window (same
//     type, target, identity, flags) is not stored, and a CLOSE whose OPEN
//     was so suppressed is not either; changelog_dedup_suppressed counts
//     them since the MDT was opened.
//   - Namespace cache (nscache.go, Options.NamespaceCacheEntries): inodes
//     and directory entries are read through a bounded in-memory cache,
//     and a directory created since Open, or read whole after a name was
//     not found in it (up to 1024 entries), is known complete (a lookup of
//     a new name needs no read). A transaction marks what it writes pending
//     before Apply and installs it after Apply succeeded (drops it if
//     not), under its stripes; pending keys are read from Pebble. So a
//     lookup answers what Pebble would, except that a change not yet
//     acknowledged nor durable may still show its old value to a reader
//     that takes no stripe, as it could before the change was applied.
//   - No error vanishes: a storage error is returned (ErrIO) and the batch
//     is not committed; state that breaks a namespace invariant (an entry
//     without its link record, an undecodable orphan key) is ErrCorrupt
//     (EIO) and the operation changes nothing; batch writes pebble cannot
//     fail (Set/Delete/Close of an unindexed batch) panic if they ever do
//     (mustBatch). CI runs errcheck -blank over this package.
//
// # Path rules
//
// Paths are relative to the root ("" and "/" are the root; leading,
// repeated and trailing slashes are ignored). Every component must be a
// valid name: "", ".", "..", or a name containing NUL are EINVAL, longer
// than 255 bytes ENAMETOOLONG. Intermediate symlinks are not followed
// (ENOTDIR). A final symlink is not followed by Stat, Path2Fid, Unlink,
// Rename, Link (source), Setattr and the xattr calls; Open follows it one
// level (its target resolved from the link's directory or, if absolute,
// from the root; a target that is again a symlink is ELOOP, a missing
// target ENOENT even with CREATE).
//
// # Open unlinked files
//
// The last unlink of an object with open handles keeps it (nlink 0) with an
// orphan key, in the unlink's batch. Handles live in memory and die with
// the process, so Open lists the orphan keys it finds and keeps those
// objects for mdd.<dev>.orphan_grace seconds (default 300, stored; 0
// removes them before Open returns), as a Lustre MDT keeps orphans through
// its recovery window while clients replay their opens. A client that held
// a handle calls OpenFID with reopen (the mount does so, as the opener, when
// it reconnects or finds a handle unknown): the same permission checks as an
// open, no OPEN record (the original was recorded) and no truncation, and
// the handle counts as an opener, so its last close records CLOSE with the
// reopening (= original) identity and flags and removes the object. When
// the window ends, a goroutine owned by the MDT (Close stops and waits for
// it) removes each orphan that has no handle, one batch each, with no
// record: the UNLNK was recorded, no process closed it, and Lustre's
// orphan cleanup after recovery writes none either. Crash safety: the
// orphan key is written with the unlink, removed with the object in the
// last close's or the window's batch, so a crash at any point leaves
// either the object with its key (kept for the next start's window: never
// lost within a window, never leaked past one) or neither. Handle numbers
// carry a start counter (stored, synced before the first handle of a
// start, so a start that opens nothing writes nothing) in their top bits,
// so a handle from before a restart never names another open after it
// (EBADF).
// SetattrFID, OpenFID and the xattr calls' *FID variants reach an object
// through an open file (ftruncate, fchmod, futimens, fgetxattr, an open of
// /proc/PID/fd/N), unlinked or not, with the same checks and records as by
// path.
//
// # Deliberate differences from Lustre
//
//   - RenameFlags with RenameExchange (Lustre has no exchange) swaps two
//     entries in one batch and records one RENME with flag
//     changelog.FlagRenameExchange (0x4): t= the object that was at the
//     destination, p=/name the destination, s=/sp=/sname the source; t=
//     now has the source's name. RenameNoReplace's EEXIST is decided under
//     the rename's locks.
//   - A denied open leaves no zero-count opener entry, so a later
//     successful open with the same key records OPEN (Lustre suppresses it).
//   - OPEN, CLOSE and GXATR records that cannot be stored fail the
//     operation (guaranteed auditing; Lustre ignores OPEN/CLOSE failures).
//     A NOPEN that cannot be stored is logged; the open fails with EACCES
//     either way.
//   - Mutating operations and open/close lock the objects they change
//     (striped per-object locks) under a shared namespace lock; directory
//     renames and mode/owner changes of directories take the namespace
//     lock alone. Reads (Stat, Readdir, Getxattr without a record,
//     Fid2Path) share it and take no object lock.
//
// # Lock order
//
//	MDT.mu (namespace shape, RWMutex)
//	  -> MDT.stripes (per-object mutexes, only with MDT.mu held for reading)
//	    -> fid.Allocator.mu (held across the rare synced sequence save,
//	       once per 131072 FIDs: the one fsync under these locks, by design)
//	    -> MDT.omu (open/audit state; brief, never across I/O)
//	    -> store.Log's locks (inside Apply)
//	    -> nsCache shard locks (leaves, before and after Apply; also
//	       taken by readers holding no stripe; never across I/O)
//
// MDT.mu is held for writing only by operations that change what path
// walks rely on without object locks: directory renames (ancestry) and
// mode/uid/gid changes of directories (search permission). Everything
// else that changes the namespace, and open/close, holds it for reading
// plus object stripes (1024 mutexes indexed by a hash of the FID; see
// update in locks.go): the stripe of an object is taken before its state
// is read (the parent directory before its inode and entries, the entry's
// object before its inode, links and open count), and all are released
// after Apply, before Pending.Wait. Stripes are acquired in ascending
// index order only: a stripe above every held one is waited for, one
// below is only tried (TryLock); if that fails, the operation releases
// everything and runs again with all the stripes it asked for taken up
// front in order. After a few such passes (or when it needs the
// namespace alone) it runs under MDT.mu held for writing, where no stripe
// is needed. Ancestors above the locked parent are read without stripes:
// under the shared lock they cannot move or change permissions, and one
// removed meanwhile (it must have become empty) is seen as ENOENT, as is
// a parent removed between its lookup and its lock (nlink 0).
//
// What the stripes protect: a directory's entries, nlink and times (its
// stripe: so rmdir's emptiness check excludes creates in it), an
// object's inode, link records, xattrs, its open-handle counts and
// orphan state (its stripe: opens, closes, unlinks and renames over it are
// ordered), and the time-record dedup (setattr holds the stripes of the
// parent and the object, so a record of a just-created object is noted
// before any setattr of it can look). The dedup epoch (MDT.epoch) is an
// atomic counter the changelog advances through OnStateChange under its
// own lock, in the critical section of each clear, deregistration, purge
// and on/off switch; an operation reads it before Apply, so a change
// racing with it can only cost an extra time record, never lose one.
//
// MDT.orphans.mu (orphan_grace and the orphans awaiting a reopen) is a
// leaf, never held with another lock; the window's goroutine takes the
// other locks only through update, as an operation does.
//
// nodemapState.mu only serialises nodemap changes (clone, synced write,
// publish) and is never taken with MDT.mu; requests read the published
// nodemap.Config through an atomic pointer before taking MDT.mu. The
// time-dedup and denied-open LRUs are internally locked leaves. No lock of
// this package is held across Pending.Wait (the group-committed WAL fsync).
//
// # Storage failures
//
// Pebble treats a failed WAL write or sync (and a failed MANIFEST update)
// as fatal (Logger.Fatalf); its state afterwards is undefined (a failed
// commit leaves its commit pipeline blocked, and Fatalf also comes from
// Pebble's own goroutines). The MDT's Pebble logger latches the failure
// (every later operation fails with ErrIO), logs pebble_fatal and calls
// Options.OnFatal, which ends the process (mdtd: logged, exit status 74).
// Nothing is acknowledged after the failure; what was acknowledged is
// durable and the next Open recovers it from the WAL. (Recovering the
// Fatalf panic and serving on, as before, is not safe for those reasons.)
package mdt
