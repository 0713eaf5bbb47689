package changelog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Typed errors below wrap them; match with errors.Is.
var (
	// ErrBadMask: a mask string has an unknown token or bad syntax (EINVAL).
	ErrBadMask = errors.New("changelog: invalid changelog mask")
	// ErrUnknownUser: no registered changelog user matches (ENOENT).
	ErrUnknownUser = errors.New("changelog: no changelog user")
	// ErrUserExists: a user with that name is already registered (EEXIST).
	ErrUserExists = errors.New("changelog: user exists")
	// ErrBadUser: a user id or name is malformed (EINVAL).
	ErrBadUser = errors.New("changelog: invalid user")
	// ErrNameTooLong: a user name is longer than MaxUserName (ENAMETOOLONG).
	ErrNameTooLong = errors.New("changelog: user name too long")
	// ErrOutOfRange: an end record is beyond the current index (EINVAL).
	ErrOutOfRange = errors.New("changelog: record out of range")
	// ErrBehind: a clear to an index below the user's cleared point
	// (ENOENT, as Lustre's mdd_changelog_clear). Nothing changed.
	ErrBehind = errors.New("changelog: clear below the user's point")
	// ErrNoSpace: the retained-records cap is reached and no consumer can be
	// evicted (ENOSPC). The caller's batch was not committed.
	ErrNoSpace = errors.New("changelog: no space for changelog records")
	// ErrEvicted: the user was deregistered by garbage collection (an
	// explicit "you were evicted", never a generic not-found).
	ErrEvicted = errors.New("changelog: changelog user was evicted")
	// ErrBadParam: a changelog setting has an invalid value (EINVAL, or
	// ERANGE when it also matches ErrParamRange).
	ErrBadParam = errors.New("changelog: invalid parameter value")
	// ErrParamRange: a changelog setting is a number outside the range the
	// parameter accepts (ERANGE, as Lustre's mdd_lproc.c stores).
	ErrParamRange = errors.New("changelog: parameter value out of range")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("changelog: closed")
	// ErrIO: the store failed a write or sync; the log refuses further
	// writes until reopened (EIO).
	ErrIO = errors.New("changelog: i/o error")
	// ErrCorrupt: a stored record or state could not be decoded.
	ErrCorrupt = errors.New("changelog: corrupt record")
	// ErrTooManyUsers: the user id space is exhausted (EOVERFLOW).
	ErrTooManyUsers = errors.New("changelog: user id overflow")
)

// MaskError reports a mask string that cannot be parsed.
type MaskError struct {
	Mask  string // the whole string as given
	Token string // the offending token, if any
}

func (e *MaskError) Error() string {
	if e.Token != "" {
		return fmt.Sprintf("invalid changelog mask '%s': unknown mask '%s'", e.Mask, e.Token)
	}
	return fmt.Sprintf("invalid changelog mask '%s'", e.Mask)
}

// Unwrap returns ErrBadMask.
func (e *MaskError) Unwrap() error { return ErrBadMask }

// UserError names the user an operation was about.
type UserError struct {
	User string
	Err  error
}

func (e *UserError) Error() string {
	switch {
	case errors.Is(e.Err, ErrUnknownUser):
		return fmt.Sprintf("no changelog user: %s", e.User)
	case errors.Is(e.Err, ErrUserExists):
		return fmt.Sprintf("changelog user '%s' exists", e.User)
	case errors.Is(e.Err, ErrNameTooLong):
		return fmt.Sprintf("changelog user name '%s' is longer than %d characters", e.User, MaxUserName)
	case errors.Is(e.Err, ErrBadUser):
		return fmt.Sprintf("invalid changelog user '%s': expect <ID> or cl<ID>[-name] or a name starting with a letter followed by letters, digits, '_' or '-'", e.User)
	}
	return fmt.Sprintf("changelog user '%s': %v", e.User, e.Err)
}

// Unwrap returns the underlying sentinel.
func (e *UserError) Unwrap() error { return e.Err }

// RangeError reports an end record beyond the current index.
type RangeError struct {
	End, Current Index
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("record out of range: %d (current index %d)", e.End, e.Current)
}

// Unwrap returns ErrOutOfRange.
func (e *RangeError) Unwrap() error { return ErrOutOfRange }

// BehindError reports a clear to an index below the user's cleared point.
type BehindError struct {
	User       string // display name
	End, Index Index  // the requested end and the user's point
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("changelog user %s has cleared up to %d: cannot clear back to %d", e.User, e.Index, e.End)
}

// Unwrap returns ErrBehind.
func (e *BehindError) Unwrap() error { return ErrBehind }

// EvictedError tells a consumer, by name, that garbage collection removed it.
type EvictedError struct {
	User        string // display name, e.g. "cl2-robinhood"
	Reason      string // "idle", "capacity"
	At          int64  // unix seconds of the eviction
	Index       Index  // the user's cleared point when evicted
	Unprocessed uint64 // records it had not cleared
}

func (e *EvictedError) Error() string {
	return fmt.Sprintf("changelog user %s was evicted by garbage collection (%s) at index %d with %d unprocessed records; register again", e.User, e.Reason, e.Index, e.Unprocessed)
}

// Unwrap returns ErrEvicted.
func (e *EvictedError) Unwrap() error { return ErrEvicted }

// NoSpaceError reports a full log.
type NoSpaceError struct {
	Retained, Cap uint64
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("changelog full: %d records retained, cap %d, no consumer can be evicted", e.Retained, e.Cap)
}

// Unwrap returns ErrNoSpace.
func (e *NoSpaceError) Unwrap() error { return ErrNoSpace }

// ParamError reports a bad setting value. Range marks a well-formed number
// outside the accepted range (ERANGE) rather than bad syntax (EINVAL).
type ParamError struct {
	Name, Value string
	Reason      string
	Range       bool
}

func (e *ParamError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("invalid value '%s' for %s: %s", e.Value, e.Name, e.Reason)
	}
	return fmt.Sprintf("invalid value '%s' for %s", e.Value, e.Name)
}

// Unwrap returns ErrBadParam, and ErrParamRange for a range error.
func (e *ParamError) Unwrap() []error {
	if e.Range {
		return []error{ErrParamRange, ErrBadParam}
	}
	return []error{ErrBadParam}
}
