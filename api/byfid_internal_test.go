package api

import (
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/mdt"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestByFIDNeedsRootPeer: an unprivileged process on the unix socket may
// not reach objects by FID (OpenFid, Setattr or the xattr calls given a
// fid); a root peer (the mount) may.
func TestByFIDNeedsRootPeer(t *testing.T) {
	s := authServer(t, 0)
	ns := &namespaceService{s: s}
	f := &commonv1.Fid{Seq: 0x200000007, Oid: 1} // the root directory
	user := withCaller(caller{cred: mdt.Cred{UID: 1000, GID: 1000, Local: true, NID: LocalNID}, peer: &PeerCred{PID: 42, UID: 1000, GID: 1000}})
	calls := map[string]func() error{
		"OpenFid": func() error {
			_, err := ns.OpenFid(user, &mdtv1.OpenFidRequest{Fid: f})
			return err
		},
		"Setattr": func() error {
			m := uint32(0o700)
			_, err := ns.Setattr(user, &mdtv1.SetattrRequest{Fid: f, Mode: &m})
			return err
		},
		"Setxattr": func() error {
			_, err := ns.Setxattr(user, &mdtv1.SetxattrRequest{Fid: f, Name: "user.k", Value: []byte("v")})
			return err
		},
		"Getxattr": func() error {
			_, err := ns.Getxattr(user, &mdtv1.GetxattrRequest{Fid: f, Name: "user.k"})
			return err
		},
		"Listxattr": func() error {
			_, err := ns.Listxattr(user, &mdtv1.ListxattrRequest{Fid: f})
			return err
		},
		"Removexattr": func() error {
			_, err := ns.Removexattr(user, &mdtv1.RemovexattrRequest{Fid: f, Name: "user.k"})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); mdt.Errno(err) != syscall.EPERM {
			t.Errorf("%s by FID as an unprivileged peer: %v, want EPERM", name, err)
		}
	}
	rootPeer := withCaller(caller{cred: mdt.Cred{UID: 1000, GID: 1000, Local: true, NID: LocalNID}, peer: &PeerCred{PID: 43}})
	if _, err := ns.Listxattr(rootPeer, &mdtv1.ListxattrRequest{Fid: f}); err != nil {
		t.Fatalf("listxattr by FID from a root peer asserting uid 1000: %v", err)
	}
}
