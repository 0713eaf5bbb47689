package changelog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
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
	// Events are optional callbacks (metrics, logs). They run with the
	// log's lock held and must not call back into the Log.
	Events EventListener
	// Defaults are the settings of a log that has none stored yet;
	// default DefaultSettings().
	Defaults *Settings
	// MaxEvicted bounds the remembered evictions (default 1024).
	MaxEvicted int
}

// EventListener holds optional callbacks for things worth logging or
// counting. Any field may be nil.
type EventListener struct {
	ChangelogOn      func()
	ChangelogOff     func()
	UserRegistered   func(u User)
	UserDeregistered func(u User)
	UserEvicted      func(u User, reason string, unprocessed uint64)
	Purged           func(from, to Index)
	Appended         func(recs []*Record)
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
	Current Index
	// Durable is the highest index known synced; readers stop there.
	Durable Index
	// First is the lowest retained index (Purged+1); First > Current means
	// the log is empty.
	First Index
	// On is true while at least one user is registered.
	On bool
	// Effective is the mask records are filtered by (changelog_current_mask).
	Effective Mask
	// Users is the number of registered users.
	Users int
}

type persistState struct {
	Current    Index  `json:"current"`
	Purged     Index  `json:"purged"`
	LastUserID uint32 `json:"last_user_id"`
}

// Log is a changelog on Pebble: a sequencer that assigns contiguous indices
// in commit order, a durable watermark, registered users, purge and GC.
type Log struct {
	db   *pebble.DB
	opts Options
	keys keyspace

	mu struct {
		sync.Mutex
		current    Index
		purged     Index
		lastUserID uint32
		users      []*User // by ID
		evicted    map[uint32]*EvictedError
		settings   Settings
		effective  Mask
		failed     error
		seq        uint64 // batches applied
		lastGCChk  time.Time
		closed     bool
	}

	gate     atomic.Uint64 // bit 32: on; low bits: effective mask
	epoch    atomic.Uint64 // time-record dedup restart point
	applied  atomic.Uint64 // highest seq whose batch is applied
	appliedI atomic.Uint64 // highest index whose batch is applied
	syncSeq  atomic.Uint64 // highest seq known synced

	dmu struct {
		sync.Mutex
		durable Index
		ch      chan struct{} // closed and replaced when durable advances
	}

	gcKick      chan struct{}
	compactKick chan struct{}
	// compactFrom is the purge floor already compacted (reclaimer only).
	compactFrom atomic.Uint64
	stop        chan struct{}
	wg          sync.WaitGroup
}

// Open opens the changelog kept in db under opts.KeyPrefix. db stays owned
// by the caller and must outlive the Log. Open drops orphan records below
// the lowest user point (all records when no user is registered).
func Open(db *pebble.DB, opts *Options) (*Log, error) {
	o := *opts.EnsureDefaults()
	l := &Log{db: db, opts: o, keys: keyspace{prefix: o.KeyPrefix}, gcKick: make(chan struct{}, 1),
		compactKick: make(chan struct{}, 1), stop: make(chan struct{})}
	l.dmu.ch = make(chan struct{})
	if err := l.load(); err != nil {
		return nil, err
	}
	l.compactFrom.Store(uint64(l.mu.purged))
	l.wg.Add(2)
	go func() { defer l.wg.Done(); l.gcLoop() }()
	go func() { defer l.wg.Done(); l.reclaimLoop() }()
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
	l.mu.evicted = map[uint32]*EvictedError{}

	// Users.
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: l.keys.userPrefix(), UpperBound: l.keys.userEnd()})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		u := new(User)
		if err := json.Unmarshal(it.Value(), u); err != nil {
			it.Close()
			return fmt.Errorf("%w: user record %x: %v", ErrCorrupt, it.Key(), err)
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
		e := new(EvictedError)
		if err := json.Unmarshal(it.Value(), e); err == nil {
			l.mu.evicted[binary.BigEndian.Uint32(it.Key()[len(it.Key())-4:])] = e
		}
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
	floor := cur
	for _, u := range l.mu.users {
		floor = min(floor, u.Index)
	}
	if any && first <= floor {
		// Orphans left by an interrupted purge, or records of a log
		// whose users are all gone.
		b := l.db.NewBatch()
		_ = b.DeleteRange(l.keys.record(0), l.keys.record(floor+1), nil)
		if err := l.putState(b, persistState{Current: cur, Purged: floor, LastUserID: l.mu.lastUserID}); err != nil {
			b.Close()
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("%w: dropping orphan records: %v", ErrIO, err)
		}
		l.opts.Logger.Info("changelog_orphans_dropped", "device", l.opts.Device, "first", uint64(first), "to", uint64(floor))
	}
	l.mu.purged = floor
	l.recalcMaskLocked()
	l.dmu.durable = cur
	l.appliedI.Store(uint64(cur))
	return nil
}

// recordBounds returns the first and last stored record indices.
func (l *Log) recordBounds() (first, last Index, any bool, err error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: l.keys.record(0), UpperBound: l.keys.recordEnd()})
	if err != nil {
		return 0, 0, false, err
	}
	defer it.Close()
	if !it.First() {
		return 0, 0, false, it.Error()
	}
	first = l.keys.recordIndex(it.Key())
	it.Last()
	last = l.keys.recordIndex(it.Key())
	return first, last, true, it.Error()
}

// Close stops the GC goroutine and wakes followers. It does not close the DB.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	return nil
}

// Device returns the MDT name.
func (l *Log) Device() string { return l.opts.Device }

// Enabled reports whether a record of type t would be recorded now:
// changelogs are on and t is in the effective mask. It takes no lock.
func (l *Log) Enabled(t Type) bool {
	g := l.gate.Load()
	return g&(1<<32) != 0 && Mask(g).Has(t)
}

// EffectiveMask returns the effective mask, or 0 while changelogs are off.
func (l *Log) EffectiveMask() Mask {
	g := l.gate.Load()
	if g&(1<<32) == 0 {
		return 0
	}
	return Mask(g)
}

// Epoch returns the time-record dedup restart point: it changes whenever
// changelogs turn on or off and whenever a clear purges records. MTIME,
// CTIME and ATIME are not recorded for an object that already had a record
// in the current epoch.
func (l *Log) Epoch() uint64 { return l.epoch.Load() }

// Pending is a batch applied (visible, indices assigned) but not yet known
// durable. Wait makes it durable.
type Pending struct {
	l     *Log
	seq   uint64
	First Index // first index assigned, 0 if no record was kept
	Last  Index // last index assigned, 0 if no record was kept
}

// Apply commits b together with recs as one atomic batch, without waiting
// for the WAL sync. Records whose type is not in the effective mask, or all
// records while changelogs are off, are dropped (their Index stays 0); kept
// records get contiguous indices in commit order and their Time is set if
// zero. On error nothing of b is committed; the caller still owns b and
// must Close it. On success b is consumed by the commit (the caller may
// Close it). Call Wait before acknowledging the operation.
//
// The log's lock is held only for the in-memory part of the commit, never
// across an fsync.
func (l *Log) Apply(b *pebble.Batch, recs []*Record) (*Pending, error) {
	now := l.opts.Clock()
	// Encode outside the lock; the index is patched in under it.
	var bufs [][]byte
	if l.gate.Load()&(1<<32) != 0 && len(recs) > 0 {
		bufs = make([][]byte, len(recs))
		for i, r := range recs {
			if r.Time.IsZero() {
				r.Time = now
			}
			if len(r.JobID) > MaxJobID {
				r.JobID = r.JobID[:MaxJobID]
			}
			bufs[i] = Encode(r)
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return nil, err
	}
	keep := 0
	on := len(l.mu.users) > 0
	if on && bufs != nil {
		for _, r := range recs {
			if l.mu.effective.Has(r.Type) {
				keep++
			}
		}
	}
	if keep > 0 && l.mu.settings.MaxRecords > 0 {
		if err := l.makeRoomLocked(uint64(keep)); err != nil {
			return nil, err
		}
		if len(l.mu.users) == 0 {
			// Making room evicted every user: changelogs are off now,
			// so nothing is recorded and the index does not move.
			keep = 0
		}
	}
	p := &Pending{l: l}
	idx := l.mu.current
	var kept []*Record
	if keep > 0 {
		kept = make([]*Record, 0, keep)
		for i, r := range recs {
			if !l.mu.effective.Has(r.Type) {
				r.Index = 0
				continue
			}
			idx++
			r.Index = idx
			setIndex(bufs[i], idx)
			if err := b.Set(l.keys.record(idx), bufs[i], nil); err != nil {
				return nil, err
			}
			kept = append(kept, r)
		}
		p.First, p.Last = l.mu.current+1, idx
	} else {
		for _, r := range recs {
			r.Index = 0
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		l.writeErrorLocked(err)
		return nil, fmt.Errorf("%w: commit: %v", ErrIO, err)
	}
	l.mu.current = idx
	l.mu.seq++
	p.seq = l.mu.seq
	l.appliedI.Store(uint64(idx))
	l.applied.Store(p.seq)
	if len(kept) > 0 {
		if f := l.opts.Events.Appended; f != nil {
			f(kept)
		}
		l.maybeKickGCLocked()
	}
	return p, nil
}

// Wait returns once the batch of p is durable (group commit: concurrent
// waiters share fsyncs, and a sync issued for a later batch covers p).
func (p *Pending) Wait() error { return p.l.syncTo(p.seq) }

// Commit is Apply followed by Wait.
func (l *Log) Commit(b *pebble.Batch, recs []*Record) (*Pending, error) {
	p, err := l.Apply(b, recs)
	if err != nil {
		return nil, err
	}
	return p, p.Wait()
}

func (l *Log) usableLocked() error {
	if l.mu.closed {
		return ErrClosed
	}
	return l.mu.failed
}

func (l *Log) writeErrorLocked(err error) {
	if f := l.opts.Events.WriteError; f != nil {
		f(err)
	}
}

// syncTo makes every batch up to seq durable and publishes the durable
// watermark. The WAL is written in commit order, which is index order, so
// one sync covers every batch applied before it was issued.
func (l *Log) syncTo(seq uint64) error {
	if l.syncSeq.Load() >= seq {
		return nil
	}
	// Everything applied so far is covered by the sync below.
	s := l.applied.Load()
	idx := Index(l.appliedI.Load())
	if err := l.db.LogData(nil, pebble.Sync); err != nil {
		l.mu.Lock()
		if l.mu.failed == nil {
			l.mu.failed = fmt.Errorf("%w: wal sync: %v", ErrIO, err)
		}
		l.writeErrorLocked(err)
		l.mu.Unlock()
		return fmt.Errorf("%w: wal sync: %v", ErrIO, err)
	}
	for {
		old := l.syncSeq.Load()
		if old >= s || l.syncSeq.CompareAndSwap(old, s) {
			break
		}
	}
	l.publishDurable(idx)
	return nil
}

func (l *Log) publishDurable(idx Index) {
	l.dmu.Lock()
	if idx > l.dmu.durable {
		l.dmu.durable = idx
		close(l.dmu.ch)
		l.dmu.ch = make(chan struct{})
	}
	l.dmu.Unlock()
}

// Durable returns the durable watermark: every record up to it is synced.
func (l *Log) Durable() Index {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	return l.dmu.durable
}

// WaitDurable blocks until the durable watermark passes after, the context
// ends, or the log closes. It returns the watermark. Followers are woken by
// commits; there is no polling.
func (l *Log) WaitDurable(ctx context.Context, after Index) (Index, error) {
	for {
		l.dmu.Lock()
		d, ch := l.dmu.durable, l.dmu.ch
		l.dmu.Unlock()
		if d > after {
			return d, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return d, ctx.Err()
		case <-l.stop:
			return d, ErrClosed
		}
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
	}
}

// Size estimates the bytes used by retained records and users
// (changelog_size).
func (l *Log) Size() (uint64, error) {
	return l.db.EstimateDiskUsage(l.keys.prefix, l.keys.prefixEnd())
}

// Settings returns the current settings.
func (l *Log) Settings() Settings {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.settings
}

// UpdateSettings applies fn to a copy of the settings and, if fn succeeds,
// persists the result durably and recalculates the effective mask. If fn
// fails nothing changes.
func (l *Log) UpdateSettings(fn func(s *Settings) error) error {
	seq, err := l.updateSettings(fn)
	if err != nil {
		return err
	}
	return l.syncTo(seq)
}

func (l *Log) updateSettings(fn func(s *Settings) error) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	s := l.mu.settings
	if err := fn(&s); err != nil {
		return 0, err
	}
	b := l.db.NewBatch()
	defer b.Close()
	if err := l.putJSON(b, l.keys.meta("settings"), s); err != nil {
		return 0, err
	}
	seq, err := l.commitLocked(b)
	if err != nil {
		return 0, err
	}
	l.mu.settings = s
	l.recalcMaskLocked()
	return seq, nil
}

// SetMask sets the server mask (changelog_mask) from Lustre's mask syntax.
// A relative string starts from the current server mask, or from DefMask
// when the server mask is exactly MinMask. A bad string changes nothing.
func (l *Log) SetMask(text string) (Mask, error) {
	var out Mask
	err := l.UpdateSettings(func(s *Settings) error {
		rel := s.Mask
		if rel == MinMask {
			rel = DefMask
		}
		m, err := ParseMask(text, rel)
		if err != nil {
			return err
		}
		s.Mask, out = m, m
		return nil
	})
	return out, err
}

// commitLocked applies a batch with no records (users, settings, purge) in
// commit order; the caller syncs after unlocking.
func (l *Log) commitLocked(b *pebble.Batch) (uint64, error) {
	if err := b.Commit(pebble.NoSync); err != nil {
		l.writeErrorLocked(err)
		return 0, fmt.Errorf("%w: commit: %v", ErrIO, err)
	}
	l.mu.seq++
	l.applied.Store(l.mu.seq)
	return l.mu.seq, nil
}

// recalcMaskLocked recomputes the effective mask (mdd_changelog_recalc_mask):
// the server mask, plus each user's stored mask, plus DefMask for each
// maskless user while the server mask is MinMask.
func (l *Log) recalcMaskLocked() {
	srv := l.mu.settings.Mask
	eff := srv
	for _, u := range l.mu.users {
		switch {
		case u.Mask != 0:
			eff |= u.Mask
		case srv == MinMask:
			eff |= DefMask
		}
	}
	l.mu.effective = eff
	g := uint64(eff)
	if len(l.mu.users) > 0 {
		g |= 1 << 32
	}
	l.gate.Store(g)
}

func (l *Log) putState(b *pebble.Batch, st persistState) error {
	return l.putJSON(b, l.keys.meta("state"), st)
}

func (l *Log) putStateLocked(b *pebble.Batch) error {
	return l.putState(b, persistState{Current: l.mu.current, Purged: l.mu.purged, LastUserID: l.mu.lastUserID})
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
	defer closer.Close()
	if err := json.Unmarshal(val, v); err != nil {
		return false, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
	}
	return true, nil
}

// purgeLocked adds to b the deletion of every record up to the lowest user
// point: one DeleteRange over [old floor+1, new floor+1), never overlapping
// an earlier one. With no user left everything up to current goes.
func (l *Log) purgeLocked(b *pebble.Batch) error {
	floor := l.mu.current
	for _, u := range l.mu.users {
		floor = min(floor, u.Index)
	}
	if floor <= l.mu.purged {
		return nil
	}
	if floor == math.MaxUint64 {
		floor--
	}
	if err := b.DeleteRange(l.keys.record(l.mu.purged+1), l.keys.record(floor+1), nil); err != nil {
		return err
	}
	if f := l.opts.Events.Purged; f != nil {
		f(l.mu.purged+1, floor)
	}
	l.mu.purged = floor
	l.epoch.Add(1)
	if uint64(floor)-l.compactFrom.Load() >= reclaimThreshold {
		select {
		case l.compactKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// reclaimThreshold is how many purged records make the reclaimer compact
// the purged span.
const reclaimThreshold = 4096

// reclaimDelay coalesces a burst of purges into one compaction (Compact
// flushes the memtable holding the range tombstone itself).
const reclaimDelay = 100 * time.Millisecond

// reclaimLoop gives disk space back after large purges. Pebble drops
// sstables that a range deletion covers entirely, but the files at the
// edges of the record keyspace also hold neighbouring keys (users, meta,
// namespace) and would keep the purged records' bytes indefinitely; a
// compaction of the purged span rewrites just those.
func (l *Log) reclaimLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-l.stop
		cancel()
	}()
	for {
		select {
		case <-l.stop:
			return
		case <-l.compactKick:
		}
		select {
		case <-l.stop:
			return
		case <-time.After(reclaimDelay):
		}
		l.mu.Lock()
		to := l.mu.purged
		l.mu.Unlock()
		from := Index(l.compactFrom.Load())
		if to <= from {
			continue
		}
		if err := l.db.Compact(ctx, l.keys.record(from), l.keys.record(to+1), false); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.opts.Logger.Warn("changelog_reclaim_failed", "device", l.opts.Device, "err", err)
			continue
		}
		l.compactFrom.Store(uint64(to))
	}
}

// keyspace builds the log's keys under its prefix.
type keyspace struct{ prefix []byte }

const (
	ksRecord = 'r'
	ksUser   = 'u'
	ksEvict  = 'e'
	ksMeta   = 'm'
)

func (k keyspace) sub(c byte, n int) []byte {
	b := make([]byte, 0, len(k.prefix)+1+n)
	b = append(b, k.prefix...)
	return append(b, c)
}

func (k keyspace) record(idx Index) []byte {
	return binary.BigEndian.AppendUint64(k.sub(ksRecord, 8), uint64(idx))
}
func (k keyspace) recordEnd() []byte { return k.sub(ksRecord+1, 0) }
func (k keyspace) recordIndex(key []byte) Index {
	return Index(binary.BigEndian.Uint64(key[len(key)-8:]))
}
func (k keyspace) user(id uint32) []byte {
	return binary.BigEndian.AppendUint32(k.sub(ksUser, 4), id)
}
func (k keyspace) userPrefix() []byte { return k.sub(ksUser, 0) }
func (k keyspace) userEnd() []byte    { return k.sub(ksUser+1, 0) }
func (k keyspace) evict(id uint32) []byte {
	return binary.BigEndian.AppendUint32(k.sub(ksEvict, 4), id)
}
func (k keyspace) evictPrefix() []byte { return k.sub(ksEvict, 0) }
func (k keyspace) evictEnd() []byte    { return k.sub(ksEvict+1, 0) }
func (k keyspace) meta(name string) []byte {
	return append(k.sub(ksMeta, len(name)), name...)
}
func (k keyspace) prefixEnd() []byte {
	e := append([]byte(nil), k.prefix...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return append(e, 0xff)
}
