package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// Lustre's defaults for the changelog parameters (mdd_device.c, mdd_internal.h).
const (
	DefaultMaxIdleTime    = 2592000 * time.Second // 30 days
	DefaultMaxIdleIndexes = 2097446912            // about half of a full catalog
	DefaultMinGCInterval  = 3600 * time.Second
	// DefaultMaxRecords is the capacity of a full Lustre catalog
	// (64768 plain logs of 64768 records): the retained-records cap.
	DefaultMaxRecords = 64768 * 64768
	// DefaultCheckpointRecords and DefaultCheckpointInterval: a signed
	// checkpoint every 10,000 records or every minute with new records.
	DefaultCheckpointRecords  = 10000
	DefaultCheckpointInterval = 60 * time.Second
	// idleProductLimit is Lustre's idle_time × idle_indexes bound: 86400 × 2^32.
	idleProductLimit = 86400 << 32
	// DefaultMinFreeCatEntries is changelog_min_free_cat_entries' default.
	DefaultMinFreeCatEntries = 2
	// RecordsPerCatalogEntry is how many records one Lustre catalog entry
	// (a plain llog) holds: changelog_max_records is counted in entries of
	// this size for changelog_min_free_cat_entries.
	RecordsPerCatalogEntry = 64768
)

// Settings are the persistent changelog parameters of one MDT.
type Settings struct {
	// Mask is the server mask (changelog_mask). Default MinMask.
	Mask changelog.Mask `json:"mask"`
	// GC enables idle-user garbage collection (changelog_gc).
	GC bool `json:"gc"`
	// FreeSpaceGC lets a full log evict the most lagging user instead of
	// failing writes (changelog_free_space_gc).
	FreeSpaceGC bool `json:"free_space_gc"`
	// MaxIdleTime (changelog_max_idle_time) and MaxIdleIndexes
	// (changelog_max_idle_indexes) make a user too idle.
	MaxIdleTime    time.Duration `json:"max_idle_time"`
	MaxIdleIndexes uint64        `json:"max_idle_indexes"`
	// MinGCInterval is the least time between two GC checks
	// (changelog_min_gc_interval).
	MinGCInterval time.Duration `json:"min_gc_interval"`
	// MaxRecords caps retained records (changelog_max_records); 0 = no cap.
	MaxRecords uint64 `json:"max_records"`
	// MinFreeCatEntries (changelog_min_free_cat_entries): with space GC on,
	// GC evicts the most lagging user once the free room under MaxRecords
	// is at most this many catalog entries of RecordsPerCatalogEntry.
	MinFreeCatEntries uint32 `json:"min_free_cat_entries"`
	// EnableShardPFID (enable_shard_pfid) is Lustre's switch between the
	// master and the shard FID of a striped directory in p=. fidlog has no
	// striped directories, so p= is the one parent either way; the value
	// is kept for scripts that set it.
	EnableShardPFID bool `json:"enable_shard_pfid"`
	// CheckpointRecords (changelog_checkpoint_records) and
	// CheckpointInterval (changelog_checkpoint_interval, seconds): a signed
	// checkpoint after this many records or this long with new records;
	// 0 turns either trigger off.
	CheckpointRecords  uint64        `json:"checkpoint_records"`
	CheckpointInterval time.Duration `json:"checkpoint_interval"`
}

// DefaultSettings returns Lustre's defaults.
func DefaultSettings() Settings {
	return Settings{
		Mask:           changelog.MinMask,
		GC:             true,
		FreeSpaceGC:    true,
		MaxIdleTime:    DefaultMaxIdleTime,
		MaxIdleIndexes: DefaultMaxIdleIndexes,
		MinGCInterval:  DefaultMinGCInterval,
		MaxRecords:     DefaultMaxRecords,

		MinFreeCatEntries:  DefaultMinFreeCatEntries,
		CheckpointRecords:  DefaultCheckpointRecords,
		CheckpointInterval: DefaultCheckpointInterval,
	}
}

// ParseUint parses a parameter value as the kernel's kstrtou8/16/32/64 do
// for sysfs: an optional '+', then digits in base (0: a C prefix, 0x for
// hex or a leading 0 for octal, else decimal), nothing else. Surrounding
// blanks are ignored. Bad syntax is a *changelog.ParamError (EINVAL); a
// number that does not fit in bits is one with Range set (ERANGE).
func ParseUint(name, value string, base, bits int) (uint64, error) {
	v := strings.TrimSpace(value)
	v = strings.TrimPrefix(v, "+")
	if base == 0 {
		switch {
		case len(v) > 2 && (v[:2] == "0x" || v[:2] == "0X"):
			base, v = 16, v[2:]
		case len(v) > 1 && v[0] == '0':
			base, v = 8, v[1:]
		default:
			base = 10
		}
	}
	if v == "" || v[0] == '+' || v[0] == '-' {
		return 0, &changelog.ParamError{Name: name, Value: value, Reason: "expect an unsigned number"}
	}
	n, err := strconv.ParseUint(v, base, bits)
	if errors.Is(err, strconv.ErrRange) {
		return 0, &changelog.ParamError{Name: name, Value: value, Reason: fmt.Sprintf("does not fit in %d bits", bits), Range: true}
	}
	if err != nil {
		return 0, &changelog.ParamError{Name: name, Value: value, Reason: "expect an unsigned number"}
	}
	return n, nil
}

// ParseInt parses a parameter value as the kernel's kstrtoll(value, 10)
// does: an optional sign, then decimal digits. Errors as ParseUint.
func ParseInt(name, value string) (int64, error) {
	v := strings.TrimSpace(value)
	neg := strings.HasPrefix(v, "-")
	u, err := ParseUint(name, strings.TrimPrefix(v, "-"), 10, 64)
	if err != nil {
		var pe *changelog.ParamError
		if errors.As(err, &pe) {
			pe.Value = value
		}
		return 0, err
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), nil
	case !neg && u <= 1<<63-1:
		return int64(u), nil
	}
	return 0, &changelog.ParamError{Name: name, Value: value, Reason: "does not fit in 64 bits", Range: true}
}

// ParseBool parses a kernel-style boolean: 1/0, y/n, yes/no, on/off,
// true/false (case-insensitive).
func ParseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "y", "yes", "on", "true", "t":
		return true, true
	case "0", "n", "no", "off", "false", "f":
		return false, true
	}
	return false, false
}

// FormatBool prints a boolean parameter as Lustre does: 1 or 0.
func FormatBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// SetParam sets the named parameter in s from its text form, with Lustre's
// accepted ranges. Names are the short parameter names (changelog_gc, ...).
// Mask is not handled here (it needs the relative starting point).
func (s *Settings) SetParam(name, value string) error {
	v := strings.TrimSpace(value)
	bad := func(reason string) error { return &changelog.ParamError{Name: name, Value: value, Reason: reason} }
	outOfRange := func(reason string) error {
		return &changelog.ParamError{Name: name, Value: value, Reason: reason, Range: true}
	}
	// The parsing and range checks are mdd_lproc.c's stores: kstrtoll or
	// kstrtouint in base 10, kstrtoul in any base, then ERANGE below the
	// minimum.
	switch name {
	case "changelog_gc", "changelog_free_space_gc":
		b, ok := ParseBool(v)
		if !ok {
			return bad("expect a boolean (0/1, y/n, on/off, true/false)")
		}
		if name == "changelog_gc" {
			s.GC = b
		} else {
			s.FreeSpaceGC = b
		}
	case "changelog_max_idle_time":
		n, err := ParseInt(name, value)
		if err != nil {
			return err
		}
		if n < 1 || n > 2147483647 {
			return outOfRange("expect seconds in 1..2147483647")
		}
		s.MaxIdleTime = time.Duration(n) * time.Second
	case "changelog_max_idle_indexes":
		n, err := ParseUint(name, value, 0, 64)
		if err != nil {
			return err
		}
		s.MaxIdleIndexes = n
	case "changelog_min_gc_interval":
		n, err := ParseInt(name, value)
		if err != nil {
			return err
		}
		if n < 1 || n > 1<<31-1 {
			// Lustre takes any positive time64_t; fidlog bounds it by
			// what a time.Duration holds (68 years).
			return outOfRange("expect seconds in 1..2147483647")
		}
		s.MinGCInterval = time.Duration(n) * time.Second
	case "changelog_min_free_cat_entries":
		n, err := ParseUint(name, value, 10, 32)
		if err != nil {
			return err
		}
		if n < 1 {
			return outOfRange("expect a number of catalog entries >= 1")
		}
		s.MinFreeCatEntries = uint32(n)
	case "enable_shard_pfid":
		n, err := ParseUint(name, value, 10, 8)
		if err != nil {
			return err
		}
		s.EnableShardPFID = n != 0
	case "changelog_max_records":
		n, err := ParseUint(name, value, 0, 64)
		if err != nil {
			return err
		}
		s.MaxRecords = n
	case "changelog_checkpoint_records":
		n, err := ParseUint(name, value, 0, 64)
		if err != nil {
			return err
		}
		s.CheckpointRecords = n
	case "changelog_checkpoint_interval":
		n, err := ParseUint(name, value, 10, 32)
		if err != nil {
			return err
		}
		s.CheckpointInterval = time.Duration(n) * time.Second
	default:
		return bad("unknown changelog parameter")
	}
	return nil
}

// Param returns the text form of the named parameter.
func (s *Settings) Param(name string) (string, bool) {
	switch name {
	case "changelog_mask":
		return s.Mask.ParamString(), true
	case "changelog_gc":
		return FormatBool(s.GC), true
	case "changelog_free_space_gc":
		return FormatBool(s.FreeSpaceGC), true
	case "changelog_max_idle_time":
		return fmt.Sprint(int64(s.MaxIdleTime / time.Second)), true
	case "changelog_max_idle_indexes":
		return fmt.Sprint(s.MaxIdleIndexes), true
	case "changelog_min_gc_interval":
		return fmt.Sprint(int64(s.MinGCInterval / time.Second)), true
	case "changelog_max_records":
		return fmt.Sprint(s.MaxRecords), true
	case "changelog_min_free_cat_entries":
		return fmt.Sprint(s.MinFreeCatEntries), true
	case "enable_shard_pfid":
		return FormatBool(s.EnableShardPFID), true
	case "changelog_checkpoint_records":
		return fmt.Sprint(s.CheckpointRecords), true
	case "changelog_checkpoint_interval":
		return fmt.Sprint(int64(s.CheckpointInterval / time.Second)), true
	}
	return "", false
}

// ParamNames lists the settings parameters Param and SetParam know.
var ParamNames = []string{
	"changelog_mask", "changelog_gc", "changelog_free_space_gc",
	"changelog_max_idle_time", "changelog_max_idle_indexes",
	"changelog_min_gc_interval", "changelog_max_records",
	"changelog_min_free_cat_entries", "enable_shard_pfid",
	"changelog_checkpoint_records", "changelog_checkpoint_interval",
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
	defer closeBatch(b)
	if err := l.putJSON(b, l.keys.meta("settings"), s); err != nil {
		return 0, err
	}
	seq, err := l.commitLocked(b)
	if err != nil {
		return 0, err
	}
	l.mu.settings = s
	l.recalcMaskLocked()
	if l.hasKey.Load() {
		// The checkpointer rereads its interval.
		select {
		case l.ckKick <- struct{}{}:
		default:
		}
	}
	return seq, nil
}

// SetMask sets the server mask (changelog_mask) from Lustre's mask syntax.
// A relative string starts from the current server mask, or from DefMask
// when the server mask is exactly MinMask. A bad string changes nothing.
func (l *Log) SetMask(text string) (changelog.Mask, error) {
	var out changelog.Mask
	err := l.UpdateSettings(func(s *Settings) error {
		rel := s.Mask
		if rel == changelog.MinMask {
			rel = changelog.DefMask
		}
		m, err := changelog.ParseMask(text, rel)
		if err != nil {
			return err
		}
		s.Mask, out = m, m
		return nil
	})
	return out, err
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
		case srv == changelog.MinMask:
			eff |= changelog.DefMask
		}
	}
	l.mu.effective = eff
	g := uint64(eff)
	if len(l.mu.users) > 0 {
		g |= 1 << 32
	}
	l.gate.Store(g)
}
