package nodemap

import "errors"

// Sentinel errors. Every error this package returns matches at least one of
// them with errors.Is, and the errno a caller should report follows from
// it (check the specific sentinels before the general ones):
//
//	ErrExists, ErrOverlap                               EEXIST
//	ErrNotFound                                         ENOENT
//	ErrInvalid, ErrBadNID, ErrBadRange,
//	ErrNotContiguous, ErrUnknownProperty                EINVAL
//	ErrNotPermitted                                     EPERM
//	ErrCorrupt                                          (saved state unreadable)
//
// The specific EINVAL sentinels (ErrBadNID, ErrBadRange, ErrNotContiguous,
// ErrUnknownProperty) also match ErrInvalid, and ErrOverlap also matches
// ErrExists, so a caller that checks only the general sentinel still gets
// the right errno.
var (
	// ErrInvalid reports an argument Lustre refuses with EINVAL: a bad
	// nodemap name, a property value that does not parse, an operation
	// the default nodemap does not allow.
	ErrInvalid = errors.New("nodemap: invalid argument")
	// ErrExists reports a nodemap name that is already taken.
	ErrExists = errors.New("nodemap: already exists")
	// ErrNotFound reports a nodemap, or a range of a nodemap, that does
	// not exist.
	ErrNotFound = errors.New("nodemap: not found")
	// ErrOverlap reports a NID range that overlaps a range already held by
	// some nodemap (EEXIST in Lustre).
	ErrOverlap = errors.New("nodemap: NID range overlaps an existing range")
	// ErrBadNID reports text that is not a NID.
	ErrBadNID = errors.New("nodemap: invalid NID")
	// ErrBadRange reports text that is not a NID range.
	ErrBadRange = errors.New("nodemap: can't parse nid range")
	// ErrNotContiguous reports a well-formed NID range that does not
	// denote one contiguous block of addresses.
	ErrNotContiguous = errors.New("nodemap: nodemap ranges must be contiguous")
	// ErrUnknownProperty reports a nodemap_modify property name that does
	// not exist.
	ErrUnknownProperty = errors.New("nodemap: invalid property")
	// ErrNotPermitted reports an operation Lustre refuses with EPERM
	// (setting gssonly_identification, which needs GSS keys this
	// implementation does not have).
	ErrNotPermitted = errors.New("nodemap: operation not permitted")
	// ErrCorrupt reports saved state that UnmarshalBinary cannot accept.
	ErrCorrupt = errors.New("nodemap: corrupt saved state")
)

// classes returns err followed by the general sentinels it also matches.
func classes(err error) []error {
	switch err {
	case ErrBadNID, ErrBadRange, ErrNotContiguous, ErrUnknownProperty:
		return []error{err, ErrInvalid}
	case ErrOverlap:
		return []error{err, ErrExists}
	default:
		return []error{err}
	}
}

// ParseError is the error ParseNID and ParseRange return. Its message is the
// text Lustre's lctl prints after "error: <command>: ".
type ParseError struct {
	// Text is the input, verbatim.
	Text string
	// Err is ErrBadNID, ErrBadRange or ErrNotContiguous.
	Err error
	// Reason says what is wrong, for logs; it is not part of Error().
	Reason string
}

// Error returns "can't parse nid range: TEXT", "nodemap ranges must be
// contiguous: TEXT" or "invalid NID 'TEXT'".
func (e *ParseError) Error() string {
	switch e.Err {
	case ErrBadRange:
		return "can't parse nid range: " + e.Text
	case ErrNotContiguous:
		return "nodemap ranges must be contiguous: " + e.Text
	default:
		return "invalid NID '" + e.Text + "'"
	}
}

// Unwrap returns e.Err and the general sentinel it implies (ErrInvalid).
func (e *ParseError) Unwrap() []error { return classes(e.Err) }

// NodemapError reports an operation on a named nodemap that failed: the
// name is taken, unknown or invalid, the default nodemap does not allow
// the operation, or a range to delete is not there.
type NodemapError struct {
	// Name is the nodemap name as given.
	Name string
	// Err is ErrExists, ErrNotFound, ErrInvalid or ErrNotPermitted.
	Err error
	// Reason, when set, replaces the standard message after the name.
	Reason string
}

// Error returns Lustre's wording: "nodemap 'NAME' already exists",
// "nodemap 'NAME' does not exist", or "nodemap 'NAME': REASON".
func (e *NodemapError) Error() string {
	switch {
	case e.Reason != "":
		return "nodemap '" + e.Name + "': " + e.Reason
	case e.Err == ErrExists:
		return "nodemap '" + e.Name + "' already exists"
	case e.Err == ErrNotFound:
		return "nodemap '" + e.Name + "' does not exist"
	default:
		return "nodemap '" + e.Name + "': invalid argument"
	}
}

// Unwrap returns e.Err and any general sentinel it implies.
func (e *NodemapError) Unwrap() []error { return classes(e.Err) }

// OverlapError reports a range that AddRange refused because it overlaps a
// range some nodemap (possibly the same one) already has.
type OverlapError struct {
	// Nodemap and Range are what AddRange was asked to add.
	Nodemap string
	Range   Range
	// Holder holds Existing, the range in the way.
	Holder   string
	Existing Range
}

// Error names both ranges and the nodemap holding the existing one.
func (e *OverlapError) Error() string {
	return "nid range " + e.Range.String() + " overlaps range " +
		e.Existing.String() + " of nodemap '" + e.Holder + "'"
}

// Unwrap returns ErrOverlap and ErrExists.
func (e *OverlapError) Unwrap() []error { return classes(ErrOverlap) }

// PropertyError reports a Modify that was refused because of its property
// name or value. Its message is the text lctl nodemap_modify prints.
type PropertyError struct {
	Nodemap  string
	Property string
	Value    string
	// Err is ErrUnknownProperty, ErrInvalid or ErrNotPermitted.
	Err error
	// Reason, when set, is the whole message (for example "cannot squash
	// to ID 0 on nodemap 'NAME'").
	Reason string
}

// Error returns "invalid property: PROP", the Reason, or "cannot modify
// nodemap 'NAME' to param 'PROP': value 'VAL'".
func (e *PropertyError) Error() string {
	switch {
	case e.Err == ErrUnknownProperty:
		return "invalid property: " + e.Property
	case e.Reason != "":
		return e.Reason
	default:
		return "cannot modify nodemap '" + e.Nodemap + "' to param '" +
			e.Property + "': value '" + e.Value + "'"
	}
}

// Unwrap returns e.Err and any general sentinel it implies.
func (e *PropertyError) Unwrap() []error { return classes(e.Err) }
