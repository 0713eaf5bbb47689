package api

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

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

// caller is who sent a request: the credentials it claims and whether it
// came over the unix socket (always the local administrator).
type caller struct {
	cred  mdt.Cred
	local bool
}

type callerKey struct{}

// callerFrom returns the caller the interceptors attached to ctx.
func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// identify derives the caller from the connection and the metadata.
func identify(ctx context.Context) (caller, error) {
	var c caller
	if p, ok := peer.FromContext(ctx); ok {
		switch a := p.Addr.(type) {
		case *net.UnixAddr:
			c.local, c.cred.NID = true, LocalNID
		case *net.TCPAddr:
			ap := a.AddrPort().Addr()
			c.cred.NID = nodemap.NIDFromAddr(ap).String()
		default:
			if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
				c.cred.NID = nodemap.NIDFromAddr(ap.Addr()).String()
			}
		}
	}
	if c.cred.NID == "" {
		c.cred.NID = LocalNID
	}
	md, _ := metadata.FromIncomingContext(ctx)
	one := func(key string) (string, error) {
		v := md.Get(key)
		switch len(v) {
		case 0:
			return "", nil
		case 1:
			return v[0], nil
		}
		return "", argError("metadata %s given %d times", key, len(v))
	}
	id := func(key string) (uint32, error) {
		v, err := one(key)
		if err != nil || v == "" {
			return 0, err
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return 0, argError("metadata %s: invalid id '%s'", key, v)
		}
		return uint32(n), nil
	}
	var err error
	if c.cred.UID, err = id(MDUID); err != nil {
		return c, err
	}
	if c.cred.GID, err = id(MDGID); err != nil {
		return c, err
	}
	groups, err := one(MDGroups)
	if err != nil {
		return c, err
	}
	for _, g := range strings.Split(groups, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return c, argError("metadata %s: invalid group id '%s' in '%s'", MDGroups, g, groups)
		}
		c.cred.Groups = append(c.cred.Groups, uint32(n))
	}
	if c.cred.JobID, err = one(MDJobID); err != nil {
		return c, err
	}
	if len(c.cred.JobID) > changelog.MaxJobID {
		return c, argError("metadata %s: job id '%s' is longer than %d bytes", MDJobID, c.cred.JobID, changelog.MaxJobID)
	}
	return c, nil
}

// unaryInterceptor attaches the caller to ctx and maps every error to a
// status.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c, err := identify(ctx)
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
	c, err := identify(ss.Context())
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

// authorizeAdmin enforces Lustre's rule for changelog access and
// administration (sanity-sec 35): while nodemaps are active the caller must
// be root on an admin nodemap. The unix socket is always the local
// administrator; while nodemaps are inactive everyone is trusted.
func (s *Server) authorizeAdmin(ctx context.Context, what string) error {
	c := callerFrom(ctx)
	if c.local {
		return nil
	}
	active, err := s.nodemapActive()
	if err != nil {
		return err
	}
	if !active {
		return nil
	}
	id, err := s.m.Identify(c.cred)
	if err != nil {
		return err
	}
	if id.Admin && id.UID == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s needs root on an admin nodemap (client %s uid %d maps to uid %d on nodemap '%s')",
		ErrPermission, what, c.cred.NID, c.cred.UID, id.UID, id.Nodemap)
}
