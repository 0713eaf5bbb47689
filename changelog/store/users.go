package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

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
// changelogs on. As in Lustre, a user registered with a name and no mask
// while the server mask is MinMask stores DefMask (and changelog_users
// shows it); an unnamed one, or one registered under another server mask,
// stays maskless.
func (l *Log) Register(opts RegisterOptions) (changelog.User, error) {
	if opts.Name != "" {
		if err := changelog.ValidateUserName(opts.Name); err != nil {
			return changelog.User{}, err
		}
	}
	var mask changelog.Mask
	if opts.HasMask {
		m, err := changelog.ParseMask(opts.Mask, changelog.DefMask)
		if err != nil {
			return changelog.User{}, err
		}
		mask = m
	}
	out, seq, err := l.register(opts, mask)
	if err != nil {
		return changelog.User{}, err
	}
	return out, l.syncTo(seq)
}

func (l *Log) register(opts RegisterOptions, mask changelog.Mask) (changelog.User, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return changelog.User{}, 0, err
	}
	if opts.Name != "" {
		for _, u := range l.mu.users {
			if u.Name == opts.Name {
				return changelog.User{}, 0, &changelog.UserError{User: opts.Name, Err: changelog.ErrUserExists}
			}
		}
	}
	if l.mu.lastUserID == ^uint32(0) {
		return changelog.User{}, 0, changelog.ErrTooManyUsers
	}
	if !opts.HasMask && opts.Name != "" && l.mu.settings.Mask == changelog.MinMask {
		// mdd_changelog_user_register: a maskless user registered while
		// the server mask is MINMASK gets DEFMASK, and a named one keeps
		// it (its v2 record stores the mask; an unnamed one's v1 record
		// has no mask field, so it stays maskless).
		mask = changelog.DefMask
	}
	u := &changelog.User{ID: l.mu.lastUserID + 1, Name: opts.Name, Mask: mask, Index: l.mu.current, Time: l.opts.Clock()}
	b := l.db.NewBatch()
	defer closeBatch(b)
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
		return changelog.User{}, 0, err
	}
	wasOff := len(l.mu.users) == 0
	l.mu.users = append(l.mu.users, u)
	l.recalcMaskLocked()
	if wasOff {
		l.changedLocked(ChangelogOn)
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
func (l *Log) findUserLocked(ref string, byName bool) (*changelog.User, error) {
	if id, ok := changelog.ParseUserID(ref); ok {
		for _, u := range l.mu.users {
			if u.ID == id {
				return u, nil
			}
		}
		if e, ok := l.mu.evicted[id]; ok {
			return nil, e
		}
		return nil, &changelog.UserError{User: ref, Err: changelog.ErrUnknownUser}
	}
	if !byName || ref == "" {
		return nil, &changelog.UserError{User: ref, Err: changelog.ErrBadUser}
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
	return nil, &changelog.UserError{User: ref, Err: changelog.ErrUnknownUser}
}

// User returns the registered user ref names (by ID forms or by name). An
// evicted user gives an *EvictedError.
func (l *Log) User(ref string) (changelog.User, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, err := l.findUserLocked(ref, true)
	if err != nil {
		return changelog.User{}, err
	}
	return *u, nil
}

// Users returns the registered users in registration order.
func (l *Log) Users() []changelog.User {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]changelog.User, len(l.mu.users))
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
func (l *Log) Deregister(ref string, byName bool) (changelog.User, error) {
	u, seq, err := l.deregister(ref, byName)
	if err != nil {
		return changelog.User{}, err
	}
	return u, l.syncTo(seq)
}

func (l *Log) deregister(ref string, byName bool) (changelog.User, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return changelog.User{}, 0, err
	}
	u, err := l.findUserLocked(ref, byName)
	if err != nil {
		return changelog.User{}, 0, err
	}
	seq, err := l.removeUserLocked(u, nil)
	if err != nil {
		return changelog.User{}, 0, err
	}
	return *u, seq, nil
}

// removeUserLocked deletes u (and, for an eviction, records the fact) and
// purges, in one batch.
func (l *Log) removeUserLocked(u *changelog.User, ev *changelog.EvictedError) (uint64, error) {
	b := l.db.NewBatch()
	defer closeBatch(b)
	if err := b.Delete(l.keys.user(u.ID), nil); err != nil {
		return 0, err
	}
	i := slices.Index(l.mu.users, u)
	users := slices.Delete(slices.Clone(l.mu.users), i, i+1)
	oldUsers, oldPurged, oldEvicted, oldAnchor := l.mu.users, l.mu.purged, l.mu.evicted, l.mu.anchor
	l.mu.users = users
	if err := l.purgeLocked(b); err != nil {
		l.mu.users, l.mu.purged, l.mu.anchor = oldUsers, oldPurged, oldAnchor
		return 0, err
	}
	if ev != nil {
		if err := l.putJSON(b, l.keys.evict(u.ID), ev); err != nil {
			return 0, err
		}
		l.mu.evicted = make(map[uint32]*changelog.EvictedError, len(oldEvicted)+1)
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
			mustBatch(b.Delete(l.keys.evict(oldest), nil))
		}
	}
	if err := l.putStateLocked(b); err != nil {
		return 0, err
	}
	seq, err := l.commitLocked(b)
	if err != nil {
		l.mu.users, l.mu.purged, l.mu.evicted, l.mu.anchor = oldUsers, oldPurged, oldEvicted, oldAnchor
		return 0, err
	}
	l.recalcMaskLocked()
	l.changedLocked(UserRemoved)
	if f := l.opts.Events.UserDeregistered; f != nil && ev == nil {
		f(*u)
	}
	if len(l.mu.users) == 0 {
		l.changedLocked(ChangelogOff)
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
// GC is *EvictedError. end below the user's point is *BehindError
// (ErrBehind, ENOENT as in Lustre's mdd_changelog_clear, where no user
// record was updated) and changes nothing: the point never goes back and
// the user is never lost. end equal to the user's point succeeds and only
// refreshes the user's idle time. Every successful clear is reported to
// OnStateChange (UserCleared), even when nothing is purged.
func (l *Log) Clear(ref string, end changelog.Index) (changelog.User, error) {
	u, seq, err := l.clear(ref, end)
	if err != nil || seq == 0 {
		return u, err
	}
	return u, l.syncTo(seq)
}

func (l *Log) clear(ref string, end changelog.Index) (changelog.User, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return changelog.User{}, 0, err
	}
	u, err := l.findUserLocked(ref, true)
	if err != nil {
		return changelog.User{}, 0, err
	}
	if end == 0 {
		end = l.mu.current
	}
	if end > l.mu.current {
		return changelog.User{}, 0, &changelog.RangeError{End: end, Current: l.mu.current}
	}
	if end < u.Index {
		return changelog.User{}, 0, &changelog.BehindError{User: u.DisplayName(), End: end, Index: u.Index}
	}
	nu := *u
	nu.Index, nu.Time = end, l.opts.Clock()
	b := l.db.NewBatch()
	defer closeBatch(b)
	if err := l.putJSON(b, l.keys.user(u.ID), &nu); err != nil {
		return changelog.User{}, 0, err
	}
	old, oldPurged, oldAnchor := *u, l.mu.purged, l.mu.anchor
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
		*u, l.mu.purged, l.mu.anchor = old, oldPurged, oldAnchor
		return changelog.User{}, 0, err
	}
	l.changedLocked(UserCleared)
	return nu, seq, nil
}

// UserMask returns the stored mask of user ref for reader filtering
// (0 = no filtering). Unlike Lustre, maskless users registered without a
// name can be looked up too.
func (l *Log) UserMask(ref string) (changelog.Mask, error) {
	u, err := l.User(ref)
	if err != nil {
		return 0, err
	}
	return u.Mask, nil
}
