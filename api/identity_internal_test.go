package api

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

func TestIdentify(t *testing.T) {
	unix := &net.UnixAddr{Name: "@", Net: "unix"}
	peerOf := func(uid, gid uint32, groups ...uint32) PeerCredInfo {
		return PeerCredInfo{Cred: PeerCred{PID: 42, UID: uid, GID: gid, Groups: groups}}
	}
	for _, tc := range []struct {
		name  string
		addr  net.Addr
		info  any
		md    []string
		nid   string
		local bool
		uid   uint32
		gid   uint32
		grps  []uint32
		job   string
		err   string // non-empty: ErrPermission containing this
	}{
		{name: "tcp", addr: &net.TCPAddr{IP: net.ParseIP("192.168.1.10"), Port: 4000}, nid: "192.168.1.10@tcp"},
		{name: "tcp v4 in v6", addr: &net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1}, nid: "10.0.0.1@tcp"},
		{name: "tcp asserts", addr: &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 1}, md: []string{MDUID, "500", MDGroups, "1, 2,3", MDJobID, "dd.0"}, nid: "2001:db8::7@tcp", uid: 500, grps: []uint32{1, 2, 3}, job: "dd.0"},
		{name: "root peer", addr: unix, info: peerOf(0, 0), nid: "0@lo", local: true},
		{name: "root peer acts for 500", addr: unix, info: peerOf(0, 0), md: []string{MDUID, "500", MDGID, "501", MDGroups, "7"}, nid: "0@lo", local: true, uid: 500, gid: 501, grps: []uint32{7}},
		{name: "user peer", addr: unix, info: peerOf(1000, 100, 10, 20), nid: "0@lo", local: true, uid: 1000, gid: 100, grps: []uint32{10, 20}},
		{name: "user peer asserts itself", addr: unix, info: peerOf(1000, 100, 10, 20), md: []string{MDUID, "1000", MDGID, "100", MDGroups, "20,100", MDJobID, "j"}, nid: "0@lo", local: true, uid: 1000, gid: 100, grps: []uint32{20, 100}, job: "j"},
		{name: "user peer claims root", addr: unix, info: peerOf(1000, 100), md: []string{MDUID, "0"}, err: "uid 0 asserted by process 42 running as uid 1000"},
		{name: "user peer claims gid", addr: unix, info: peerOf(1000, 100), md: []string{MDUID, "1000", MDGID, "0"}, err: "gid 0 asserted"},
		{name: "user peer claims group", addr: unix, info: peerOf(1000, 100, 10), md: []string{MDGroups, "10,6"}, err: "group 6 asserted"},
		{name: "unix without peer credentials", addr: unix, err: "neither"},
	} {
		p := &peer.Peer{Addr: tc.addr}
		if tc.info != nil {
			p.AuthInfo = tc.info.(PeerCredInfo)
		}
		ctx := peer.NewContext(context.Background(), p)
		if tc.md != nil {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(tc.md...))
		}
		c, err := identify(ctx, 0)
		if tc.err != "" {
			if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want permission denied with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.cred.NID != tc.nid || c.cred.Local != tc.local || c.cred.UID != tc.uid || c.cred.GID != tc.gid || !slices.Equal(c.cred.Groups, tc.grps) || c.cred.JobID != tc.job {
			t.Errorf("%s: got %+v", tc.name, c.cred)
		}
	}
	// The server's own uid is a local administrator too.
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: unix, AuthInfo: peerOf(1000, 100)})
	if c, err := identify(metadata.NewIncomingContext(ctx, metadata.Pairs(MDUID, "500")), 1000); err != nil || c.cred.UID != 500 {
		t.Errorf("server owner asserting uid 500: %+v %v", c.cred, err)
	}
	if c, err := identify(ctx, 1000); err != nil || c.cred.UID != 0 || c.cred.GID != 0 {
		t.Errorf("server owner asserting nothing: %+v %v", c.cred, err)
	}
	if _, err := identify(context.Background(), 0); !errors.Is(err, ErrPermission) {
		t.Errorf("no peer: %v", err)
	}
	ctx = peer.NewContext(context.Background(), &peer.Peer{Addr: unix, AuthInfo: PeerCredInfo{}})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(MDUID, "1", MDUID, "2"))
	if _, err := identify(ctx, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("repeated uid: %v", err)
	}
}

// BenchmarkIdentify: what identification costs per RPC for a TCP client
// asserting uid, gid and job id (the metadata gRPC itself adds included).
func BenchmarkIdentify(b *testing.B) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(":authority", "127.0.0.1:7988", "content-type", "application/grpc", "user-agent", "grpc-go/1.85.0",
		"grpc-accept-encoding", "gzip", MDUID, "0", MDGID, "0", MDJobID, "mdbench"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identify(ctx, 0); err != nil {
			b.Fatal(err)
		}
	}
}
