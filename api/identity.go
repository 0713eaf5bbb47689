package api

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/mdt"
	"github.com/fidlog/fidlog/nodemap"
)

// Metadata keys that carry the caller's identity (proto/README.md).
const (
	MDUID    = "lustre-uid"
	MDGID    = "lustre-gid"
	MDGroups = "lustre-groups"
	MDJobID  = "lustre-jobid"
)

// LocalNID is the NID of a caller on the unix socket.
const LocalNID = "0@lo"

// caller is who sent a request: the credentials it acts with and, on the
// unix socket, what the kernel said about the process.
type caller struct {
	cred mdt.Cred
	// peer is the kernel's word on a unix socket caller; nil over TCP.
	peer *PeerCred
}

type callerKey struct{}

// callerFrom returns the caller the interceptors attached to ctx.
func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// asserted is the identity a request's metadata claims; has* say which
// keys were present.
type asserted struct {
	uid, gid          uint32
	groups            []uint32
	jobid             string
	hasUID, hasGID    bool
	hasGroups, hasJob bool
}

// parseAsserted reads the identity metadata of a request.
func parseAsserted(md metadata.MD) (asserted, error) {
	return parseAssertedFrom(md.Get)
}

// parsedIdentity is the identity metadata of an Exec metadata set, parsed
// once for all the calls that name it (exec.go).
type parsedIdentity struct {
	a   asserted
	err error
}

type parsedIdentityKey struct{}

// withParsedIdentity returns ctx (whose incoming metadata is md) with md's
// identity parsed, for assertedOf.
func withParsedIdentity(ctx context.Context, md metadata.MD) context.Context {
	a, err := parseAssertedFrom(func(key string) []string { return md[key] })
	a.groups = slices.Clip(a.groups) // shared: an append must copy
	return context.WithValue(ctx, parsedIdentityKey{}, &parsedIdentity{a, err})
}

// assertedOf returns the identity a request's metadata asserts.
func assertedOf(ctx context.Context) (asserted, error) {
	if p, ok := ctx.Value(parsedIdentityKey{}).(*parsedIdentity); ok {
		return p.a, p.err
	}
	// One key at a time: FromIncomingContext copies every key and value
	// of the request's metadata (gRPC's own included) into a new map.
	return parseAssertedFrom(func(key string) []string { return metadata.ValueFromIncomingContext(ctx, key) })
}

// parseAssertedFrom reads the identity metadata of a request through get,
// which returns the values of one key.
func parseAssertedFrom(get func(key string) []string) (asserted, error) {
	var a asserted
	one := func(key string) (string, bool, error) {
		v := get(key)
		switch len(v) {
		case 0:
			return "", false, nil
		case 1:
			return v[0], true, nil
		}
		return "", false, argError("metadata %s given %d times", key, len(v))
	}
	id := func(key string) (uint32, bool, error) {
		v, ok, err := one(key)
		if err != nil || !ok {
			return 0, false, err
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return 0, false, argError("metadata %s: invalid id '%s'", key, v)
		}
		return uint32(n), true, nil
	}
	var err error
	if a.uid, a.hasUID, err = id(MDUID); err != nil {
		return a, err
	}
	if a.gid, a.hasGID, err = id(MDGID); err != nil {
		return a, err
	}
	groups, ok, err := one(MDGroups)
	if err != nil {
		return a, err
	}
	a.hasGroups = ok && strings.TrimSpace(groups) != ""
	for _, g := range strings.Split(groups, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return a, argError("metadata %s: invalid group id '%s' in '%s'", MDGroups, g, groups)
		}
		a.groups = append(a.groups, uint32(n))
	}
	if a.jobid, a.hasJob, err = one(MDJobID); err != nil {
		return a, err
	}
	if len(a.jobid) > changelog.MaxJobID {
		return a, argError("metadata %s: job id '%s' is longer than %d bytes", MDJobID, a.jobid, changelog.MaxJobID)
	}
	return a, nil
}

// identify derives the caller from the connection and the metadata.
//
// On the unix socket the kernel says who the peer is. A peer running as
// root, or as the uid the server itself runs as (admin: it owns the data
// and could change it directly), is the local administrator: it acts as
// whatever identity it asserts, uid 0 and gid 0 if none. Any other peer
// acts as its own uid, gid and supplementary groups: asserting another uid
// or gid, or a group it is not in, is ErrPermission. Either way the
// credentials are marked Local: nodemaps do not map them.
//
// Over TCP (a node authenticated by mutual TLS, or anyone with
// --insecure) the asserted identity is taken as a Lustre client kernel's,
// uid 0 if none, and the IP NID selects the nodemap that maps it.
func identify(ctx context.Context, admin uint32) (caller, error) {
	var c caller
	p, _ := peer.FromContext(ctx)
	a, err := assertedOf(ctx)
	if err != nil {
		return c, err
	}
	c.cred = mdt.Cred{UID: a.uid, GID: a.gid, Groups: a.groups, JobID: a.jobid}
	if p == nil {
		return c, fmt.Errorf("%w: no peer on the connection", ErrPermission)
	}
	if info, ok := p.AuthInfo.(PeerCredInfo); ok {
		pc := info.Cred
		c.peer = &pc
		c.cred.NID, c.cred.Local = LocalNID, true
		if pc.UID == 0 || pc.UID == admin {
			return c, nil
		}
		switch {
		case a.hasUID && a.uid != pc.UID:
			return c, fmt.Errorf("%w: uid %d asserted by process %d running as uid %d", ErrPermission, a.uid, pc.PID, pc.UID)
		case a.hasGID && a.gid != pc.GID:
			return c, fmt.Errorf("%w: gid %d asserted by process %d running as gid %d", ErrPermission, a.gid, pc.PID, pc.GID)
		}
		c.cred.UID, c.cred.GID = pc.UID, pc.GID
		if !a.hasGroups {
			c.cred.Groups = pc.Groups
			return c, nil
		}
		for _, g := range a.groups {
			if g != pc.GID && !slices.Contains(pc.Groups, g) {
				return c, fmt.Errorf("%w: group %d asserted by process %d (uid %d), which is not in it", ErrPermission, g, pc.PID, pc.UID)
			}
		}
		return c, nil
	}
	switch addr := p.Addr.(type) {
	case *net.TCPAddr:
		c.cred.NID = tcpNID(addr.AddrPort().Addr())
	default:
		ap, err := netip.ParseAddrPort(p.Addr.String())
		if err != nil {
			return c, fmt.Errorf("%w: connection from %s (%s) is neither an authenticated unix socket peer nor a TCP node", ErrPermission, p.Addr, p.Addr.Network())
		}
		c.cred.NID = nodemap.NIDFromAddr(ap.Addr()).String()
	}
	return c, nil
}

// nids caches the NID text of TCP peers' addresses (netip.Addr -> string):
// a connection sends many RPCs from one address.
var nids sync.Map

// maxNIDs bounds nids; beyond it NIDs are formatted per RPC.
const maxNIDs = 4096

var nidCount atomic.Int64

func tcpNID(a netip.Addr) string {
	if v, ok := nids.Load(a); ok {
		return v.(string)
	}
	s := nodemap.NIDFromAddr(a).String()
	if nidCount.Load() < maxNIDs {
		if _, loaded := nids.LoadOrStore(a, s); !loaded {
			nidCount.Add(1)
		}
	}
	return s
}

// unaryInterceptor attaches the caller to ctx and maps every error to a
// status.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if w, ok := ctx.Value(writerKey{}).(*writer); ok {
		defer w.handled()
	}
	c, err := identify(ctx, s.owner)
	if err != nil {
		return nil, s.finish(info.FullMethod, err)
	}
	start := s.opts.Clock()
	resp, err := h(context.WithValue(ctx, callerKey{}, c), req)
	err = s.finish(info.FullMethod, err)
	if f := s.opts.OnRPC; f != nil {
		f(info.FullMethod, s.opts.Clock().Sub(start), err)
	}
	return resp, err
}

// streamInterceptor is unaryInterceptor for streams.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	c, err := identify(ss.Context(), s.owner)
	if err != nil {
		return s.finish(info.FullMethod, err)
	}
	return s.finish(info.FullMethod, h(srv, &callerStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callerKey{}, c)}))
}

// finish maps err to a status and logs failures the server must look at.
func (s *Server) finish(method string, err error) error {
	if err == nil {
		return nil
	}
	err2 := toStatus(err)
	if st, ok := status.FromError(err2); ok {
		switch st.Code() {
		case codes.Internal, codes.Unknown, codes.DataLoss:
			s.opts.Logger.Error("rpc_failed", "method", method, "code", st.Code().String(), "err", err)
		default:
			s.opts.Logger.Debug("rpc_failed", "method", method, "code", st.Code().String(), "err", err)
		}
	}
	return err2
}

// callerStream carries the caller in its context.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *callerStream) Context() context.Context { return c.ctx }

// needRole enforces an rbac role without asking for root: fid2path needs
// byfid_ops (Lustre's rbac). Local callers and nodemaps inactive have
// every role.
func (s *Server) needRole(ctx context.Context, role nodemap.Roles, what string) error {
	c := callerFrom(ctx)
	id, err := s.m.Identify(c.cred)
	if err != nil {
		return err
	}
	if id.Roles.Has(role) {
		return nil
	}
	return fmt.Errorf("%w: %s needs the rbac role %s (nodemap '%s' grants %s)", ErrPermission, what, role, id.Nodemap, id.Roles)
}

// authorize enforces the rule for changelog access and administration
// (sanity-sec 35 and 64e): the caller must be an unsquashed root whose
// nodemap grants role. Root on the unix socket (acting as uid 0) always
// is; another local user never is; a TCP node is while nodemaps are
// inactive, else when its nodemap has admin=1 and role in rbac. It reads
// the nodemap state directly (one classification, no parameter tree).
func (s *Server) authorize(ctx context.Context, role nodemap.Roles, what string) error {
	c := callerFrom(ctx)
	id, err := s.m.Identify(c.cred)
	if err != nil {
		return err
	}
	if id.Admin && id.UID == 0 && id.Roles.Has(role) {
		return nil
	}
	switch {
	case c.peer != nil && c.peer.UID != 0 && c.peer.UID != s.owner:
		return fmt.Errorf("%w: %s needs root (process %d runs as uid %d)", ErrPermission, what, c.peer.PID, c.peer.UID)
	case c.cred.Local:
		return fmt.Errorf("%w: %s needs root (the local administrator acts as uid %d)", ErrPermission, what, c.cred.UID)
	case !id.Admin || id.UID != 0:
		return fmt.Errorf("%w: %s needs root on an admin nodemap (client %s uid %d maps to uid %d on nodemap '%s')",
			ErrPermission, what, c.cred.NID, c.cred.UID, id.UID, id.Nodemap)
	}
	return fmt.Errorf("%w: %s needs the rbac role %s (nodemap '%s' grants %s)", ErrPermission, what, role, id.Nodemap, id.Roles)
}
