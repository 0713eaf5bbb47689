package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/mdt"
)

// ErrorDomain is the ErrorInfo domain of every status this package returns.
const ErrorDomain = "fidlog"

// ReasonUserEvicted is the ErrorInfo reason of a changelog consumer removed
// by garbage collection (FAILED_PRECONDITION).
const ReasonUserEvicted = "USER_EVICTED"

// Sentinel errors of this package's own checks; they reach clients through
// toStatus like domain errors. Each wraps its errno, which is how the one
// errno table (mdt.Errno) knows it.
var (
	// ErrUnknownDevice: the request names an MDT this server does not
	// serve (NOT_FOUND, ENOENT).
	ErrUnknownDevice error = &errnoError{"api: unknown device", syscall.ENOENT}
	// ErrInvalid: a request field or identity metadata is malformed
	// (INVALID_ARGUMENT, EINVAL).
	ErrInvalid error = &errnoError{"api: invalid argument", syscall.EINVAL}
	// ErrPermission: the caller may not do this: it asserted an identity
	// that is not its own, or lacks the right the operation needs
	// (PERMISSION_DENIED, EPERM).
	ErrPermission error = &errnoError{"api: permission denied", syscall.EPERM}
	// ErrDraining: the server is shutting down (UNAVAILABLE, ESHUTDOWN).
	ErrDraining error = &errnoError{"api: server shutting down", syscall.ESHUTDOWN}
)

// errnoError is a sentinel that carries its errno.
type errnoError struct {
	msg   string
	errno syscall.Errno
}

func (e *errnoError) Error() string { return e.msg }

// Unwrap returns the errno.
func (e *errnoError) Unwrap() error { return e.errno }

// argError is an ErrInvalid naming the offending field and value.
func argError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// errnoNames are the symbolic names used as ErrorInfo reasons.
var errnoNames = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT", syscall.EIO: "EIO",
	syscall.ENXIO: "ENXIO", syscall.E2BIG: "E2BIG", syscall.EBADF: "EBADF",
	syscall.EAGAIN: "EAGAIN", syscall.EACCES: "EACCES", syscall.EBUSY: "EBUSY",
	syscall.EEXIST: "EEXIST", syscall.EXDEV: "EXDEV", syscall.ENOTDIR: "ENOTDIR",
	syscall.EISDIR: "EISDIR", syscall.EINVAL: "EINVAL", syscall.ENFILE: "ENFILE",
	syscall.EMFILE: "EMFILE", syscall.ENOSPC: "ENOSPC", syscall.ERANGE: "ERANGE",
	syscall.ENAMETOOLONG: "ENAMETOOLONG", syscall.ENOTEMPTY: "ENOTEMPTY",
	syscall.ELOOP: "ELOOP", syscall.ENODATA: "ENODATA", syscall.EOVERFLOW: "EOVERFLOW",
	syscall.EOPNOTSUPP: "EOPNOTSUPP", syscall.ESHUTDOWN: "ESHUTDOWN",
	syscall.ETIMEDOUT: "ETIMEDOUT", syscall.ECANCELED: "ECANCELED",
}

// ErrnoName returns the symbolic name of e ("ENOENT"), or "ERRNO_<n>" for
// one this package has no name for.
func ErrnoName(e syscall.Errno) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return "ERRNO_" + strconv.Itoa(int(e))
}

// codeOf is the gRPC code that follows an errno (proto/README.md): the one
// switch from errors to codes.
func codeOf(e syscall.Errno) codes.Code {
	switch e {
	case syscall.ENOENT, syscall.ENODATA, syscall.ENXIO, syscall.EBADF:
		return codes.NotFound
	case syscall.EEXIST:
		return codes.AlreadyExists
	case syscall.EACCES, syscall.EPERM:
		return codes.PermissionDenied
	case syscall.EINVAL, syscall.ENAMETOOLONG, syscall.E2BIG, syscall.EXDEV:
		return codes.InvalidArgument
	case syscall.ERANGE:
		return codes.OutOfRange
	case syscall.ENOTDIR, syscall.EISDIR, syscall.ENOTEMPTY, syscall.EBUSY, syscall.ELOOP:
		return codes.FailedPrecondition
	case syscall.ENOSPC, syscall.ENFILE, syscall.EMFILE, syscall.EOVERFLOW:
		return codes.ResourceExhausted
	case syscall.EOPNOTSUPP:
		return codes.Unimplemented
	case syscall.ESHUTDOWN, syscall.EAGAIN:
		return codes.Unavailable
	case syscall.ECANCELED:
		return codes.Canceled
	case syscall.ETIMEDOUT:
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// toStatus is the one mapping from errors to gRPC statuses. Every status
// it returns carries an errdetails.ErrorInfo (domain "fidlog", reason the
// errno name or a service reason, metadata "errno"), and its message is the
// error's text, which names the offending value. A status error passes
// through unchanged; an evicted consumer gets its own reason; every other
// error takes the errno of the one table (mdt.Errno, which also knows this
// package's sentinels) and the code codeOf gives it, so a wrapped domain
// error never becomes Unknown.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	var ev *changelog.EvictedError
	if errors.As(err, &ev) {
		md := map[string]string{
			"errno":       strconv.Itoa(int(syscall.ENOENT)),
			"user":        ev.User,
			"index":       strconv.FormatUint(uint64(ev.Index), 10),
			"unprocessed": strconv.FormatUint(ev.Unprocessed, 10),
		}
		if ev.Reason != "" {
			md["gc"] = ev.Reason
		}
		return withInfo(codes.FailedPrecondition, err.Error(), ReasonUserEvicted, md)
	}
	return errnoStatus(mdt.Errno(err), err)
}

// errnoStatus builds the status of an errno failure.
func errnoStatus(e syscall.Errno, err error) error {
	return withInfo(codeOf(e), err.Error(), ErrnoName(e), map[string]string{"errno": strconv.Itoa(int(e))})
}

func withInfo(c codes.Code, msg, reason string, md map[string]string) error {
	st := status.New(c, escapeInvalidUTF8(msg))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason, Metadata: md}); err == nil {
		st = d
	}
	return st.Err()
}

// escapeInvalidUTF8 writes the bytes of s that are not UTF-8 (a POSIX name
// in a message may be any bytes) as \xNN: a status message is a protobuf
// string, which must be valid UTF-8 or the whole status is lost.
func escapeInvalidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			fmt.Fprintf(&b, "\\x%02x", s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}
