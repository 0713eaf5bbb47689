package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	"github.com/fidlog/fidlog/mdt"
	"github.com/fidlog/fidlog/nodemap"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// Readdir page sizes.
const (
	defaultReaddirEntries = 1024
	maxReaddirEntries     = 16384
)

// openFlagsAllowed are the OpenFlag bits OpenRequest.flags may carry.
const openFlagsAllowed = changelog.OpenRead | changelog.OpenWrite | changelog.OpenExec |
	changelog.OpenCreate | changelog.OpenExcl | changelog.OpenTrunc | changelog.OpenAppend

// namespaceService implements lustre.mdt.v1.NamespaceService.
type namespaceService struct {
	mdtv1.UnimplementedNamespaceServiceServer
	s *Server
}

func cred(ctx context.Context) mdt.Cred { return callerFrom(ctx).cred }

// byFID refuses the operations by FID (OpenFid, and Setattr and the xattr
// calls given a fid) to unprivileged peers on the unix socket: a FID
// reaches an object without the search permission its path needs, and
// reaches unlinked objects, as open_by_handle_at(2) needs
// CAP_DAC_READ_SEARCH and Lustre's .lustre/fid is root's. Root and the
// server's own uid on the socket (the mount, which asserts its callers'
// identities and whose kernel checked their descriptors) and TCP nodes
// (client kernels) may.
func (n *namespaceService) byFID(ctx context.Context, f *commonv1.Fid) (fid.FID, error) {
	if c := callerFrom(ctx); c.peer != nil && c.peer.UID != 0 && c.peer.UID != n.s.owner {
		return fid.Zero, fmt.Errorf("%w: operations by FID need a root peer (process %d runs as uid %d)", mdt.ErrNotPermitted, c.peer.PID, c.peer.UID)
	}
	return fidFromPB(f, "fid")
}

func (n *namespaceService) Stat(ctx context.Context, r *mdtv1.StatRequest) (*mdtv1.StatResponse, error) {
	a, err := n.s.m.Stat(ctx, cred(ctx), string(r.GetPath()))
	if err != nil {
		return nil, err
	}
	return &mdtv1.StatResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Readdir(ctx context.Context, r *mdtv1.ReaddirRequest) (*mdtv1.ReaddirResponse, error) {
	limit := defaultReaddirEntries
	if m := int(r.GetMaxEntries()); m > 0 {
		limit = min(m, maxReaddirEntries)
	}
	ents, more, err := n.s.m.ReaddirPage(ctx, cred(ctx), string(r.GetPath()), string(r.GetStartAfter()), limit)
	if err != nil {
		return nil, err
	}
	out := &mdtv1.ReaddirResponse{More: more}
	out.Entries = make([]*mdtv1.DirEntry, len(ents))
	for i, e := range ents {
		out.Entries[i] = dirEntryToPB(e)
	}
	return out, nil
}

func (n *namespaceService) Mkdir(ctx context.Context, r *mdtv1.MkdirRequest) (*mdtv1.MkdirResponse, error) {
	a, err := n.s.m.Mkdir(ctx, cred(ctx), string(r.GetPath()), r.GetMode()&07777)
	if err != nil {
		return nil, err
	}
	return &mdtv1.MkdirResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Create(ctx context.Context, r *mdtv1.CreateRequest) (*mdtv1.CreateResponse, error) {
	a, created, err := n.s.m.CreateFile(ctx, cred(ctx), string(r.GetPath()), r.GetMode()&07777, r.GetExclusive())
	if err != nil {
		return nil, err
	}
	return &mdtv1.CreateResponse{Attr: attrToPB(a), Created: created}, nil
}

func (n *namespaceService) Mknod(ctx context.Context, r *mdtv1.MknodRequest) (*mdtv1.MknodResponse, error) {
	t, perm, err := mknodTypeFromPB(r.GetMode())
	if err != nil {
		return nil, err
	}
	a, err := n.s.m.Mknod(ctx, cred(ctx), string(r.GetPath()), t, perm, r.GetRdev())
	if err != nil {
		return nil, err
	}
	return &mdtv1.MknodResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Link(ctx context.Context, r *mdtv1.LinkRequest) (*mdtv1.LinkResponse, error) {
	a, err := n.s.m.Link(ctx, cred(ctx), string(r.GetOldPath()), string(r.GetNewPath()))
	if err != nil {
		return nil, err
	}
	return &mdtv1.LinkResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Symlink(ctx context.Context, r *mdtv1.SymlinkRequest) (*mdtv1.SymlinkResponse, error) {
	a, err := n.s.m.Symlink(ctx, cred(ctx), string(r.GetTarget()), string(r.GetPath()))
	if err != nil {
		return nil, err
	}
	return &mdtv1.SymlinkResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Unlink(ctx context.Context, r *mdtv1.UnlinkRequest) (*mdtv1.UnlinkResponse, error) {
	if err := n.s.m.Unlink(ctx, cred(ctx), string(r.GetPath())); err != nil {
		return nil, err
	}
	return &mdtv1.UnlinkResponse{}, nil
}

func (n *namespaceService) Rmdir(ctx context.Context, r *mdtv1.RmdirRequest) (*mdtv1.RmdirResponse, error) {
	if err := n.s.m.Rmdir(ctx, cred(ctx), string(r.GetPath())); err != nil {
		return nil, err
	}
	return &mdtv1.RmdirResponse{}, nil
}

func (n *namespaceService) Rename(ctx context.Context, r *mdtv1.RenameRequest) (*mdtv1.RenameResponse, error) {
	if err := n.s.m.RenameFlags(ctx, cred(ctx), string(r.GetSrcPath()), string(r.GetDstPath()), r.GetFlags()); err != nil {
		return nil, err
	}
	return &mdtv1.RenameResponse{}, nil
}

func (n *namespaceService) Open(ctx context.Context, r *mdtv1.OpenRequest) (*mdtv1.OpenResponse, error) {
	if bad := r.GetFlags() &^ openFlagsAllowed; bad != 0 {
		return nil, argError("open flags %#x: unknown bits %#x", r.GetFlags(), bad)
	}
	created := false
	if r.GetFlags()&changelog.OpenCreate != 0 {
		_, statErr := n.s.m.Stat(ctx, cred(ctx), string(r.GetPath()))
		created = mdt.Errno(statErr) == syscall.ENOENT
	}
	h, a, err := n.s.m.Open(ctx, cred(ctx), string(r.GetPath()), r.GetFlags(), r.GetMode()&07777)
	if err != nil {
		return nil, err
	}
	return &mdtv1.OpenResponse{Handle: h, Attr: attrToPB(a), Created: created}, nil
}

func (n *namespaceService) OpenFid(ctx context.Context, r *mdtv1.OpenFidRequest) (*mdtv1.OpenFidResponse, error) {
	f, err := n.byFID(ctx, r.GetFid())
	if err != nil {
		return nil, err
	}
	if bad := r.GetFlags() &^ openFlagsAllowed; bad != 0 {
		return nil, argError("open flags %#x: unknown bits %#x", r.GetFlags(), bad)
	}
	h, a, err := n.s.m.OpenFID(ctx, cred(ctx), f, r.GetFlags(), r.GetReopenHandle())
	if err != nil {
		return nil, err
	}
	return &mdtv1.OpenFidResponse{Handle: h, Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Close(ctx context.Context, r *mdtv1.CloseRequest) (*mdtv1.CloseResponse, error) {
	if err := n.s.m.CloseFile(ctx, cred(ctx), r.GetHandle()); err != nil {
		return nil, err
	}
	return &mdtv1.CloseResponse{}, nil
}

func (n *namespaceService) Setattr(ctx context.Context, r *mdtv1.SetattrRequest) (*mdtv1.SetattrResponse, error) {
	var (
		a   mdt.Attr
		err error
	)
	if r.GetFid() != nil {
		f, ferr := n.byFID(ctx, r.GetFid())
		if ferr != nil {
			return nil, ferr
		}
		a, err = n.s.m.SetattrFID(ctx, cred(ctx), f, r.GetHandle(), setattrFromPB(r))
	} else {
		if r.GetHandle() != 0 {
			return nil, argError("setattr: handle %d without fid", r.GetHandle())
		}
		a, err = n.s.m.Setattr(ctx, cred(ctx), string(r.GetPath()), setattrFromPB(r))
	}
	if err != nil {
		return nil, err
	}
	return &mdtv1.SetattrResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Setxattr(ctx context.Context, r *mdtv1.SetxattrRequest) (*mdtv1.SetxattrResponse, error) {
	var flags int
	switch r.GetMode() {
	case mdtv1.SetxattrMode_SETXATTR_MODE_UNSPECIFIED:
	case mdtv1.SetxattrMode_SETXATTR_MODE_CREATE:
		flags = mdt.XattrCreate
	case mdtv1.SetxattrMode_SETXATTR_MODE_REPLACE:
		flags = mdt.XattrReplace
	default:
		return nil, argError("unknown setxattr mode %d", r.GetMode())
	}
	var err error
	if r.GetFid() != nil {
		f, ferr := n.byFID(ctx, r.GetFid())
		if ferr != nil {
			return nil, ferr
		}
		err = n.s.m.SetxattrFID(ctx, cred(ctx), f, r.GetName(), r.GetValue(), flags)
	} else {
		err = n.s.m.Setxattr(ctx, cred(ctx), string(r.GetPath()), r.GetName(), r.GetValue(), flags)
	}
	if err != nil {
		return nil, err
	}
	return &mdtv1.SetxattrResponse{}, nil
}

func (n *namespaceService) Removexattr(ctx context.Context, r *mdtv1.RemovexattrRequest) (*mdtv1.RemovexattrResponse, error) {
	var err error
	if r.GetFid() != nil {
		f, ferr := n.byFID(ctx, r.GetFid())
		if ferr != nil {
			return nil, ferr
		}
		err = n.s.m.RemovexattrFID(ctx, cred(ctx), f, r.GetName())
	} else {
		err = n.s.m.Removexattr(ctx, cred(ctx), string(r.GetPath()), r.GetName())
	}
	if err != nil {
		return nil, err
	}
	return &mdtv1.RemovexattrResponse{}, nil
}

func (n *namespaceService) Getxattr(ctx context.Context, r *mdtv1.GetxattrRequest) (*mdtv1.GetxattrResponse, error) {
	size := -1
	if r.Size != nil {
		size = int(r.GetSize())
	}
	var (
		v   []byte
		n2  int
		err error
	)
	if r.GetFid() != nil {
		f, ferr := n.byFID(ctx, r.GetFid())
		if ferr != nil {
			return nil, ferr
		}
		v, n2, err = n.s.m.GetxattrFID(ctx, cred(ctx), f, r.GetName(), size)
	} else {
		v, n2, err = n.s.m.GetxattrSize(ctx, cred(ctx), string(r.GetPath()), r.GetName(), size)
	}
	if err != nil {
		return nil, err
	}
	return &mdtv1.GetxattrResponse{Value: v, Size: uint32(n2)}, nil
}

func (n *namespaceService) Listxattr(ctx context.Context, r *mdtv1.ListxattrRequest) (*mdtv1.ListxattrResponse, error) {
	var (
		names []string
		err   error
	)
	if r.GetFid() != nil {
		f, ferr := n.byFID(ctx, r.GetFid())
		if ferr != nil {
			return nil, ferr
		}
		names, err = n.s.m.ListxattrFID(ctx, cred(ctx), f)
	} else {
		names, err = n.s.m.Listxattr(ctx, cred(ctx), string(r.GetPath()))
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return &mdtv1.ListxattrResponse{Names: names}, nil
}

func (n *namespaceService) Fid2Path(ctx context.Context, r *mdtv1.Fid2PathRequest) (*mdtv1.Fid2PathResponse, error) {
	f, err := fidFromPB(r.GetFid(), "fid")
	if err != nil {
		return nil, err
	}
	if f.IsZero() {
		return nil, argError("invalid FID '%s'", f)
	}
	if err := n.s.needRole(ctx, nodemap.RoleByFID, "fid2path"); err != nil {
		return nil, err
	}
	link := -1
	if r.Link != nil {
		link = int(r.GetLink())
	}
	paths, err := n.s.m.Fid2Path(ctx, cred(ctx), f, link)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(paths))
	for i, p := range paths {
		// The wire form of the root is "", with no leading '/'.
		out[i] = []byte(strings.TrimPrefix(p, "/"))
	}
	return &mdtv1.Fid2PathResponse{Paths: out}, nil
}

func (n *namespaceService) Path2Fid(ctx context.Context, r *mdtv1.Path2FidRequest) (*mdtv1.Path2FidResponse, error) {
	f, err := n.s.m.Path2Fid(ctx, cred(ctx), string(r.GetPath()))
	if err != nil {
		return nil, err
	}
	return &mdtv1.Path2FidResponse{Fid: fidToPB(f)}, nil
}

func (n *namespaceService) Write(ctx context.Context, r *mdtv1.WriteRequest) (*mdtv1.WriteResponse, error) {
	a, err := n.s.m.WriteFile(ctx, cred(ctx), r.GetHandle(), r.GetOffset(), r.GetData())
	if err != nil {
		return nil, err
	}
	return &mdtv1.WriteResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Read(ctx context.Context, r *mdtv1.ReadRequest) (*mdtv1.ReadResponse, error) {
	data, err := n.s.m.ReadFile(ctx, cred(ctx), r.GetHandle(), r.GetOffset(), int(r.GetLength()))
	if err != nil {
		return nil, err
	}
	return &mdtv1.ReadResponse{Data: data}, nil
}

func (n *namespaceService) StatFid(ctx context.Context, r *mdtv1.StatFidRequest) (*mdtv1.StatFidResponse, error) {
	f, err := fidFromPB(r.GetFid(), "fid")
	if err != nil {
		return nil, err
	}
	a, err := n.s.m.StatFID(ctx, cred(ctx), f)
	if err != nil {
		return nil, err
	}
	return &mdtv1.StatFidResponse{Attr: attrToPB(a)}, nil
}

func (n *namespaceService) Statfs(ctx context.Context, _ *mdtv1.StatfsRequest) (*mdtv1.StatfsResponse, error) {
	st, err := n.s.m.Statfs(ctx, cred(ctx))
	if err != nil {
		return nil, err
	}
	return &mdtv1.StatfsResponse{
		BlockSize: st.BlockSize, Blocks: st.Blocks, BlocksFree: st.BlocksFree, BlocksAvailable: st.BlocksAv,
		Files: st.Files, FilesFree: st.FilesFree, NameMax: st.NameMax,
	}, nil
}
