package api

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		addr  net.Addr
		md    []string
		nid   string
		local bool
		uid   uint32
		grps  []uint32
		job   string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.168.1.10"), Port: 4000}, nil, "192.168.1.10@tcp", false, 0, nil, ""},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1}, nil, "10.0.0.1@tcp", false, 0, nil, ""},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 1}, []string{MDUID, "500", MDGroups, "1, 2,3", MDJobID, "dd.0"}, "2001:db8::7@tcp", false, 500, []uint32{1, 2, 3}, "dd.0"},
		{&net.UnixAddr{Name: "@", Net: "unix"}, []string{MDUID, "0"}, "0@lo", true, 0, nil, ""},
	} {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: tc.addr})
		if tc.md != nil {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(tc.md...))
		}
		c, err := identify(ctx)
		if err != nil {
			t.Fatalf("%v: %v", tc.addr, err)
		}
		if c.cred.NID != tc.nid || c.local != tc.local || c.cred.UID != tc.uid || !slices.Equal(c.cred.Groups, tc.grps) || c.cred.JobID != tc.job {
			t.Errorf("%v: got %+v local=%v", tc.addr, c.cred, c.local)
		}
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(MDUID, "1", MDUID, "2"))
	if _, err := identify(ctx); !errors.Is(err, ErrInvalid) {
		t.Errorf("repeated uid: %v", err)
	}
}
