package store

import (
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// tooIdle is Lustre's mdd_changelog_is_too_idle.
func tooIdle(s *Settings, cur changelog.Index, u *changelog.User, now time.Time) bool {
	if u.Index >= cur {
		return false
	}
	idx := uint64(cur - u.Index)
	secs := max(int64(now.Sub(u.Time)/time.Second), 0)
	if idx > s.MaxIdleIndexes || time.Duration(secs)*time.Second > s.MaxIdleTime {
		return true
	}
	// idle_time × idle_indexes > 86400 × 2^32, without overflow.
	return secs > 0 && idx > idleProductLimit/uint64(secs)
}

// Eviction reasons, as EventListener.UserEvicted and EvictedError give
// them.
const (
	// EvictIdle: too idle by Lustre's rules (changelog_max_idle_time,
	// changelog_max_idle_indexes or their product).
	EvictIdle = "idle"
	// EvictCapacity: the most lagging user, evicted to make room under
	// changelog_max_records (or changelog_min_free_cat_entries).
	EvictCapacity = "capacity"
)

// EvictReasons lists every eviction reason.
var EvictReasons = []string{EvictIdle, EvictCapacity}

// victimRule says which users GC may evict.
type victimRule uint8

const (
	// tooIdleOnly: users too idle by Lustre's rules (idle GC).
	tooIdleOnly victimRule = iota
	// anyLagging: any user behind the current index (capacity and
	// emergency GC).
	anyLagging
)

// victimLocked picks the user GC would evict: among users behind the
// current index (caught-up users are never evicted) that rule allows, the
// one with the smallest index.
func (l *Log) victimLocked(rule victimRule) *changelog.User {
	now := l.opts.Clock()
	var v *changelog.User
	for _, u := range l.mu.users {
		if u.Index >= l.mu.current {
			continue
		}
		if rule == tooIdleOnly && !tooIdle(&l.mu.settings, l.mu.current, u, now) {
			continue
		}
		if v == nil || u.Index < v.Index {
			v = u
		}
	}
	return v
}

// evictLocked force-deregisters u and remembers why.
func (l *Log) evictLocked(u *changelog.User, reason string) (uint64, error) {
	unprocessed := uint64(l.mu.current - u.Index)
	now := l.opts.Clock()
	ev := &changelog.EvictedError{User: u.DisplayName(), Reason: reason, At: now.Unix(), Index: u.Index, Unprocessed: unprocessed}
	seq, err := l.removeUserLocked(u, ev)
	if err != nil {
		return 0, err
	}
	l.opts.Logger.Warn("changelog_user_evicted", "device", l.opts.Device, "user", u.DisplayName(),
		"reason", reason, "idle_seconds", int64(now.Sub(u.Time)/time.Second), "unprocessed", unprocessed)
	if f := l.opts.Events.UserEvicted; f != nil {
		f(*u, reason, unprocessed)
	}
	return seq, nil
}

// makeRoomLocked ensures n more records fit under MaxRecords, evicting the
// most lagging users when space GC is on. Eviction batches commit before
// the caller's batch and are synced with it.
func (l *Log) makeRoomLocked(n uint64) error {
	s := &l.mu.settings
	for {
		retained := uint64(l.mu.current - l.mu.purged)
		if retained+n <= s.MaxRecords {
			return nil
		}
		var v *changelog.User
		if s.GC && s.FreeSpaceGC {
			v = l.victimLocked(anyLagging)
		}
		if v == nil {
			return &changelog.NoSpaceError{Retained: retained, Cap: s.MaxRecords}
		}
		if _, err := l.evictLocked(v, EvictCapacity); err != nil {
			return err
		}
	}
}

// lowOnEntriesLocked reports Lustre's emergency condition for space GC:
// the room left under MaxRecords is at most MinFreeCatEntries catalog
// entries (mdd_changelog_store: "changelog has only N free catalog
// entries").
func (l *Log) lowOnEntriesLocked() bool {
	s := &l.mu.settings
	// A cap smaller than the reserve (fidlog's own small caps) leaves the
	// rule out: the cap itself is enforced by makeRoomLocked.
	if !s.FreeSpaceGC || s.MaxRecords/RecordsPerCatalogEntry <= uint64(s.MinFreeCatEntries) {
		return false
	}
	retained := uint64(l.mu.current - l.mu.purged)
	free := uint64(0)
	if retained < s.MaxRecords {
		free = (s.MaxRecords - retained) / RecordsPerCatalogEntry
	}
	return free <= uint64(s.MinFreeCatEntries)
}

// maybeKickGCLocked runs Lustre's GC trigger after records are written: at
// most once per MinGCInterval (the first write after start always checks),
// wake the GC goroutine if the most idle user is too idle, or, with space
// GC on, if the free catalog entries are down to MinFreeCatEntries (then
// the most lagging user goes, idle or not, one per trigger as in Lustre).
func (l *Log) maybeKickGCLocked() {
	s := &l.mu.settings
	if !s.GC {
		return
	}
	now := l.opts.Clock()
	switch {
	case l.diskLowLocked(now): // its own pace: at most once a second
		l.mu.emergency = true
	case !l.mu.lastGCChk.IsZero() && now.Sub(l.mu.lastGCChk) <= s.MinGCInterval:
		return
	default:
		l.mu.lastGCChk = now
		if !l.mu.emergency && l.lowOnEntriesLocked() && l.victimLocked(anyLagging) != nil {
			l.opts.Logger.Warn("changelog_low_on_catalog_entries", "device", l.opts.Device,
				"min_free_cat_entries", s.MinFreeCatEntries)
			l.mu.emergency = true
		}
	}
	if l.mu.emergency || l.victimLocked(tooIdleOnly) != nil {
		select {
		case l.gcKick <- struct{}{}:
		default:
		}
	}
}

// diskLowLocked is fidlog's own space GC trigger, checked at most once a
// second: the file system holding the log is nearly full
// (Options.DiskLow), a user holds records, and the retained records take
// at least Options.DiskLowMinBytes on disk, so that evicting their
// laggard gives back space that matters (a disk filled by file data keeps
// its consumers). Lustre's trigger counts catalog entries only; a log on
// a file system shared with the namespace runs out of disk first.
func (l *Log) diskLowLocked(now time.Time) bool {
	s := &l.mu.settings
	if l.opts.DiskLow == nil || !s.FreeSpaceGC || l.mu.emergency || now.Sub(l.mu.lastDiskChk) < time.Second {
		return false
	}
	l.mu.lastDiskChk = now
	if !l.opts.DiskLow() || l.victimLocked(anyLagging) == nil {
		return false
	}
	used, err := l.db.EstimateDiskUsage(l.keys.record(l.mu.purged+1), l.keys.recordEnd())
	if err != nil || used < l.opts.DiskLowMinBytes {
		return false
	}
	l.opts.Logger.Warn("changelog_disk_low", "device", l.opts.Device, "records_bytes", used,
		"action", "evicting the most lagging changelog user: the disk is nearly full")
	return true
}

// RunGC evicts every too-idle user now, as the GC thread does, and returns
// how many were evicted.
func (l *Log) RunGC() (int, error) {
	n := 0
	for {
		seq, err := l.gcOnce()
		if err != nil || seq == 0 {
			return n, err
		}
		if err := l.syncTo(seq); err != nil {
			return n, err
		}
		n++
	}
}

// gcOnce evicts the most idle too-idle user, if any; seq 0 means none.
func (l *Log) gcOnce() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil || !l.mu.settings.GC {
		return 0, err
	}
	if l.mu.emergency {
		// At most one user is removed for space per emergency.
		l.mu.emergency = false
		if v := l.victimLocked(anyLagging); v != nil {
			return l.evictLocked(v, EvictCapacity)
		}
	}
	v := l.victimLocked(tooIdleOnly)
	if v == nil {
		return 0, nil
	}
	return l.evictLocked(v, EvictIdle)
}

func (l *Log) gcLoop() {
	for {
		select {
		case <-l.stop:
			return
		case <-l.gcKick:
			if _, err := l.RunGC(); err != nil {
				l.opts.Logger.Error("changelog_gc_failed", "device", l.opts.Device, "err", err)
			}
		}
	}
}
