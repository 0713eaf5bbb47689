package cli

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"

	"github.com/fidlog/fidlog/api/client"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
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
	ENAMETOOLONG = int(syscall.ENAMETOOLONG)
	ENOSPC       = int(syscall.ENOSPC)
	ERANGE       = int(syscall.ERANGE)
	ENODATA      = int(syscall.ENODATA)
	ENOTCONN     = int(syscall.ENOTCONN)
	ECONNREFUSED = int(syscall.ECONNREFUSED)
	ECANCELED    = int(syscall.ECANCELED)
)

// Message returns the server's message of a failed call (or err's text).
func Message(err error) string { return client.Message(err) }

// IsEvicted reports whether err tells a changelog consumer that garbage
// collection removed it.
func IsEvicted(err error) bool {
	_, ok := client.IsEvicted(err)
	return ok
}

// Errno returns the errno a failed call stands for: a connection failure
// gives its own (ECONNREFUSED or ENOTCONN, see Conn.Err); otherwise the
// consumer client's decoding applies (the ErrorInfo "errno", else the gRPC
// code's). nil gives 0.
func Errno(err error) int {
	if err == nil {
		return 0
	}
	var ce *ConnError
	if errors.As(err, &ce) {
		return int(ce.Errno)
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return int(en)
	}
	return int(client.ErrnoOf(err))
}

// SysErrno returns the errno of a failed system call that err wraps (an
// *os.PathError's), else EIO: for errors of local files and mounts, which
// carry no gRPC status.
func SysErrno(err error) int {
	var en syscall.Errno
	if errors.As(err, &en) {
		return int(en)
	}
	return EIO
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

// Detail returns what the server's message of a failed call says beyond
// its errno, the offending value ("start index 5 is above end index 3",
// "unknown device 'x' (this server serves 'lustre-MDT0000')", "no
// changelog user: cl9"), without the "api: " and errno-text prefixes; ""
// when it says nothing more. The commands print it before Lustre's own
// line, as liblustreapi prints its line naming the device or user before
// lfs's.
func Detail(err error) string {
	if err == nil {
		return ""
	}
	msg := strings.TrimPrefix(Message(err), "api: ")
	generic := Strerror(Errno(err))
	if len(msg) > len(generic)+2 && strings.EqualFold(msg[:len(generic)], generic) && msg[len(generic):len(generic)+2] == ": " {
		msg = msg[len(generic)+2:]
	}
	if strings.EqualFold(strings.TrimSpace(msg), generic) {
		return ""
	}
	return strings.TrimSpace(msg)
}

// DeviceError returns why the server refuses device (unknown: ENOENT;
// missing: EINVAL), or nil if it serves it: for a command whose failure
// could mean either a bad device or a bad user or record.
func DeviceError(ctx context.Context, conn *Conn, device string) error {
	_, err := conn.Changelog.GetState(ctx, &changelogv1.GetStateRequest{Device: device})
	if n := Errno(err); n == ENOENT || n == EINVAL {
		return err
	}
	return nil
}
