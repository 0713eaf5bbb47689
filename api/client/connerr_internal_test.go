package client

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestConnErrno(t *testing.T) {
	dial := func(e error) error {
		return &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", e)}
	}
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{dial(syscall.ECONNREFUSED), syscall.ECONNREFUSED},
		{dial(syscall.ENOENT), syscall.ECONNREFUSED},
		{dial(syscall.EACCES), syscall.EACCES},
		{dial(syscall.EPERM), syscall.EACCES},
		{dial(syscall.ETIMEDOUT), syscall.ENOTCONN},
		{errors.New("too many colons in address"), syscall.ENOTCONN},
	} {
		if got := connErrno(tc.err); got != tc.want {
			t.Errorf("connErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
