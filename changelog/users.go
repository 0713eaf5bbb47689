package changelog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxUserName is the longest user name accepted at registration.
const MaxUserName = 16

// User is a registered changelog consumer.
type User struct {
	// ID is the number in "cl<ID>"; never reused on this MDT.
	ID uint32 `json:"id"`
	// Name is the optional name given at registration.
	Name string `json:"name,omitempty"`
	// Mask is the per-user mask fixed at registration; 0 means maskless.
	Mask Mask `json:"mask,omitempty"`
	// Index is the last record the user cleared.
	Index Index `json:"index"`
	// Time is the time of the last successful clear or the registration.
	Time time.Time `json:"time"`
}

// DisplayName returns "cl<ID>" or "cl<ID>-<name>".
func (u User) DisplayName() string {
	if u.Name != "" {
		return fmt.Sprintf("cl%d-%s", u.ID, u.Name)
	}
	return fmt.Sprintf("cl%d", u.ID)
}

// ParseUserID parses the ways a user is named by number: "1", "cl1" and
// "cl1-anything" (only the number counts).
func ParseUserID(s string) (uint32, bool) {
	t := s
	if strings.HasPrefix(t, "cl") {
		t = t[2:]
		if i := strings.IndexByte(t, '-'); i >= 0 {
			t = t[:i]
		}
	}
	if t == "" || t[0] < '0' || t[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// ValidateUserName checks Lustre's name rules: a letter first, then
// letters, digits, '_' or '-'; at most MaxUserName characters.
//
// Deliberate difference from Lustre: a 16-character name is stored whole
// (Lustre checks for 16 but silently stores 15 while lctl prints all 16).
func ValidateUserName(name string) error {
	if len(name) > MaxUserName {
		return &UserError{User: name, Err: ErrNameTooLong}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter || i > 0 && !letter && !(c >= '0' && c <= '9') && c != '_' && c != '-' {
			return &UserError{User: name, Err: ErrBadUser}
		}
	}
	if name == "" {
		return &UserError{User: name, Err: ErrBadUser}
	}
	return nil
}

// RegisterOptions are the optional parts of a registration.
type RegisterOptions struct {
	// Name gives the display name cl<ID>-<Name>.
	Name string
	// Mask, if HasMask, is parsed with MinMask as the absolute start and
	// DefMask as the relative start.
	Mask    string
	HasMask bool
}

// Register adds a user whose point is the current index. IDs are assigned
// only after the name and mask are valid, so a failed registration leaves
// no gap (Lustre consumes an ID first). Registering the first user turns
// changelogs on.
func (l *Log) Register(opts RegisterOptions) (User, error) {
	if opts.Name != "" {
		if err := ValidateUserName(opts.Name); err != nil {
			return User{}, err
		}
	}
	var mask Mask
	if opts.HasMask {
		m, err := ParseMask(opts.Mask, DefMask)
		if err != nil {
			return User{}, err
		}
		mask = m
	}
	out, seq, err := l.register(opts, mask)
	if err != nil {
		return User{}, err
	}
	return out, l.syncTo(seq)
}

func (l *Log) register(opts RegisterOptions, mask Mask) (User, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return User{}, 0, err
	}
	if opts.Name != "" {
		for _, u := range l.mu.users {
			if u.Name == opts.Name {
				return User{}, 0, &UserError{User: opts.Name, Err: ErrUserExists}
			}
		}
	}
	if l.mu.lastUserID == ^uint32(0) {
		return User{}, 0, ErrTooManyUsers
	}
	u := &User{ID: l.mu.lastUserID + 1, Name: opts.Name, Mask: mask, Index: l.mu.current, Time: l.opts.Clock()}
	b := l.db.NewBatch()
	defer b.Close()
	l.mu.lastUserID++
	err := l.putJSON(b, l.keys.user(u.ID), u)
	if err == nil {
		err = l.putStateLocked(b)
	}
	var seq uint64
	if err == nil {
		seq, err = l.commitLocked(b)
	}
	if err != nil {
		l.mu.lastUserID--
		return User{}, 0, err
	}
	wasOff := len(l.mu.users) == 0
	l.mu.users = append(l.mu.users, u)
	l.recalcMaskLocked()
	if wasOff {
		l.epoch.Add(1)
		l.opts.Logger.Info("changelog_on", "device", l.opts.Device)
		if f := l.opts.Events.ChangelogOn; f != nil {
			f()
		}
	}
	if f := l.opts.Events.UserRegistered; f != nil {
		f(*u)
	}
	return *u, seq, nil
}

// findUserLocked resolves a user reference: "1", "cl1" or "cl1-x" select by
// ID; any other string selects by name when byName is set.
func (l *Log) findUserLocked(ref string, byName bool) (*User, error) {
	if id, ok := ParseUserID(ref); ok {
		for _, u := range l.mu.users {
			if u.ID == id {
				return u, nil
			}
		}
		if e, ok := l.mu.evicted[id]; ok {
			return nil, e
		}
		return nil, &UserError{User: ref, Err: ErrUnknownUser}
	}
	if !byName || ref == "" {
		return nil, &UserError{User: ref, Err: ErrBadUser}
	}
	for _, u := range l.mu.users {
		if u.Name == ref {
			return u, nil
		}
	}
	for _, e := range l.mu.evicted {
		if strings.HasSuffix(e.User, "-"+ref) {
			return nil, e
		}
	}
	return nil, &UserError{User: ref, Err: ErrUnknownUser}
}

// User returns the registered user ref names (by ID forms or by name). An
// evicted user gives an *EvictedError.
func (l *Log) User(ref string) (User, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, err := l.findUserLocked(ref, true)
	if err != nil {
		return User{}, err
	}
	return *u, nil
}

// Users returns the registered users in registration order.
func (l *Log) Users() []User {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]User, len(l.mu.users))
	for i, u := range l.mu.users {
		out[i] = *u
	}
	return out
}

// UsersText renders the changelog_users parameter:
//
//	current_index: 144
//	ID                            index (idle) mask
//	cl1                             144 (2) mask=MARK,UNLNK,OPEN,CLOSE
func (l *Log) UsersText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Clock()
	var b strings.Builder
	fmt.Fprintf(&b, "current_index: %d\n", l.mu.current)
	fmt.Fprintf(&b, "%-24s %10s %s %s\n", "ID", "index", "(idle)", "mask")
	for _, u := range l.mu.users {
		idle := max(int64(now.Sub(u.Time)/time.Second), 0)
		fmt.Fprintf(&b, "%-24s %10d (%d)", u.DisplayName(), u.Index, uint32(idle))
		if u.Mask != 0 {
			b.WriteString(" mask=")
			b.WriteString(u.Mask.String())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Deregister removes a user: its records are released, records up to the
// lowest remaining point are purged in the same batch, the effective mask is
// recalculated, and changelogs turn off when no user remains. ref is "1",
// "cl1", "cl1-x", or (when byName) a name.
func (l *Log) Deregister(ref string, byName bool) (User, error) {
	u, seq, err := l.deregister(ref, byName)
	if err != nil {
		return User{}, err
	}
	return u, l.syncTo(seq)
}

func (l *Log) deregister(ref string, byName bool) (User, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return User{}, 0, err
	}
	u, err := l.findUserLocked(ref, byName)
	if err != nil {
		return User{}, 0, err
	}
	seq, err := l.removeUserLocked(u, nil)
	if err != nil {
		return User{}, 0, err
	}
	return *u, seq, nil
}

// removeUserLocked deletes u (and, for an eviction, records the fact) and
// purges, in one batch.
func (l *Log) removeUserLocked(u *User, ev *EvictedError) (uint64, error) {
	b := l.db.NewBatch()
	defer b.Close()
	if err := b.Delete(l.keys.user(u.ID), nil); err != nil {
		return 0, err
	}
	i := slices.Index(l.mu.users, u)
	users := slices.Delete(slices.Clone(l.mu.users), i, i+1)
	oldUsers, oldPurged, oldEvicted := l.mu.users, l.mu.purged, l.mu.evicted
	l.mu.users = users
	if err := l.purgeLocked(b); err != nil {
		l.mu.users, l.mu.purged = oldUsers, oldPurged
		return 0, err
	}
	if ev != nil {
		if err := l.putJSON(b, l.keys.evict(u.ID), ev); err != nil {
			return 0, err
		}
		l.mu.evicted = make(map[uint32]*EvictedError, len(oldEvicted)+1)
		for k, v := range oldEvicted {
			l.mu.evicted[k] = v
		}
		l.mu.evicted[u.ID] = ev
		for len(l.mu.evicted) > l.opts.MaxEvicted {
			oldest := ^uint32(0)
			for k := range l.mu.evicted {
				oldest = min(oldest, k)
			}
			delete(l.mu.evicted, oldest)
			_ = b.Delete(l.keys.evict(oldest), nil)
		}
	}
	if err := l.putStateLocked(b); err != nil {
		return 0, err
	}
	seq, err := l.commitLocked(b)
	if err != nil {
		l.mu.users, l.mu.purged, l.mu.evicted = oldUsers, oldPurged, oldEvicted
		return 0, err
	}
	l.recalcMaskLocked()
	if f := l.opts.Events.UserDeregistered; f != nil && ev == nil {
		f(*u)
	}
	if len(l.mu.users) == 0 {
		l.epoch.Add(1)
		l.opts.Logger.Info("changelog_off", "device", l.opts.Device)
		if f := l.opts.Events.ChangelogOff; f != nil {
			f()
		}
	}
	return seq, nil
}

// Clear records that user ref processed every record up to end (0 = the
// current index) and purges what no user needs any more, in one batch.
//
// end beyond the current index is an error (*RangeError) and changes
// nothing; an unknown user is *UserError(ErrUnknownUser); a user removed by
// GC is *EvictedError. end below the user's point is a successful no-op:
// the point never goes back and the user is never lost (Lustre 2.17.57
// returns ENOENT here, which looks unintended; older releases EINVAL).
func (l *Log) Clear(ref string, end Index) (User, error) {
	u, seq, err := l.clear(ref, end)
	if err != nil || seq == 0 {
		return u, err
	}
	return u, l.syncTo(seq)
}

func (l *Log) clear(ref string, end Index) (User, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return User{}, 0, err
	}
	u, err := l.findUserLocked(ref, true)
	if err != nil {
		return User{}, 0, err
	}
	if end == 0 {
		end = l.mu.current
	}
	if end > l.mu.current {
		return User{}, 0, &RangeError{End: end, Current: l.mu.current}
	}
	if end < u.Index {
		return *u, 0, nil
	}
	nu := *u
	nu.Index, nu.Time = end, l.opts.Clock()
	b := l.db.NewBatch()
	defer b.Close()
	if err := l.putJSON(b, l.keys.user(u.ID), &nu); err != nil {
		return User{}, 0, err
	}
	old, oldPurged := *u, l.mu.purged
	*u = nu
	err = l.purgeLocked(b)
	if err == nil {
		err = l.putStateLocked(b)
	}
	var seq uint64
	if err == nil {
		seq, err = l.commitLocked(b)
	}
	if err != nil {
		*u, l.mu.purged = old, oldPurged
		return User{}, 0, err
	}
	return nu, seq, nil
}

// UserMask returns the stored mask of user ref for reader filtering
// (0 = no filtering). Unlike Lustre, maskless users registered without a
// name can be looked up too.
func (l *Log) UserMask(ref string) (Mask, error) {
	u, err := l.User(ref)
	if err != nil {
		return 0, err
	}
	return u.Mask, nil
}

// tooIdle is Lustre's mdd_changelog_is_too_idle.
func tooIdle(s *Settings, cur Index, u *User, now time.Time) bool {
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

// victimLocked picks the user GC would evict: among users behind the
// current index (caught-up users are never evicted) that are too idle, or
// any of them when anyIdle, the one with the smallest index.
func (l *Log) victimLocked(any bool) *User {
	now := l.opts.Clock()
	var v *User
	for _, u := range l.mu.users {
		if u.Index >= l.mu.current {
			continue
		}
		if !any && !tooIdle(&l.mu.settings, l.mu.current, u, now) {
			continue
		}
		if v == nil || u.Index < v.Index {
			v = u
		}
	}
	return v
}

// evictLocked force-deregisters u and remembers why.
func (l *Log) evictLocked(u *User, reason string) (uint64, error) {
	unprocessed := uint64(l.mu.current - u.Index)
	now := l.opts.Clock()
	ev := &EvictedError{User: u.DisplayName(), Reason: reason, At: now.Unix(), Index: u.Index, Unprocessed: unprocessed}
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
		var v *User
		if s.GC && s.FreeSpaceGC {
			v = l.victimLocked(true)
		}
		if v == nil {
			return &NoSpaceError{Retained: retained, Cap: s.MaxRecords}
		}
		if _, err := l.evictLocked(v, "capacity"); err != nil {
			return err
		}
	}
}

// maybeKickGCLocked runs Lustre's GC trigger after records are written: at
// most once per MinGCInterval (the first write after start always checks),
// wake the GC goroutine if the most idle user is too idle.
func (l *Log) maybeKickGCLocked() {
	s := &l.mu.settings
	if !s.GC {
		return
	}
	now := l.opts.Clock()
	if !l.mu.lastGCChk.IsZero() && now.Sub(l.mu.lastGCChk) <= s.MinGCInterval {
		return
	}
	l.mu.lastGCChk = now
	if l.victimLocked(false) != nil {
		select {
		case l.gcKick <- struct{}{}:
		default:
		}
	}
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
	v := l.victimLocked(false)
	if v == nil {
		return 0, nil
	}
	return l.evictLocked(v, "idle")
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
