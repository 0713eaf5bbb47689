package mdt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
	"github.com/fidlog/fidlog/nodemap"
)

// Options configure an MDT. The zero value is usable after EnsureDefaults.
type Options struct {
	// FSName is the file system name; default "lustre".
	FSName string
	// Index is the MDT index; the device is "<FSName>-MDT%04x".
	Index uint32
	// FS is the Pebble file system; nil means the disk.
	FS vfs.FS
	// Logger receives the MDT's messages; default slog.Default().
	Logger *slog.Logger
	// Clock returns the wall time for inode times, records and rate
	// limits; default time.Now.
	Clock func() time.Time
	// ChangelogEvents are passed to the changelog.
	ChangelogEvents store.EventListener
	// ChangelogDefaults are the changelog settings of a new MDT.
	ChangelogDefaults *store.Settings
	// ChangelogKeyFile is the checkpoint signing key's file, created
	// (mode 0600) on first start; empty: no signed checkpoints (the hash
	// chain is kept either way). mdtd uses <data dir>/changelog.key.
	ChangelogKeyFile string
	// ChangelogDiskLow and ChangelogDiskLowMinBytes are the changelog's
	// disk space trigger for its space GC (store.Options.DiskLow).
	ChangelogDiskLow         func() bool
	ChangelogDiskLowMinBytes uint64
	// ChangelogNoChain writes records without the hash chain; for
	// measuring the chain's cost only (store.Options.NoChain).
	ChangelogNoChain bool
	// PebbleOptions, if set, may adjust the Pebble options before Open
	// (tests, benchmarks).
	PebbleOptions func(*pebble.Options)
	// MaxOpenHandles caps open file handles (ENFILE); default 65536.
	MaxOpenHandles int
	// MaxAuditEntries bounds each of the audit caches (time-record dedup,
	// denied-open rate limit); default 65536 entries each.
	MaxAuditEntries int
	// NamespaceCacheEntries bounds the namespace cache (nscache.go): about
	// this many inodes and this many directory entries are kept in memory
	// (roughly 150 and 100 bytes each); default
	// DefaultNamespaceCacheEntries; negative: no cache (every lookup reads
	// Pebble).
	NamespaceCacheEntries int
	// OnFatal is called when Pebble reports a fatal storage error (a
	// failed WAL write or sync, a failed MANIFEST update), from the
	// goroutine that failed, after the failure is latched (every later
	// operation fails with ErrIO) and logged as "pebble_fatal". It must
	// not return: Pebble's state after a fatal error is undefined (a
	// failed commit leaves its commit pipeline blocked) and the failing
	// goroutine may hold the changelog's lock. The default exits the
	// process with status ExitStorageFailure; acknowledged operations are
	// durable, and the next Open recovers from the WAL.
	OnFatal func(err error)
}

// ExitStorageFailure is the exit status of the default OnFatal
// (EX_IOERR).
const ExitStorageFailure = 74

// DefaultNamespaceCacheEntries is the default of
// Options.NamespaceCacheEntries: about 60 MB when full.
const DefaultNamespaceCacheEntries = 1 << 18

// EnsureDefaults fills unset options and returns o (a new Options if o is nil).
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if o.FSName == "" {
		o.FSName = "lustre"
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.MaxOpenHandles <= 0 {
		o.MaxOpenHandles = 1 << 16
	}
	if o.MaxAuditEntries <= 0 {
		o.MaxAuditEntries = 1 << 16
	}
	if o.NamespaceCacheEntries == 0 {
		o.NamespaceCacheEntries = DefaultNamespaceCacheEntries
	}
	if o.OnFatal == nil {
		o.OnFatal = func(error) { os.Exit(ExitStorageFailure) }
	}
	return o
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if len(o.FSName) > 8 {
		errs = append(errs, fmt.Errorf("%w: fsname '%s' is longer than 8 characters", ErrInvalid, o.FSName))
	}
	for i := 0; i < len(o.FSName); i++ {
		c := o.FSName[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			errs = append(errs, fmt.Errorf("%w: fsname '%s' may hold only letters, digits and '_'", ErrInvalid, o.FSName))
			break
		}
	}
	if o.Index > 0xffff {
		errs = append(errs, fmt.Errorf("%w: MDT index %d is above 0xffff", ErrInvalid, o.Index))
	}
	return errors.Join(errs...)
}

// Cred is what a client request says about its sender.
type Cred struct {
	UID, GID uint32
	Groups   []uint32
	JobID    string
	// NID is the client's NID ("192.168.1.10@tcp", "0@lo"); empty means
	// the local administrator ("0@lo").
	NID string
	// Local marks credentials the kernel vouched for (a process on this
	// host, seen through the unix socket): nodemaps neither map nor filter
	// them, and root among them is the local administrator.
	Local bool
}

// Identity is a request's identity after nodemap mapping.
type Identity struct {
	UID, GID uint32
	Groups   []uint32
	// Audit is false when the client's nodemap has audit_mode=0: nothing
	// it causes is recorded.
	Audit bool
	// Admin is true when root from this client is not squashed.
	Admin bool
	// Nodemap is the nodemap the NID selected ("" for Local credentials).
	Nodemap string
	// Roles are the RBAC roles the nodemap grants (every role while
	// nodemaps are inactive and for Local credentials).
	Roles nodemap.Roles
}

func (id *Identity) inGroup(g uint32) bool {
	if id.GID == g {
		return true
	}
	for _, x := range id.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// FileType is the type of an object.
type FileType uint8

// File types.
const (
	TypeReg FileType = iota + 1
	TypeDir
	TypeLnk
	TypeChr
	TypeBlk
	TypeFifo
	TypeSock
)

var typeNames = [...]string{"", "file", "directory", "symlink", "chardev", "blockdev", "fifo", "socket"}

// String returns a short name of t ("file", "directory", ...).
func (t FileType) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return "type" + strconv.Itoa(int(t))
}

// Attr are an object's attributes.
type Attr struct {
	FID                 fid.FID
	Type                FileType
	Mode                uint32 // permission bits, 07777
	UID, GID            uint32
	Size                uint64
	Nlink               uint32
	Atime, Mtime, Ctime time.Time
	Rdev                uint64
	Target              string // symlink target
}

// DirEntry is one directory entry.
type DirEntry struct {
	Name string
	FID  fid.FID
	Type FileType
}

// SetattrArgs says which attributes to change; nil fields stay.
type SetattrArgs struct {
	Mode, UID, GID      *uint32
	Size                *uint64
	Atime, Mtime, Ctime *time.Time
}

// inode is an object as stored (times in unix nanoseconds).
type inode struct {
	FID                 fid.FID
	Type                FileType
	Mode                uint32
	UID, GID            uint32
	Nlink               uint32
	Size                uint64
	Atime, Mtime, Ctime int64
	Rdev                uint64
	NextLink            uint32 // sequence of the next link added
	Target              string
}

func (ino *inode) attr() Attr {
	return Attr{
		FID: ino.FID, Type: ino.Type, Mode: ino.Mode & 07777, UID: ino.UID, GID: ino.GID,
		Size: ino.Size, Nlink: ino.Nlink, Rdev: ino.Rdev, Target: ino.Target,
		Atime: time.Unix(0, ino.Atime), Mtime: time.Unix(0, ino.Mtime), Ctime: time.Unix(0, ino.Ctime),
	}
}

// MDT is one metadata target: the namespace, its changelog and the audit
// state, in one Pebble DB.
type MDT struct {
	opts  Options
	dev   string
	dir   string // the store's directory (statfs)
	db    *pebble.DB
	log   *store.Log
	alloc *fid.Allocator
	nm    *nodemapState
	// nsc caches inodes and directory entries (nil: off); see nscache.go.
	nsc *nsCache
	// lastNID is the last NID string Identify parsed, with its parse.
	lastNID atomic.Pointer[parsedNID]

	// timeSeen remembers, per object, the changelog epoch in which it last
	// had a record (MTIME/CTIME/ATIME dedup). Bounded; safe for
	// concurrent use.
	timeSeen *epochCache
	// epoch is the time-record dedup epoch (Lustre's mc_starttime): a new
	// one starts whenever changelogs turn on or off, a user clears or is
	// removed, or records are purged. The changelog reports those changes
	// in the critical section that commits them (OnStateChange), so a
	// setattr ordered after a clear never sees the old epoch.
	epoch atomic.Uint64
	// deniedNext is changelog_deniednext in seconds.
	deniedNext atomic.Uint32
	// denyNext holds, per refused operation, when its next DENY is due
	// (the last recorded one plus changelog_deniednext). Bounded.
	denyNext *lru.Cache[denyKey, time.Time]
	// dedupWindow is changelog_dedup_window in seconds (0: off);
	// dedupSeen holds when each access record key was last stored
	// (bounded); dedupSuppressed counts what the window suppressed.
	dedupWindow     atomic.Uint32
	dedupSeen       *lru.Cache[accessKey, time.Time]
	dedupSuppressed atomic.Uint64
	closed          atomic.Bool
	fail            storeFailure

	// mu is the namespace shape lock. Mutations hold it for reading plus
	// the stripes of the objects they change, from the first read of the
	// state they depend on until their batch is applied (log.Apply), and
	// release both before the WAL sync; operations that change what path
	// walks rely on (directory renames, permission changes of
	// directories) hold it for writing. Readers hold it for reading.
	mu sync.RWMutex

	// stripes are the per-object locks: an operation holding mu for
	// reading holds the stripe of every object it reads and then changes
	// (see update in locks.go).
	stripes [lockStripes]stripe

	// omu guards the open-file and audit state.
	omu struct {
		sync.Mutex
		next    uint64
		handles map[uint64]*handle
		// openers counts outstanding audited opens per key (OPEN dedup).
		openers map[openKey]int
		// quiet marks keys whose OPEN the dedup window suppressed: their
		// last close records no CLOSE either.
		quiet map[openKey]bool
		// perFID counts open handles per object (keeps unlinked
		// objects as orphans until the last close).
		perFID map[fid.FID]int
		// reserved counts opens under way: each holds a slot below
		// MaxOpenHandles until it has its handle or failed.
		reserved int
		// denied holds, per key, the earliest time the next denied open
		// is recorded: the last recorded denial plus the
		// changelog_deniednext of that moment (mdd's mou_deniednext).
		denied *lru.Cache[openKey, time.Time]
	}

	// orphans is the window in which orphans of the previous run await
	// their reopen (orphan.go). pending and the channels are set at
	// Open; mu guards grace and pending afterwards.
	orphans struct {
		mu      sync.Mutex
		grace   uint32 // orphan_grace, seconds
		start   time.Time
		pending map[fid.FID]bool
		kick    chan struct{} // orphan_grace changed
		stop    chan struct{} // Close
		wg      sync.WaitGroup
	}
}

// Open opens (creating if needed) the MDT stored in dir.
func Open(dir string, opts *Options) (*MDT, error) {
	o := *opts.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	m := &MDT{opts: o, dir: dir, dev: fmt.Sprintf("%s-MDT%04x", o.FSName, o.Index), nsc: newNSCache(o.NamespaceCacheEntries)}
	po := &pebble.Options{
		FS:                    o.FS,
		FormatMajorVersion:    pebble.FormatNewest,
		FlushDelayDeleteRange: time.Second,
		MemTableSize:          32 << 20,
		Logger:                pebbleLogger{o.Logger, &m.fail, o.OnFatal},
	}
	// Pebble's events (flushes, compactions, WAL files, stalls, background
	// errors) reach the same log as its other lines.
	el := pebble.MakeLoggingEventListener(po.Logger)
	// Opening waits until the log recovered from the WAL is flushed, and
	// Pebble retries a failed flush forever: on a full disk (a restart
	// after the disk filled) Open would hang. It is a storage failure
	// that needs the operator: say so and end as any other.
	var opening atomic.Bool
	opening.Store(true)
	logBackground := el.BackgroundError
	el.BackgroundError = func(err error) {
		logBackground(err)
		if opening.Load() && errors.Is(err, syscall.ENOSPC) {
			m.fatal("open_no_space", fmt.Errorf("%w: no space left on device in %s to flush the log recovered at start: free space on its file system and start again: %v", ErrIO, dir, err))
		}
	}
	po.EventListener = &el
	// Bloom filters on every level: a create's "does the name exist?"
	// check is a negative point lookup, which without filters seeks the
	// index block of every level.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if o.PebbleOptions != nil {
		o.PebbleOptions(po)
	}
	db, err := pebble.Open(dir, po)
	opening.Store(false)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrIO, dir, err)
	}
	m.db = db
	fail := func(err error) (*MDT, error) {
		if m.log != nil {
			err = errors.Join(err, m.log.Close())
		}
		return nil, errors.Join(err, db.Close())
	}
	if err := m.initStore(); err != nil {
		return fail(err)
	}
	m.log, err = store.Open(db, &store.Options{
		KeyPrefix: changelogPrefix,
		Device:    m.dev,
		Clock:     o.Clock,
		Logger:    o.Logger,
		Events:    o.ChangelogEvents,
		// Every change of the users or the retained records starts a
		// new time-record dedup epoch.
		OnStateChange:   func(store.StateChange) { m.epoch.Add(1) },
		Defaults:        o.ChangelogDefaults,
		KeyFile:         o.ChangelogKeyFile,
		DiskLow:         o.ChangelogDiskLow,
		DiskLowMinBytes: o.ChangelogDiskLowMinBytes,
		NoChain:         o.ChangelogNoChain,
	})
	if err != nil {
		return fail(err)
	}
	if m.alloc, err = fid.NewAllocator(seqStore{db}); err != nil {
		return fail(err)
	}
	if m.nm, err = loadNodemap(db, &m.fail); err != nil {
		return fail(err)
	}
	// lru.New fails only for a size <= 0, which EnsureDefaults rules out.
	if m.timeSeen, err = newEpochCache(o.MaxAuditEntries); err != nil {
		return fail(err)
	}
	if m.omu.denied, err = lru.New[openKey, time.Time](o.MaxAuditEntries); err != nil {
		return fail(err)
	}
	if m.denyNext, err = lru.New[denyKey, time.Time](o.MaxAuditEntries); err != nil {
		return fail(err)
	}
	if m.dedupSeen, err = lru.New[accessKey, time.Time](o.MaxAuditEntries); err != nil {
		return fail(err)
	}
	m.omu.handles = make(map[uint64]*handle)
	m.omu.openers = make(map[openKey]int)
	m.omu.quiet = make(map[openKey]bool)
	m.omu.perFID = make(map[fid.FID]int)
	m.startOrphanWindow()
	return m, nil
}

// initStore creates the root directory on first open, lists the orphans
// left by open-unlinked objects (kept for orphan_grace, orphan.go), and
// loads MDT parameters.
func (m *MDT) initStore() error {
	b := m.db.NewBatch()
	defer func() { mustBatch(b.Close()) }()
	dirty := false
	if _, err := m.getInode(fid.Root); errors.Is(err, ErrNotFound) {
		now := m.opts.Clock().UnixNano()
		root := &inode{FID: fid.Root, Type: TypeDir, Mode: 0755, Nlink: 2, Atime: now, Mtime: now, Ctime: now}
		mustBatch(b.Set(inodeKey(fid.Root), encodeInode(root), nil))
		dirty = true
	} else if err != nil {
		return err
	}
	if err := m.loadOrphans(); err != nil {
		return err
	}
	if dirty {
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("%w: %w", ErrIO, err)
		}
	}
	m.deniedNext.Store(60)
	if v, ok, err := m.getMeta(metaDeniedNext); err != nil {
		return err
	} else if ok {
		n, err := strconv.ParseUint(string(v), 10, 32)
		if err != nil {
			return fmt.Errorf("%w: stored changelog_deniednext %q", ErrIO, v)
		}
		m.deniedNext.Store(uint32(n))
	}
	return m.loadDedupWindow()
}

// Close closes the changelog and the DB. Open handles are dropped; their
// objects, if unlinked, stay as orphans that the next Open keeps for
// orphan_grace (a client may reopen them by FID) and then removes.
func (m *MDT) Close() (err error) {
	if m.closed.Swap(true) {
		return nil
	}
	m.stopOrphanWindow()
	m.mu.Lock()
	defer m.mu.Unlock()
	err = m.log.Close()
	if cerr := m.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("%w: %w", ErrIO, cerr)
	}
	return err
}

// Device returns the MDT name, e.g. "lustre-MDT0000".
func (m *MDT) Device() string { return m.dev }

// FSName returns the file system name.
func (m *MDT) FSName() string { return m.opts.FSName }

// Log returns the changelog.
func (m *MDT) Log() *store.Log { return m.log }

// DB returns the Pebble DB (metrics, benchmarks). Do not write to it.
func (m *MDT) DB() *pebble.DB { return m.db }

func (m *MDT) checkOpen() error {
	if m.closed.Load() {
		return ErrClosed
	}
	return m.fail.get()
}

func (m *MDT) now() int64 { return m.opts.Clock().UnixNano() }

// getMeta reads an MDT metadata value.
func (m *MDT) getMeta(name string) (v []byte, ok bool, err error) {
	ok, err = get(m.db, metaKey(name), func(b []byte) error {
		v = append([]byte(nil), b...)
		return nil
	})
	return v, ok, err
}

// get reads key and passes its value, valid only during fn, to fn. ok is
// false if the key is absent. A read error, fn's error or the error of
// releasing the value is returned (read errors as ErrIO).
func get(db *pebble.DB, key []byte, fn func(v []byte) error) (ok bool, err error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrIO, err)
	}
	err = fn(v)
	if cerr := closer.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("%w: %w", ErrIO, cerr)
	}
	return true, err
}

// setMeta writes an MDT metadata value durably.
func (m *MDT) setMeta(name string, v []byte) (err error) {
	if err := m.db.Set(metaKey(name), v, pebble.Sync); err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	return nil
}

// seqStore keeps the FID allocator's sequence in the MDT's DB.
type seqStore struct{ db *pebble.DB }

func (s seqStore) LoadSeq() (seq uint64, ok bool, err error) {
	ok, err = get(s.db, metaKey(metaSeq), func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: stored FID sequence of %d bytes", ErrIO, len(v))
		}
		seq = binary.BigEndian.Uint64(v)
		return nil
	})
	return seq, ok, err
}

func (s seqStore) SaveSeq(seq uint64) error {
	return s.db.Set(metaKey(metaSeq), binary.BigEndian.AppendUint64(nil, seq), pebble.Sync)
}

// storeFailure latches the first fatal storage error Pebble reported.
// Pebble treats a failed commit (a WAL write or sync error) or MANIFEST
// update as fatal and calls Logger.Fatalf, after which its state is
// undefined. The MDT's logger latches the failure, logs it and hands it to
// Options.OnFatal, which ends the process (a clean, logged shutdown: no
// operation is acknowledged after the failure, and what was acknowledged
// is durable). Recovering from Fatalf and serving on is not safe: a failed
// commit leaves Pebble's commit pipeline blocked, and Fatalf also comes
// from Pebble's own flush and compaction goroutines, where nothing can
// recover it.
type storeFailure struct{ err atomic.Pointer[error] }

func (f *storeFailure) set(err error) { f.err.CompareAndSwap(nil, &err) }

func (f *storeFailure) get() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// pebbleLogger sends Pebble's messages to slog as events "pebble" (and
// "pebble_fatal") with Pebble's text in the attribute text and its
// compaction or flush job number, if it names one, in job: slog's own msg
// key is not repeated.
type pebbleLogger struct {
	l       *slog.Logger
	fail    *storeFailure
	onFatal func(error)
}

// pebbleAttrs splits Pebble's "[JOB 12] flushed ..." into job and text.
func pebbleAttrs(format string, args []any) []any {
	text := fmt.Sprintf(format, args...)
	if rest, ok := strings.CutPrefix(text, "[JOB "); ok {
		if n, tail, ok := strings.Cut(rest, "] "); ok {
			if job, err := strconv.Atoi(n); err == nil {
				return []any{"job", job, "text", tail}
			}
		}
	}
	return []any{"text", text}
}

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug("pebble", pebbleAttrs(format, args)...)
	}
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble", pebbleAttrs(format, args)...)
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	err := fmt.Errorf("%w: storage failure: %s", ErrIO, msg)
	p.fail.set(err)
	p.l.Error("pebble_fatal", "text", msg)
	p.onFatal(err)
	// OnFatal must not return; if it does, this goroutine stops here
	// rather than go back into Pebble.
	select {}
}

// fatal latches err, logs it as event and calls OnFatal, for a storage
// failure Pebble reported as an error rather than through Fatalf.
func (m *MDT) fatal(event string, err error) {
	m.fail.set(err)
	m.opts.Logger.Error(event, "device", m.dev, "err", err)
	m.opts.OnFatal(err)
	select {} // OnFatal must not return
}
