package api

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
)

// PeerCred is what the kernel says about the process at the other end of
// a unix socket connection, read once when the connection is accepted
// (SO_PEERCRED, SO_PEERGROUPS).
type PeerCred struct {
	PID      int32
	UID, GID uint32
	// Groups are the peer's supplementary groups when it connected.
	Groups []uint32
}

// PeerCredInfo is the credentials.AuthInfo of a unix socket connection.
type PeerCredInfo struct {
	credentials.CommonAuthInfo
	Cred PeerCred
}

// AuthType implements credentials.AuthInfo.
func (PeerCredInfo) AuthType() string { return "peercred" }

// peerCreds are the transport credentials of the unix socket: no wire
// handshake, only the kernel's word on who connected.
type peerCreds struct{}

// errNotUnix is returned by the handshake of a connection that is not a
// unix socket: the server refuses it rather than guess an identity.
var errNotUnix = errors.New("api: peer credentials need a unix socket connection")

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("api: peer credentials are server-side only")
}

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("%w (got %T)", errNotUnix, c)
	}
	pc, err := readPeerCred(uc)
	if err != nil {
		return nil, nil, fmt.Errorf("api: reading peer credentials: %w", err)
	}
	// The socket is local: nobody can read or alter the bytes in between.
	return c, PeerCredInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, Cred: pc}, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (p peerCreds) Clone() credentials.TransportCredentials { return p }

func (peerCreds) OverrideServerName(string) error { return nil } //nolint:staticcheck // part of the interface
