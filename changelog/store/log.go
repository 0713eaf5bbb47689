package store

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fidlog/fidlog/changelog"
)

// Options configure a Log. The zero value is usable after EnsureDefaults.
type Options struct {
	// KeyPrefix is prepended to every key the log owns in the shared DB.
	// Default "c".
	KeyPrefix []byte
	// Device is the MDT name used in messages ("lustre-MDT0000").
	Device string
	// Clock returns the wall time; default time.Now.
	Clock func() time.Time
	// Logger receives the log's own messages; default slog.Default().
	Logger *slog.Logger
	// Events are optional callbacks (metrics, logs). Appended, the one on
	// the write path, runs after the log's lock is released; the others
	// (user changes, purges, write errors: rare) run with it held and
	// must not call back into the Log.
	Events EventListener
	// Defaults are the settings of a log that has none stored yet;
	// default DefaultSettings().
	Defaults *Settings
	// OnStateChange, if set, is told of every change of the users or of
	// the retained records (see StateChange), with the log's lock held in
	// the critical section that commits the change, so state derived from
	// it (the MDT's time-record dedup epoch) never lags the change. It
	// must be cheap and must not call into the Log.
	OnStateChange func(StateChange)
	// MaxEvicted bounds the remembered evictions (default 1024).
	MaxEvicted int
	// NoChain writes records without the hash chain (version 1 encoding).
	// For measuring the chain's cost only: a log written so cannot be
	// verified, and a chain that resumes after such records starts anew.
	NoChain bool
	// SigningKey signs the checkpoints. If nil, KeyFile is loaded, or
	// created (mode 0600) on first start; with neither, no checkpoints are
	// written (the chain alone is still kept).
	SigningKey ed25519.PrivateKey
	// KeyFile is the signing key's file (PKCS#8 PEM), which RotateKey
	// replaces.
	KeyFile string
	// DiskLow, if set, reports that the file system holding the log is
	// nearly full. With space GC on (changelog_gc and
	// changelog_free_space_gc), if the retained records take at least
	// DiskLowMinBytes on disk, the most lagging user is then evicted, as
	// when the catalog is nearly full, before a full disk stops the MDT.
	// It is asked at most once a second, after records are written, with
	// the log's lock held: it must be cheap (a statfs).
	DiskLow         func() bool
	DiskLowMinBytes uint64
}

// StateChange names a change of the log's users or retained records.
type StateChange uint8

// The changes OnStateChange reports.
const (
	// ChangelogOn: the first user registered.
	ChangelogOn StateChange = iota + 1
	// ChangelogOff: the last user was deregistered or evicted.
	ChangelogOff
	// UserCleared: a user cleared records (purge or not).
	UserCleared
	// UserRemoved: a user was deregistered or evicted.
	UserRemoved
	// RecordsPurged: records were deleted up to a new floor.
	RecordsPurged
)

// EventListener holds optional callbacks for things worth logging or
// counting. Any field may be nil.
type EventListener struct {
	ChangelogOn      func()
	ChangelogOff     func()
	UserRegistered   func(u changelog.User)
	UserDeregistered func(u changelog.User)
	UserEvicted      func(u changelog.User, reason string, unprocessed uint64)
	Purged           func(from, to changelog.Index)
	Appended         func(recs []*changelog.Record)
	Checkpointed     func(c *changelog.Checkpoint)
	WriteError       func(err error)
}

// EnsureDefaults fills unset options.
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if len(o.KeyPrefix) == 0 {
		o.KeyPrefix = []byte("c")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Defaults == nil {
		d := DefaultSettings()
		o.Defaults = &d
	}
	if o.MaxEvicted <= 0 {
		o.MaxEvicted = 1024
	}
	if o.Device == "" {
		o.Device = "lustre-MDT0000"
	}
	return o
}

// State is a snapshot of the log's positions and masks.
type State struct {
	// Current is the index of the last record assigned (current_index).
	Current changelog.Index
	// Durable is the highest index known synced; readers stop there.
	Durable changelog.Index
	// First is the lowest retained index (Purged+1); First > Current means
	// the log is empty.
	First changelog.Index
	// On is true while at least one user is registered.
	On bool
	// Effective is the mask records are filtered by (changelog_current_mask).
	Effective changelog.Mask
	// Users is the number of registered users.
	Users int
	// Anchor is the chain hash of the last purged record (index First-1).
	Anchor changelog.Anchor
}

type persistState struct {
	Current    changelog.Index `json:"current"`
	Purged     changelog.Index `json:"purged"`
	LastUserID uint32          `json:"last_user_id"`
	// Anchor is the chain hash of record Purged (the last purged record),
	// in hex, written in the purge's batch: the chain of the first
	// retained record links to it. Empty: zero (no chained record yet).
	Anchor string `json:"anchor,omitempty"`
}

// Log is a changelog on Pebble: a sequencer that assigns contiguous indices
// in commit order, a durable watermark, registered users, purge and GC.
type Log struct {
	db   *pebble.DB
	opts Options
	keys keyspace

	mu struct {
		sync.Mutex
		current     changelog.Index
		purged      changelog.Index
		head        changelog.Hash   // chain hash of record current
		anchor      changelog.Hash   // chain hash of record purged
		sealer      changelog.Sealer // reused SHA-256 state
		lastUserID  uint32
		users       []*changelog.User // by ID
		evicted     map[uint32]*changelog.EvictedError
		settings    Settings
		effective   changelog.Mask
		failed      error
		seq         uint64 // batches applied
		lastGCChk   time.Time
		lastDiskChk time.Time // Options.DiskLow last asked
		// emergency: the next GC run evicts the most lagging user for
		// lack of catalog entries (changelog_min_free_cat_entries).
		emergency bool
		closed    bool
		ckSeq     uint64          // last checkpoint's sequence number
		ckIndex   changelog.Index // index the last checkpoint covers
	}

	// tail is the newest records' encodings (tail.go; appended under mu).
	tail tail
	// qmu is the group-commit queue (sequencer.go); never held with mu.
	qmu queue
	// hold is the syncs held back for callers on their way (sequencer.go;
	// lock order: mu, hold).
	hold holdState
	// expected counts callers announced by Expect; waiting counts callers
	// whose batch is applied and whose Wait has not returned.
	expected atomic.Int64
	waiting  atomic.Int64
	// ckMu serialises checkpoints and guards key (lock order: ckMu, mu).
	ckMu   sync.Mutex
	key    ed25519.PrivateKey
	hasKey atomic.Bool
	ckKick chan struct{}
	// ckDurable is the sequence number of the last durable checkpoint.
	ckDurable atomic.Uint64

	gate     atomic.Uint64 // bit 32: on; low bits: effective mask
	applied  atomic.Uint64 // highest seq whose batch is applied
	appliedI atomic.Uint64 // highest index whose batch is applied
	syncSeq  atomic.Uint64 // highest seq known synced

	dmu struct {
		sync.Mutex
		durable changelog.Index
		ch      chan struct{} // closed and replaced when durable advances
	}
	// durableA is dmu.durable and purgedA is mu.purged, published for
	// readers that take neither lock (Durable, First: a stream reads both
	// for every message).
	durableA atomic.Uint64
	purgedA  atomic.Uint64
	closedA  atomic.Bool // mu.closed

	gcKick      chan struct{}
	compactKick chan struct{}
	// compactFrom is the purge floor already compacted (reclaimer only).
	compactFrom atomic.Uint64
	stop        chan struct{}
	// cancel stops a compaction the reclaimer is running (Close).
	cancel context.CancelFunc
	wg     sync.WaitGroup // the GC loop and the reclaimer
}

// Open opens the changelog kept in db under opts.KeyPrefix. db stays owned
// by the caller and must outlive the Log. Open drops orphan records below
// the lowest user point (all records when no user is registered).
func Open(db *pebble.DB, opts *Options) (*Log, error) {
	o := *opts.EnsureDefaults()
	l := &Log{db: db, opts: o, keys: keyspace{prefix: o.KeyPrefix}, gcKick: make(chan struct{}, 1),
		compactKick: make(chan struct{}, 1), stop: make(chan struct{})}
	l.dmu.ch = make(chan struct{})
	l.ckKick = make(chan struct{}, 1)
	if err := l.load(); err != nil {
		return nil, err
	}
	if err := l.loadKey(); err != nil {
		return nil, err
	}
	l.compactFrom.Store(uint64(l.mu.purged))
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Go(l.gcLoop)
	l.wg.Go(func() { l.reclaimLoop(ctx) })
	if l.hasKey.Load() {
		l.wg.Go(l.checkpointLoop)
	}
	return l, nil
}

func (l *Log) load() error {
	st := persistState{}
	if ok, err := l.getJSON(l.keys.meta("state"), &st); err != nil {
		return err
	} else if !ok {
		st = persistState{}
	}
	set := *l.opts.Defaults
	if _, err := l.getJSON(l.keys.meta("settings"), &set); err != nil {
		return err
	}
	l.mu.settings = set
	l.mu.lastUserID = st.LastUserID
	l.mu.evicted = map[uint32]*changelog.EvictedError{}

	// Users.
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: l.keys.userPrefix(), UpperBound: l.keys.userEnd()})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		u := new(changelog.User)
		if err := json.Unmarshal(it.Value(), u); err != nil {
			return errors.Join(fmt.Errorf("%w: user record %x: %v", changelog.ErrCorrupt, it.Key(), err), it.Close())
		}
		l.mu.users = append(l.mu.users, u)
		l.mu.lastUserID = max(l.mu.lastUserID, u.ID)
	}
	if err := it.Close(); err != nil {
		return err
	}
	// Evictions.
	it, err = l.db.NewIter(&pebble.IterOptions{LowerBound: l.keys.evictPrefix(), UpperBound: l.keys.evictEnd()})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		e := new(changelog.EvictedError)
		if err := json.Unmarshal(it.Value(), e); err != nil {
			return errors.Join(fmt.Errorf("%w: eviction record %x: %v", changelog.ErrCorrupt, it.Key(), err), it.Close())
		}
		l.mu.evicted[binary.BigEndian.Uint32(it.Key()[len(it.Key())-4:])] = e
	}
	if err := it.Close(); err != nil {
		return err
	}

	// Current index: the last record, or the persisted value (which
	// survives purging everything), or a user's point.
	cur := st.Current
	first, last, any, err := l.recordBounds()
	if err != nil {
		return err
	}
	if any {
		cur = max(cur, last)
	}
	for _, u := range l.mu.users {
		cur = max(cur, u.Index)
	}
	l.mu.current = cur
	if st.Anchor != "" {
		h, err := changelog.ParseHash(st.Anchor)
		if err != nil {
			return fmt.Errorf("%w: chain anchor: %v", changelog.ErrCorrupt, err)
		}
		l.mu.anchor = h
	}
	// The chain's head: the last record's hash, or the anchor when every
	// record is purged. A last record without a hash (written before the
	// chain existed) starts the chain anew from the zero hash.
	l.mu.head = l.mu.anchor
	if any {
		if l.mu.head, err = l.recordHash(last); err != nil {
			return err
		}
	}
	floor := cur
	for _, u := range l.mu.users {
		floor = min(floor, u.Index)
	}
	if any && first <= floor {
		// Orphans left by an interrupted purge, or records of a log
		// whose users are all gone.
		anchor, err := l.recordHash(floor)
		if err != nil {
			return err
		}
		if floor > last {
			anchor = l.mu.head
		}
		l.mu.anchor = anchor
		b := l.db.NewBatch()
		defer closeBatch(b)
		mustBatch(b.DeleteRange(l.keys.record(0), l.keys.record(floor+1), nil))
		mustBatch(b.DeleteRange(l.keys.checkpoint(0, 0), l.keys.checkpoint(floor+1, 0), nil))
		if err := l.putState(b, persistState{Current: cur, Purged: floor, LastUserID: l.mu.lastUserID, Anchor: hashText(anchor)}); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("%w: dropping orphan records: %v", changelog.ErrIO, err)
		}
		l.opts.Logger.Info("changelog_orphans_dropped", "device", l.opts.Device, "first", uint64(first), "to", uint64(floor))
	}
	l.mu.purged = floor
	l.purgedA.Store(uint64(floor))
	l.recalcMaskLocked()
	l.dmu.durable = cur
	l.durableA.Store(uint64(cur))
	l.appliedI.Store(uint64(cur))
	return nil
}

// recordHash returns the chain hash stored in record idx: zero for a
// record without one (or none at idx, as below the first record).
func (l *Log) recordHash(idx changelog.Index) (changelog.Hash, error) {
	val, closer, err := l.db.Get(l.keys.record(idx))
	if errors.Is(err, pebble.ErrNotFound) {
		return changelog.Hash{}, nil
	}
	if err != nil {
		return changelog.Hash{}, fmt.Errorf("%w: reading record %d: %v", changelog.ErrIO, idx, err)
	}
	h, _ := changelog.StoredHash(val) // a record without a trailer has the zero hash
	return h, closer.Close()
}

func hashText(h changelog.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

// recordBounds returns the first and last stored record indices.
func (l *Log) recordBounds() (first, last changelog.Index, any bool, err error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: l.keys.record(0), UpperBound: l.keys.recordEnd()})
	if err != nil {
		return 0, 0, false, err
	}
	if it.First() {
		first = l.keys.recordIndex(it.Key())
		if it.Last() {
			last, any = l.keys.recordIndex(it.Key()), true
		}
	}
	if err := it.Close(); err != nil {
		return 0, 0, false, err
	}
	return first, last, any, nil
}

// Close stops the GC loop and the reclaimer (cancelling a compaction in
// progress) and waits for both, and wakes followers. It does not close the
// DB.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	l.closedA.Store(true)
	l.mu.Unlock()
	// Syncs held back are issued now: the DB may close after this.
	l.releaseHeld(true)
	l.cancel()
	close(l.stop)
	l.wg.Wait()
	return nil
}

// Device returns the MDT name.
func (l *Log) Device() string { return l.opts.Device }

// Enabled reports whether a record of type t would be recorded now:
// changelogs are on and t is in the effective mask. It takes no lock.
func (l *Log) Enabled(t changelog.Type) bool {
	g := l.gate.Load()
	return g&(1<<32) != 0 && changelog.Mask(g).Has(t)
}

// EffectiveMask returns the effective mask, or 0 while changelogs are off.
func (l *Log) EffectiveMask() changelog.Mask {
	g := l.gate.Load()
	if g&(1<<32) == 0 {
		return 0
	}
	return changelog.Mask(g)
}

// changedLocked reports a state change to OnStateChange.
func (l *Log) changedLocked(c StateChange) {
	if f := l.opts.OnStateChange; f != nil {
		f(c)
	}
}

func (l *Log) usableLocked() error {
	if l.mu.closed {
		return changelog.ErrClosed
	}
	return l.mu.failed
}

func (l *Log) writeErrorLocked(err error) {
	if f := l.opts.Events.WriteError; f != nil {
		f(err)
	}
}

// State returns a snapshot of positions and masks.
func (l *Log) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked()
}

func (l *Log) stateLocked() State {
	return State{
		Current:   l.mu.current,
		Durable:   l.Durable(),
		First:     l.mu.purged + 1,
		On:        len(l.mu.users) > 0,
		Effective: l.mu.effective,
		Users:     len(l.mu.users),
		Anchor:    changelog.Anchor{Index: l.mu.purged, Hash: l.mu.anchor},
	}
}

// Size estimates the bytes used by retained records and users
// (changelog_size). Pebble's estimate counts flushed tables only, so
// records still in the memtable (all of them, on a server that has not
// flushed since it started) would not count: Lustre's changelog_size
// grows with every record (sanity 254). The estimate is therefore at
// least the retained records times the mean size of the newest records
// (the tail's).
func (l *Log) Size() (uint64, error) {
	disk, err := l.db.EstimateDiskUsage(l.keys.prefix, l.keys.prefixEnd())
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	retained := uint64(l.mu.current - l.mu.purged)
	l.mu.Unlock()
	if est := retained * l.tail.meanSize(); est > disk {
		return est, nil
	}
	return disk, nil
}

func (l *Log) putState(b *pebble.Batch, st persistState) error {
	return l.putJSON(b, l.keys.meta("state"), st)
}

func (l *Log) putStateLocked(b *pebble.Batch) error {
	return l.putState(b, persistState{Current: l.mu.current, Purged: l.mu.purged, LastUserID: l.mu.lastUserID, Anchor: hashText(l.mu.anchor)})
}

func (l *Log) putJSON(b *pebble.Batch, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Set(key, data, nil)
}

func (l *Log) getJSON(key []byte, v any) (bool, error) {
	val, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = json.Unmarshal(val, v)
	if cerr := closer.Close(); cerr != nil {
		return false, cerr
	}
	if err != nil {
		return false, fmt.Errorf("%w: %s: %v", changelog.ErrCorrupt, key, err)
	}
	return true, nil
}

// mustBatch panics if a write to, or the close of, a batch from
// DB.NewBatch failed. Pebble rules both out: it reports errors there only
// from the key index of an indexed batch (the log never indexes its
// batches) and from closing a batch twice (each batch is closed once, by
// its owner). An error means that invariant broke.
func mustBatch(err error) {
	if err != nil {
		panic(fmt.Sprintf("changelog: write to an unindexed pebble batch failed: %v", err))
	}
}

// closeBatch closes b (see mustBatch).
func closeBatch(b *pebble.Batch) { mustBatch(b.Close()) }
