package mdt

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
	"github.com/fidlog/fidlog/nodemap"
)

// Sentinel errors. Operations return them wrapped in *PathError (or
// *ParamError for parameters); match with errors.Is, map with Errno.
var (
	ErrNotFound     = errors.New("mdt: no such file or directory")         // ENOENT
	ErrExists       = errors.New("mdt: file exists")                       // EEXIST
	ErrNotDir       = errors.New("mdt: not a directory")                   // ENOTDIR
	ErrIsDir        = errors.New("mdt: is a directory")                    // EISDIR
	ErrNotEmpty     = errors.New("mdt: directory not empty")               // ENOTEMPTY
	ErrPermission   = errors.New("mdt: permission denied")                 // EACCES
	ErrNotPermitted = errors.New("mdt: operation not permitted")           // EPERM
	ErrNameTooLong  = errors.New("mdt: file name too long")                // ENAMETOOLONG
	ErrInvalid      = errors.New("mdt: invalid argument")                  // EINVAL
	ErrNoSpace      = errors.New("mdt: no space left on device")           // ENOSPC
	ErrIO           = errors.New("mdt: input/output error")                // EIO
	ErrNoData       = errors.New("mdt: no data available")                 // ENODATA
	ErrBadHandle    = errors.New("mdt: bad file handle")                   // EBADF
	ErrNoParam      = errors.New("mdt: no such parameter")                 // ENOENT
	ErrReadOnly     = errors.New("mdt: parameter is read-only")            // EACCES
	ErrTooManyOpen  = errors.New("mdt: too many open files")               // ENFILE
	ErrLoop         = errors.New("mdt: too many levels of symbolic links") // ELOOP
	ErrXDev         = errors.New("mdt: invalid cross-device link")         // EXDEV
	ErrNotSupported = errors.New("mdt: operation not supported")           // EOPNOTSUPP
	ErrRange        = errors.New("mdt: result out of range")               // ERANGE
	ErrTooBig       = errors.New("mdt: argument list too long")            // E2BIG
	ErrClosed       = errors.New("mdt: closed")                            // ESHUTDOWN
	ErrBusy         = errors.New("mdt: device or resource busy")           // EBUSY: removing or renaming the root
	// ErrCorrupt: stored namespace state breaks an invariant (an entry
	// without its link record, an undecodable key); the operation changes
	// nothing.
	ErrCorrupt = errors.New("mdt: namespace inconsistent") // EIO
)

// PathError records the operation and the path (or FID, handle, xattr
// name) it failed on.
type PathError struct {
	Op   string
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Op + " '" + e.Path + "': " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PathError) Unwrap() error { return e.Err }

// ParamError reports a parameter that cannot be read or set, naming it and
// the value.
type ParamError struct {
	Name  string
	Value string
	Err   error
}

func (e *ParamError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("setting %s=%s: %v", e.Name, e.Value, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Name, e.Err)
}

// Unwrap returns the underlying error.
func (e *ParamError) Unwrap() error { return e.Err }

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var pe *PathError
	if errors.As(err, &pe) && pe.Op == op {
		return err
	}
	return &PathError{Op: op, Path: path, Err: err}
}

// storeErr turns an error of the changelog or Pebble on the commit path
// into one that matches both the mdt sentinel and the original.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, changelog.ErrNoSpace), errors.Is(err, fid.ErrExhausted):
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	case errors.Is(err, changelog.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, ErrIO), errors.Is(err, changelog.ErrIO):
		return err
	}
	return fmt.Errorf("%w: %w", ErrIO, err)
}

// errnoTable is the one errno table: every sentinel of this package, the
// changelog, the nodemap and the fid package, with the errno a Lustre tool
// reports for it. Specific before general: wrapped storage errors first.
// api maps the errno to a gRPC code; nothing else keeps a table.
var errnoTable = []struct {
	target error
	errno  syscall.Errno
}{
	{ErrNoSpace, syscall.ENOSPC},
	{changelog.ErrNoSpace, syscall.ENOSPC},
	{fid.ErrExhausted, syscall.ENOSPC},
	{ErrClosed, syscall.ESHUTDOWN},
	{changelog.ErrClosed, syscall.ESHUTDOWN},
	{ErrIO, syscall.EIO},
	{changelog.ErrIO, syscall.EIO},
	{changelog.ErrCorrupt, syscall.EIO},
	{ErrCorrupt, syscall.EIO},
	{ErrNotFound, syscall.ENOENT},
	{ErrNoParam, syscall.ENOENT},
	{ErrExists, syscall.EEXIST},
	{ErrNotDir, syscall.ENOTDIR},
	{ErrIsDir, syscall.EISDIR},
	{ErrNotEmpty, syscall.ENOTEMPTY},
	{ErrPermission, syscall.EACCES},
	{ErrReadOnly, syscall.EACCES},
	{ErrNotPermitted, syscall.EPERM},
	{ErrNameTooLong, syscall.ENAMETOOLONG},
	{ErrInvalid, syscall.EINVAL},
	{ErrNoData, syscall.ENODATA},
	{ErrBadHandle, syscall.EBADF},
	{ErrTooManyOpen, syscall.ENFILE},
	{ErrLoop, syscall.ELOOP},
	{ErrXDev, syscall.EXDEV},
	{ErrNotSupported, syscall.EOPNOTSUPP},
	{ErrRange, syscall.ERANGE},
	{ErrTooBig, syscall.E2BIG},
	{ErrBusy, syscall.EBUSY},
	{changelog.ErrUnknownUser, syscall.ENOENT},
	{changelog.ErrEvicted, syscall.ENOENT},
	{changelog.ErrBehind, syscall.ENOENT},
	{changelog.ErrUserExists, syscall.EEXIST},
	{changelog.ErrNameTooLong, syscall.ENAMETOOLONG},
	{changelog.ErrBadUser, syscall.EINVAL},
	{changelog.ErrBadMask, syscall.EINVAL},
	{changelog.ErrOutOfRange, syscall.EINVAL},
	{changelog.ErrParamRange, syscall.ERANGE},
	{changelog.ErrBadParam, syscall.EINVAL},
	{changelog.ErrTooManyUsers, syscall.EOVERFLOW},
	{changelog.ErrBadSignature, syscall.EKEYREJECTED},
	{changelog.ErrTampered, syscall.EBADMSG},
	{changelog.ErrBadKey, syscall.EINVAL},
	{store.ErrNoSigningKey, syscall.ENOKEY},
	{fid.ErrInvalid, syscall.EINVAL},
	{fid.ErrRange, syscall.ERANGE},
	{fid.ErrBadSeq, syscall.EIO},
	// nodemap's specific sentinels also match its general ones; listed
	// anyway so that the table names every sentinel (errno_test.go).
	{nodemap.ErrOverlap, syscall.EEXIST},
	{nodemap.ErrExists, syscall.EEXIST},
	{nodemap.ErrNotFound, syscall.ENOENT},
	{nodemap.ErrBadNID, syscall.EINVAL},
	{nodemap.ErrBadRange, syscall.EINVAL},
	{nodemap.ErrNotContiguous, syscall.EINVAL},
	{nodemap.ErrUnknownProperty, syscall.EINVAL},
	{nodemap.ErrInvalid, syscall.EINVAL},
	{nodemap.ErrNotPermitted, syscall.EPERM},
	{nodemap.ErrCorrupt, syscall.EIO},
	{context.Canceled, syscall.ECANCELED},
	{context.DeadlineExceeded, syscall.ETIMEDOUT},
}

// Errno maps any error returned by this package, the changelog, the
// nodemap or the fid package to the errno a Lustre tool would report. An
// error that wraps a syscall.Errno reports that errno (other layers name
// their own errors that way). nil maps to 0; an unknown error maps to EIO.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	for _, t := range errnoTable {
		if errors.Is(err, t.target) {
			return t.errno
		}
	}
	return syscall.EIO
}
