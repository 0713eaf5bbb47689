package cli

import (
	"errors"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errno values the commands use by name.
const (
	ENOENT       = int(syscall.ENOENT)
	EIO          = int(syscall.EIO)
	EBADF        = int(syscall.EBADF)
	EACCES       = int(syscall.EACCES)
	EEXIST       = int(syscall.EEXIST)
	ENODEV       = int(syscall.ENODEV)
	EINVAL       = int(syscall.EINVAL)
	ENOSPC       = int(syscall.ENOSPC)
	ERANGE       = int(syscall.ERANGE)
	ENODATA      = int(syscall.ENODATA)
	ENOTCONN     = int(syscall.ENOTCONN)
	ECONNREFUSED = int(syscall.ECONNREFUSED)
)

// ReasonUserEvicted is the ErrorInfo reason of a changelog consumer removed
// by garbage collection (proto/README.md).
const ReasonUserEvicted = "USER_EVICTED"

// ErrorInfo returns the google.rpc.ErrorInfo detail of a gRPC error, or nil.
func ErrorInfo(err error) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

// Reason returns the ErrorInfo reason of err ("ENOENT", "USER_EVICTED", ...),
// or "" when err carries none.
func Reason(err error) string {
	if ei := ErrorInfo(err); ei != nil {
		return ei.GetReason()
	}
	return ""
}

// Message returns the server's message of a gRPC error (or err's text).
func Message(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// IsEvicted reports whether err tells a changelog consumer that garbage
// collection removed it.
func IsEvicted(err error) bool { return Reason(err) == ReasonUserEvicted }

// Errno returns the errno a failed call stands for: the ErrorInfo metadata
// "errno" when the server sent one, else a mapping of the gRPC code, else
// EIO. A connection failure gives ECONNREFUSED or ENOTCONN; nil gives 0.
func Errno(err error) int {
	if err == nil {
		return 0
	}
	var ce *ConnError
	if errors.As(err, &ce) {
		return ce.Errno
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return int(en)
	}
	if ei := ErrorInfo(err); ei != nil {
		if n, perr := strconv.Atoi(ei.GetMetadata()["errno"]); perr == nil && n > 0 {
			return n
		}
		if n, ok := errnoByName[ei.GetReason()]; ok {
			return n
		}
	}
	st, ok := status.FromError(err)
	if !ok {
		return EIO
	}
	return codeErrno(st.Code())
}

var errnoByName = map[string]int{
	"EPERM": 1, "ENOENT": 2, "EIO": 5, "E2BIG": 7, "EBADF": 9, "EAGAIN": 11,
	"EACCES": 13, "EBUSY": 16, "EEXIST": 17, "EXDEV": 18, "ENODEV": 19,
	"ENOTDIR": 20, "EISDIR": 21, "EINVAL": 22, "ENFILE": 23, "ENOSPC": 28,
	"ERANGE": 34, "ENAMETOOLONG": 36, "ENOTEMPTY": 39, "ELOOP": 40,
	"ENODATA": 61, "EOVERFLOW": 75, "EOPNOTSUPP": 95, "ESHUTDOWN": 108,
	"ETIMEDOUT": 110, "ECANCELED": 125,
}

func codeErrno(c codes.Code) int {
	switch c {
	case codes.OK:
		return 0
	case codes.NotFound:
		return ENOENT
	case codes.AlreadyExists:
		return EEXIST
	case codes.PermissionDenied, codes.Unauthenticated:
		return EACCES
	case codes.InvalidArgument, codes.FailedPrecondition:
		return EINVAL
	case codes.OutOfRange:
		return ERANGE
	case codes.ResourceExhausted:
		return ENOSPC
	case codes.Unavailable:
		return ENOTCONN
	case codes.DeadlineExceeded:
		return int(syscall.ETIMEDOUT)
	case codes.Canceled:
		return int(syscall.ECANCELED)
	case codes.Unimplemented:
		return int(syscall.EOPNOTSUPP)
	case codes.Aborted:
		return int(syscall.EAGAIN)
	default:
		return EIO
	}
}

// Strerror returns the C library's message for errno n, as Lustre's
// commands print it ("No such file or directory", "Invalid argument").
func Strerror(n int) string {
	if n <= 0 {
		return "Success"
	}
	s := syscall.Errno(n).Error()
	if s == "" || strings.HasPrefix(s, "errno ") {
		return "Unknown error " + strconv.Itoa(n)
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
