package api

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readPeerCred asks the kernel who is at the other end of c.
func readPeerCred(c *net.UnixConn) (PeerCred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return PeerCred{}, err
	}
	var (
		pc   PeerCred
		serr error
	)
	err = rc.Control(func(fd uintptr) {
		var u *unix.Ucred
		if u, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); serr != nil {
			return
		}
		pc = PeerCred{PID: u.Pid, UID: u.Uid, GID: u.Gid}
		pc.Groups, serr = peerGroups(int(fd))
	})
	if err == nil {
		err = serr
	}
	return pc, err
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13 and later), growing the
// buffer as the kernel asks (ERANGE with the size it needs).
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch e {
		case 0:
			return buf[:n/4], nil
		case unix.ERANGE:
			if int(n/4) <= len(buf) {
				return nil, fmt.Errorf("SO_PEERGROUPS: ERANGE with %d bytes", n)
			}
			buf = make([]uint32, n/4)
		default:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", e)
		}
	}
}
