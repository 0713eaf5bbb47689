package main

import (
	"errors"
	"net"
	"os"
	"strings"
)

// notifier speaks systemd's notify protocol (sd_notify(3)): one datagram
// of newline-separated KEY=VALUE assignments to the unix socket named by
// $NOTIFY_SOCKET (a leading '@' is the abstract namespace). Without
// NOTIFY_SOCKET (not started by systemd with Type=notify) it does
// nothing.
type notifier struct{ addr string }

// newNotifier reads NOTIFY_SOCKET and unsets it, so that child processes
// do not notify in mdtd's name.
func newNotifier() *notifier {
	addr := os.Getenv("NOTIFY_SOCKET")
	_ = os.Unsetenv("NOTIFY_SOCKET")
	return &notifier{addr: addr}
}

// notify sends the assignments; nil when there is no socket to send to.
func (n *notifier) notify(assignments ...string) error {
	if n == nil || n.addr == "" {
		return nil
	}
	if !strings.HasPrefix(n.addr, "/") && !strings.HasPrefix(n.addr, "@") {
		return errors.New("NOTIFY_SOCKET is neither a path nor an abstract socket: " + n.addr)
	}
	name := n.addr
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	_, err = c.Write([]byte(strings.Join(assignments, "\n") + "\n"))
	return errors.Join(err, c.Close())
}
