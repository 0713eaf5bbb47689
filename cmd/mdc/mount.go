package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/cmd/internal/gctune"
	"github.com/fidlog/fidlog/fid"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// The mount (mdc mount) is a FUSE client of one MDT built on
// github.com/hanwen/go-fuse/v2 (maintained, pure Go, mounts directly as
// root where no fusermount exists). Every FUSE request becomes one or a few
// NamespaceService calls that carry the calling process's uid, gid,
// supplementary groups and job id, so the server checks permissions and
// records the changelog as that process. A FUSE release has no caller: the
// handle remembers who opened it, and the close is sent as the opener.
// Names and attributes are cached for short timeouts (mountcache.go says
// what and its coherence); every operation that changes something, and
// every open, reaches the server and is audited.

// defaultJobIDFormat is Lustre's jobid_var=procname_uid: "<comm>.<uid>".
const defaultJobIDFormat = "%e.%u"

// mountRPCTimeout bounds each call, so that a server that is down makes
// operations fail (EIO/ENOTCONN) instead of hanging.
var mountRPCTimeout = 30 * time.Second

// mountOptions are the flags of mdc mount.
type mountOptions struct {
	jobFmt     string
	debug      bool
	cpuprofile string
	// How long the kernel (and the mount) may use what the server said
	// about a name, a missing name and an object's attributes before
	// asking again (see mountcache.go).
	entryTimeout, negativeTimeout, attrTimeout time.Duration
}

// Default cache timeouts. Names are not cached: the kernel leaves the
// search permission of directories to a FUSE file system without
// default_permissions (the server checks it on every lookup, as the
// caller, and audits denials), so a cached name would let any user reach
// an object another user looked up, in a directory they may not search.
// Attributes are cached for a second, as NFS's attribute cache: the
// kernel uses them only after a lookup the server allowed, or through a
// descriptor already open.
const (
	defaultEntryTimeout    = 0
	defaultNegativeTimeout = 0
	defaultAttrTimeout     = time.Second
)

func (a *app) mountCmd() *cobra.Command {
	var mo mountOptions
	cmd := a.verb("mount MOUNTPOINT", "Mount the MDT with FUSE (foreground, until umount, SIGINT or SIGTERM)", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string) error {
			if err := checkJobIDFormat(mo.jobFmt); err != nil {
				return cli.Usage(cmd, "mdc mount: --jobid-format '%s': %v", mo.jobFmt, err)
			}
			for _, t := range []struct {
				name string
				d    time.Duration
			}{{"entry-timeout", mo.entryTimeout}, {"negative-timeout", mo.negativeTimeout}, {"attr-timeout", mo.attrTimeout}} {
				if t.d < 0 || t.d > time.Hour {
					return cli.Usage(cmd, "mdc mount: --%s %v: must be between 0 and 1h", t.name, t.d)
				}
			}
			return a.mount(cmd.Context(), args[0], mo)
		})
	cmd.Flags().StringVar(&mo.jobFmt, "jobid-format", defaultJobIDFormat,
		"job id of each request, as Lustre's jobid_name: %e process name, %u uid, %g gid, %p pid, %h host, %% a '%'")
	cmd.Flags().BoolVar(&mo.debug, "debug", false, "log every FUSE request on stderr")
	cmd.Flags().DurationVar(&mo.entryTimeout, "entry-timeout", defaultEntryTimeout,
		"how long a name looked up on the server is trusted (another client's rename or unlink shows after at most this long); 0: ask every time. Above 0, a user may reach what another user looked up in a directory the first may not search: only where every user may see the whole tree")
	cmd.Flags().DurationVar(&mo.negativeTimeout, "negative-timeout", defaultNegativeTimeout,
		"how long a missing name is trusted (another client's create shows after at most this long); 0: ask every time. Above 0, the same caveat as --entry-timeout")
	cmd.Flags().DurationVar(&mo.attrTimeout, "attr-timeout", defaultAttrTimeout,
		"how long attributes, and the absence of an xattr, read from the server are trusted (another client's chmod, write or setxattr shows after at most this long; an open always checks); 0: ask every time")
	cmd.Flags().StringVar(&mo.cpuprofile, "cpuprofile", "", "write a CPU profile of the mount to this file until it exits (diagnostics)")
	return cmd
}

func checkJobIDFormat(f string) error {
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		if i+1 == len(f) || !strings.ContainsRune("eugph%", rune(f[i+1])) {
			return errors.New("unknown conversion (use %e %u %g %p %h %%)")
		}
		i++
	}
	return nil
}

// mount serves the mount point until it is unmounted or a signal arrives.
func (a *app) mount(ctx context.Context, dir string, mo mountOptions) error {
	st, err := os.Stat(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		// A FUSE mount whose daemon died (kill -9, OOM) stays until
		// unmounted; every access to it fails so.
		return a.fail(err, "mount point '%s' holds a mount whose daemon is gone (umount '%s' first)", dir, dir)
	}
	if err != nil {
		return a.fail(err, "mount point '%s'", dir)
	}
	if !st.IsDir() {
		return a.fail(syscall.ENOTDIR, "mount point '%s'", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return a.fail(err, "mount point '%s'", dir)
	}
	if len(ents) > 0 {
		return a.fail(syscall.ENOTEMPTY, "mount point '%s' is not empty", dir)
	}
	// The server must answer before the kernel sees the mount.
	rctx, cancel := context.WithTimeout(ctx, mountRPCTimeout)
	_, err = a.ns.StatFid(rctx, &mdtv1.StatFidRequest{Fid: client.FIDToPB(fid.Root)})
	cancel()
	if err != nil {
		return a.fail(err, "cannot reach the MDT at '%s'", a.conn.Target())
	}
	host, _ := os.Hostname()
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	if mo.cpuprofile != "" {
		f, err := os.Create(mo.cpuprofile)
		if err != nil {
			return a.fail(err, "--cpuprofile '%s'", mo.cpuprofile)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return a.fail(err, "--cpuprofile '%s'", mo.cpuprofile)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	gctune.Apply() // a FUSE daemon is a server too: few, rarer collections
	mfs := &mountFS{ns: a.ns, jobFmt: mo.jobFmt, host: host, attrTimeout: mo.attrTimeout, entryTimeout: mo.entryTimeout}
	root := &node{m: mfs, fid: fid.Root}
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount:        true,
			AllowOther:         true, // other users' processes are the point
			FsName:             "fidlog:" + a.conn.Target(),
			Name:               "fidlog",
			DisableReadDirPlus: true,
			MaxWrite:           1 << 20,
			Debug:              mo.debug,
		},
		EntryTimeout:    &mo.entryTimeout,
		AttrTimeout:     &mo.attrTimeout,
		NegativeTimeout: &mo.negativeTimeout,
		// A mode of 0 is a mode (chmod 000), not "unset".
		NullPermissions: true,
		RootStableAttr:  &fs.StableAttr{Ino: ino(fid.Root), Mode: syscall.S_IFDIR},
	}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		fmt.Fprintf(a.stderr, "mdc: mount '%s': %v\n", dir, err)
		if a.rc == 0 {
			a.rc = cli.SysErrno(err)
		}
		return nil
	}
	kctx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	var keepers sync.WaitGroup
	keepers.Go(func() { mfs.keepHandles(kctx, a.conn.Conn(), a.stderr) })
	defer func() {
		stopKeep()
		keepers.Wait()
	}()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-sigs:
		for {
			if err := srv.Unmount(); err == nil {
				break
			}
			// Busy (a process has its cwd inside): retry until it lets
			// go or another signal forces a lazy unmount.
			select {
			case <-sigs:
				_ = syscall.Unmount(dir, syscall.MNT_DETACH)
			case <-time.After(200 * time.Millisecond):
			case <-done:
			}
			select {
			case <-done:
			default:
				continue
			}
			break
		}
		<-done
	}
	return nil
}

// ino is Lustre's fid_flatten: the inode number a client shows for a FID.
func ino(f fid.FID) uint64 {
	if f.Seq < 0x200000000 { // IGIF and special sequences
		return f.Seq<<32 | uint64(f.Oid)
	}
	n := f.Seq<<24 + (f.Seq>>24)&0xffffff0000 + uint64(f.Oid)
	if n == 0 {
		n = 1
	}
	return n
}

// mountFS is the state shared by every node of one mount.
type mountFS struct {
	ns          mdtv1.NamespaceServiceClient
	jobFmt      string
	host        string
	files       handles       // open files (mount_handles.go)
	attrTimeout time.Duration // mountcache.go
	// entryTimeout is --entry-timeout: how long the kernel keeps any name.
	entryTimeout time.Duration
	dirEpoch     atomic.Uint64 // mountneg.go
	procs        procCache
	comms        commFiles
}

// caller is the identity of the process behind a FUSE request.
type caller struct {
	id client.Identity
}

// callerOf reads the identity of the process that made the request: uid
// and gid from the request, the process name from /proc/PID/comm (read
// for every request, through a descriptor kept open: the job id follows
// an exec), supplementary groups from
// /proc/PID/status (kept for identityTTL).
func (m *mountFS) callerOf(ctx context.Context) caller {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return caller{}
	}
	id := client.Identity{UID: c.Uid, GID: c.Gid, Groups: m.procs.groups(c.Pid, c.Uid, c.Gid)}
	id.JobID = m.jobID(m.comms.comm(c.Pid), c.Uid, c.Gid, c.Pid)
	return caller{id: id}
}

// jobID expands the job id format (Lustre's jobid_name conversions).
func (m *mountFS) jobID(comm string, uid, gid, pid uint32) string {
	var b strings.Builder
	f := m.jobFmt
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'e':
			b.WriteString(comm)
		case 'u':
			b.WriteString(strconv.FormatUint(uint64(uid), 10))
		case 'g':
			b.WriteString(strconv.FormatUint(uint64(gid), 10))
		case 'p':
			b.WriteString(strconv.FormatUint(uint64(pid), 10))
		case 'h':
			b.WriteString(m.host)
		case '%':
			b.WriteByte('%')
		}
	}
	// Job ids are text of at most 31 bytes (Lustre's LUSTRE_JOBID_SIZE - 1).
	s := strings.ToValidUTF8(b.String(), "?")
	if len(s) > 31 {
		s = s[:31]
		for !utf8Valid(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\x00") == s }

// call returns a context for one RPC as c, bounded by mountRPCTimeout.
func (c caller) call(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mountRPCTimeout)
	return c.id.Context(ctx), cancel
}

// errno turns a failed call into the errno the kernel returns.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if n := cli.Errno(err); n > 0 {
		return syscall.Errno(n)
	}
	return syscall.EIO
}

// node is one file system object, known by its FID; path-based calls use
// the path of the node in the kernel's tree.
type node struct {
	fs.Inode
	m     *mountFS
	fid   fid.FID
	cache objCache // mountcache.go
	names dirNames // mountneg.go
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeReader         = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeFlusher        = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeReleaser       = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeGetxattrer     = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeListxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeAccesser       = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
)

func (n *node) path() string { return n.Path(nil) }

func (n *node) child(name string) string {
	if p := n.path(); p != "" {
		return p + "/" + name
	}
	return name
}

// typeBits maps an object type to its S_IFMT bits.
func typeBits(t commonv1.ObjectType) uint32 {
	switch t {
	case commonv1.ObjectType_OBJECT_TYPE_DIR:
		return syscall.S_IFDIR
	case commonv1.ObjectType_OBJECT_TYPE_LNK:
		return syscall.S_IFLNK
	case commonv1.ObjectType_OBJECT_TYPE_CHR:
		return syscall.S_IFCHR
	case commonv1.ObjectType_OBJECT_TYPE_BLK:
		return syscall.S_IFBLK
	case commonv1.ObjectType_OBJECT_TYPE_FIFO:
		return syscall.S_IFIFO
	case commonv1.ObjectType_OBJECT_TYPE_SOCK:
		return syscall.S_IFSOCK
	}
	return syscall.S_IFREG
}

func fillAttr(out *fuse.Attr, a *commonv1.Attr) {
	f := client.FIDFromPB(a.GetFid())
	out.Ino = ino(f)
	out.Mode = typeBits(a.GetType()) | a.GetMode()&07777
	out.Size = a.GetSize()
	out.Blocks = (a.GetSize() + 511) / 512
	out.Blksize = 4096
	out.Nlink = a.GetNlink()
	out.Uid, out.Gid = a.GetUid(), a.GetGid()
	out.Rdev = uint32(a.GetRdev())
	split := func(ns int64) (uint64, uint32) { return uint64(ns / 1e9), uint32(ns % 1e9) }
	out.Atime, out.Atimensec = split(a.GetAtimeNs())
	out.Mtime, out.Mtimensec = split(a.GetMtimeNs())
	out.Ctime, out.Ctimensec = split(a.GetCtimeNs())
}

// newChild makes (or finds) the kernel-tree node of an object, entry name
// of n, and caches its attributes. The node already in the tree under
// that name is reused when it is the same object: go-fuse would keep it
// anyway and drop a new one, with what was cached in it.
func (n *node) newChild(ctx context.Context, name string, a *commonv1.Attr, out *fuse.EntryOut) *fs.Inode {
	fillAttr(&out.Attr, a)
	f := client.FIDFromPB(a.GetFid())
	st := fs.StableAttr{Mode: typeBits(a.GetType()), Ino: ino(f)}
	ch := n.GetChild(name)
	if ch == nil || ch.StableAttr().Ino != st.Ino || ch.StableAttr().Mode != st.Mode {
		ch = n.NewInode(ctx, &node{m: n.m, fid: f}, st)
	}
	if cn, ok := ch.Operations().(*node); ok {
		cn.cacheAttr(a)
	}
	return ch
}

// newObject is newChild for an object the request created: it has no
// xattrs, and the directory's times and link count changed.
func (n *node) newObject(ctx context.Context, name string, a *commonv1.Attr, out *fuse.EntryOut) *fs.Inode {
	n.dropAttr()
	ch := n.newNamed(ctx, name, a, out)
	if cn, ok := ch.Operations().(*node); ok {
		cn.created()
	}
	return ch
}

// dropChild forgets the attributes of the directory and of its entry
// name (a request changed their times or link counts).
func (n *node) dropChild(name string) {
	n.dropAttr()
	if ch := n.GetChild(name); ch != nil {
		if cn, ok := ch.Operations().(*node); ok {
			cn.dropAttr()
		}
	}
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if ch := n.lookupCached(name, out); ch != nil {
		return ch, 0
	}
	if n.dirModeStale(name) {
		var a fuse.AttrOut
		if n.Getattr(ctx, nil, &a) == 0 {
			if ch := n.lookupCached(name, out); ch != nil {
				return ch, 0
			}
		}
	}
	c := n.m.callerOf(ctx)
	if n.nameMissing(ctx, c, name) {
		return nil, syscall.ENOENT
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.Stat(cctx, &mdtv1.StatRequest{Path: []byte(n.child(name))})
	if err != nil {
		e := errno(err)
		if e == syscall.ENOENT {
			n.allowSearch(c)
		}
		return nil, e
	}
	n.allowSearch(c)
	n.nameAdded(name)
	return n.newNamed(ctx, name, r.GetAttr(), out), 0
}

// named notes the outcome of a request that adds name to n as c
// (mountneg.go): on success n has it and c may search n; after an error
// that may have left it made, the mount no longer trusts what it knows
// of n's names.
func (n *node) named(c caller, name string, err error) {
	switch errno(err) {
	case 0:
		n.nameAdded(name)
		n.allowSearch(c)
	case syscall.EEXIST:
		n.nameAdded(name)
	case syscall.EACCES, syscall.EPERM, syscall.ENOENT, syscall.ENOTDIR, syscall.ENAMETOOLONG, syscall.EINVAL, syscall.EXDEV:
	default:
		n.namesUncertain()
	}
}

// newNamed is newChild for an entry the server just named: the mount may
// answer lookups of that name for --attr-timeout (lookupCached).
func (n *node) newNamed(ctx context.Context, name string, a *commonv1.Attr, out *fuse.EntryOut) *fs.Inode {
	ch := n.newChild(ctx, name, a, out)
	if cn, ok := ch.Operations().(*node); ok {
		cn.bind(n, name)
		if n.m.attrTimeout > 0 {
			now := time.Now()
			if modeTill, ok := n.searchableTill(now); ok {
				n.setEntryTimeout(out, minTime(modeTill, now.Add(n.m.attrTimeout)).Sub(now))
			}
		}
	}
	return ch
}

func (n *node) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.cachedAttr(out) {
		return 0
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.StatFid(cctx, &mdtv1.StatFidRequest{Fid: client.FIDToPB(n.fid)})
	if err != nil {
		return errno(err)
	}
	fillAttr(&out.Attr, r.GetAttr())
	n.cacheAttr(r.GetAttr())
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	req := &mdtv1.SetattrRequest{Path: []byte(n.path())}
	fh, byHandle := f.(*fileHandle)
	if byHandle || n.orphaned() {
		// ftruncate (the kernel sends the handle), or fchmod/futimens of
		// an unlinked file: by FID.
		req = &mdtv1.SetattrRequest{Fid: client.FIDToPB(n.fid)}
	}
	if v, ok := in.GetMode(); ok {
		m := v & 07777
		req.Mode = &m
		if n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFDIR && m&searchAll != searchAll {
			// Some users may no longer search it: the kernel must
			// ask about its names again (setEntryTimeout).
			n.dropNames("")
		}
	}
	if v, ok := in.GetUID(); ok {
		req.Uid = &v
	}
	if v, ok := in.GetGID(); ok {
		req.Gid = &v
	}
	if v, ok := in.GetSize(); ok {
		req.Size = &v
	}
	if v, ok := in.GetATime(); ok {
		ns := v.UnixNano()
		req.AtimeNs = &ns
	}
	if v, ok := in.GetMTime(); ok {
		ns := v.UnixNano()
		req.MtimeNs = &ns
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	if n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFDIR && (req.Mode != nil || req.Uid != nil || req.Gid != nil) {
		n.m.searchChanged() // who may search it (mountneg.go)
	}
	var r *mdtv1.SetattrResponse
	var err error
	if byHandle {
		err = n.m.withHandle(ctx, fh, func(h uint64) (err error) {
			req.Handle = h
			r, err = n.m.ns.Setattr(cctx, req)
			return err
		})
	} else {
		r, err = n.m.ns.Setattr(cctx, req)
	}
	if err != nil {
		n.dropAttr()
		return errno(err)
	}
	fillAttr(&out.Attr, r.GetAttr())
	n.cacheAttr(r.GetAttr())
	return 0
}

// openFlags maps open(2) flags to Lustre's MDS open flags.
func openFlags(flags uint32) uint32 {
	var f uint32
	switch flags & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		f = uint32(mdtv1.OpenFlag_OPEN_FLAG_READ)
	case syscall.O_WRONLY:
		f = uint32(mdtv1.OpenFlag_OPEN_FLAG_WRITE)
	default:
		f = uint32(mdtv1.OpenFlag_OPEN_FLAG_READ | mdtv1.OpenFlag_OPEN_FLAG_WRITE)
	}
	const fmodeExec = 0x20 // __FMODE_EXEC: the open of an execve
	if flags&fmodeExec != 0 {
		f = uint32(mdtv1.OpenFlag_OPEN_FLAG_EXEC)
	}
	if flags&syscall.O_TRUNC != 0 {
		f |= uint32(mdtv1.OpenFlag_OPEN_FLAG_TRUNC)
	}
	if flags&syscall.O_APPEND != 0 {
		f |= uint32(mdtv1.OpenFlag_OPEN_FLAG_APPEND)
	}
	if flags&syscall.O_CREAT != 0 {
		f |= uint32(mdtv1.OpenFlag_OPEN_FLAG_CREAT)
	}
	if flags&syscall.O_EXCL != 0 {
		f |= uint32(mdtv1.OpenFlag_OPEN_FLAG_EXCL)
	}
	return f
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	of := openFlags(flags &^ (syscall.O_CREAT | syscall.O_EXCL))
	var r interface {
		GetHandle() uint64
		GetAttr() *commonv1.Attr
	}
	var err error
	if n.orphaned() {
		// An unlinked file opened again through /proc/PID/fd: by FID.
		r, err = n.m.ns.OpenFid(cctx, &mdtv1.OpenFidRequest{Fid: client.FIDToPB(n.fid), Flags: of})
	} else {
		r, err = n.m.ns.Open(cctx, &mdtv1.OpenRequest{Path: []byte(n.path()), Flags: of})
	}
	if err != nil {
		return nil, 0, errno(err)
	}
	n.opened(r.GetAttr())
	return n.m.newHandle(r.GetHandle(), n.fid, of, c, flags&syscall.O_APPEND != 0), openReplyFlags, 0
}

// openReplyFlags tell the kernel not to send FLUSH on close(2)
// (FOPEN_NOFLUSH): there is nothing to flush, every write is durable on
// the server before it returns, and close(2) would wait for the round trip
// (one of the dozen FUSE requests of a small file's tar x). POSIX locks
// are the kernel's own here (no FUSE_POSIX_LOCKS), so it releases them at
// close without FLUSH's lock owner.
const openReplyFlags = fuse.FOPEN_NOFLUSH

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	of := openFlags(flags | syscall.O_CREAT)
	r, err := n.m.ns.Open(cctx, &mdtv1.OpenRequest{Path: []byte(n.child(name)), Flags: of, Mode: mode & 07777})
	n.named(c, name, err)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	// Without O_EXCL the name may have existed (another client made it
	// after the kernel cached it as missing): then it is not new.
	var ch *fs.Inode
	if r.GetCreated() {
		ch = n.newObject(ctx, name, r.GetAttr(), out)
	} else {
		ch = n.newChild(ctx, name, r.GetAttr(), out)
		if cn, ok := ch.Operations().(*node); ok {
			cn.notifyAttr() // the kernel may know it by another name
		}
	}
	return ch, n.m.newHandle(r.GetHandle(), client.FIDFromPB(r.GetAttr().GetFid()), of, c, flags&syscall.O_APPEND != 0), openReplyFlags, 0
}

func (n *node) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	fh, ok := f.(*fileHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	var r *mdtv1.ReadResponse
	err := n.m.withHandle(ctx, fh, func(h uint64) (err error) {
		r, err = n.m.ns.Read(cctx, &mdtv1.ReadRequest{Handle: h, Offset: uint64(off), Length: uint32(len(dest))})
		return err
	})
	if err != nil {
		return nil, errno(err)
	}
	return fuse.ReadResultData(r.GetData()), 0
}

func (n *node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	fh, ok := f.(*fileHandle)
	if !ok {
		return 0, syscall.EBADF
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	n.dropAttr() // size and times change
	fh.wrote.Store(true)
	err := n.m.withHandle(ctx, fh, func(h uint64) error {
		_, err := n.m.ns.Write(cctx, &mdtv1.WriteRequest{Handle: h, Offset: uint64(off), Data: data})
		return err
	})
	if err != nil {
		return 0, errno(err)
	}
	return uint32(len(data)), 0
}

// Flush has nothing to do: every write is durable on the server before
// it returns. The kernel does not send it for files this mount opened
// (openReplyFlags).
func (n *node) Flush(context.Context, fs.FileHandle) syscall.Errno { return 0 }

// Fsync has nothing to do, for the same reason.
func (n *node) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno { return 0 }

func (n *node) Release(ctx context.Context, f fs.FileHandle) syscall.Errno {
	fh, ok := f.(*fileHandle)
	if !ok {
		return syscall.EBADF
	}
	e := n.m.release(ctx, fh)
	if e == 0 && fh.wrote.Load() {
		n.changedBehind()
	}
	return e
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.Mkdir(cctx, &mdtv1.MkdirRequest{Path: []byte(n.child(name)), Mode: mode & 07777})
	n.named(c, name, err)
	if err != nil {
		return nil, errno(err)
	}
	ch := n.newObject(ctx, name, r.GetAttr(), out)
	if cn, ok := ch.Operations().(*node); ok {
		cn.namesEmpty()
	}
	return ch, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.Mknod(cctx, &mdtv1.MknodRequest{Path: []byte(n.child(name)), Mode: mode, Rdev: uint64(dev)})
	n.named(c, name, err)
	if err != nil {
		return nil, errno(err)
	}
	return n.newObject(ctx, name, r.GetAttr(), out), 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.Symlink(cctx, &mdtv1.SymlinkRequest{Target: []byte(target), Path: []byte(n.child(name))})
	n.named(c, name, err)
	if err != nil {
		return nil, errno(err)
	}
	return n.newObject(ctx, name, r.GetAttr(), out), 0
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.Link(cctx, &mdtv1.LinkRequest{OldPath: []byte(t.path()), NewPath: []byte(n.child(name))})
	n.named(c, name, err)
	n.dropAttr()
	t.dropAttr()
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, name, r.GetAttr(), out), 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.StatFid(cctx, &mdtv1.StatFidRequest{Fid: client.FIDToPB(n.fid)})
	if err != nil {
		return nil, errno(err)
	}
	if r.GetAttr().GetType() != commonv1.ObjectType_OBJECT_TYPE_LNK {
		return nil, syscall.EINVAL
	}
	return r.GetAttr().GetSymlinkTarget(), 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	_, err := n.m.ns.Unlink(cctx, &mdtv1.UnlinkRequest{Path: []byte(n.child(name))})
	n.dropChild(name)
	return errno(err)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	_, err := n.m.ns.Rmdir(cctx, &mdtv1.RmdirRequest{Path: []byte(n.child(name))})
	n.dropChild(name)
	return errno(err)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	// renameat2's RENAME_NOREPLACE and RENAME_EXCHANGE go to the server,
	// which applies them atomically (go-fuse swaps its own tree on
	// success).
	_, err := n.m.ns.Rename(cctx, &mdtv1.RenameRequest{SrcPath: []byte(n.child(name)), DstPath: []byte(np.child(newName)), Flags: flags})
	n.dropChild(name)
	np.dropChild(newName)
	// A directory moved: the search permission of what is under it
	// may differ (mountneg.go).
	n.m.searchChanged()
	np.named(c, newName, err)
	if flags&fuseRenameExchange != 0 {
		n.named(c, name, err)
	}
	if err == nil {
		// The kernel moves its name with the time it may keep it,
		// given for the directory it came from (setEntryTimeout).
		np.dropNames(newName)
		if flags&fuseRenameExchange != 0 {
			n.dropNames(name)
		}
	}
	return errno(err)
}

// fuseRenameExchange is renameat2's RENAME_EXCHANGE.
const fuseRenameExchange = 2

// isACL reports POSIX ACL names: the server stores xattrs but does not
// apply ACLs to permission checks or modes, so the mount refuses them
// (EOPNOTSUPP, as a Lustre client mounted without acl) and programs such as
// cp -a fall back to chmod.
func isACL(name string) bool { return strings.HasPrefix(name, "system.posix_acl_") }

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if isACL(attr) {
		return 0, syscall.EOPNOTSUPP
	}
	// security.* names are readable by every caller, so a known absence
	// is the server's answer whoever asks (the kernel's probes ask for
	// security.capability); other names go to the server, which checks
	// the caller's access and audits reads (GXATR).
	security := strings.HasPrefix(attr, "security.")
	if security && n.xattrAbsent(attr) {
		return 0, syscall.ENODATA
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	// The buffer size goes to the server: a size probe (0) returns the
	// length without a GXATR record, a short buffer ERANGE without one, so
	// getfattr's probe-then-read records one GXATR, for the read.
	size := uint32(len(dest))
	r, err := n.m.ns.Getxattr(cctx, &mdtv1.GetxattrRequest{Path: []byte(n.path()), Fid: n.orphanFID(), Name: attr, Size: &size})
	if err != nil {
		e := errno(err)
		if e == syscall.ENODATA && security {
			n.noteAbsent(attr)
		}
		return 0, e
	}
	if size == 0 {
		return r.GetSize(), 0
	}
	return uint32(copy(dest, r.GetValue())), 0
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	mode := mdtv1.SetxattrMode_SETXATTR_MODE_UNSPECIFIED
	switch {
	case flags&1 != 0: // XATTR_CREATE
		mode = mdtv1.SetxattrMode_SETXATTR_MODE_CREATE
	case flags&2 != 0: // XATTR_REPLACE
		mode = mdtv1.SetxattrMode_SETXATTR_MODE_REPLACE
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	_, err := n.m.ns.Setxattr(cctx, &mdtv1.SetxattrRequest{Path: []byte(n.path()), Fid: n.orphanFID(), Name: attr, Value: data, Mode: mode})
	n.xattrsChanged()
	n.dropAttr()
	return errno(err)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	_, err := n.m.ns.Removexattr(cctx, &mdtv1.RemovexattrRequest{Path: []byte(n.path()), Fid: n.orphanFID(), Name: attr})
	n.xattrsChanged()
	n.dropAttr()
	return errno(err)
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.Listxattr(cctx, &mdtv1.ListxattrRequest{Path: []byte(n.path()), Fid: n.orphanFID()})
	if err != nil {
		return 0, errno(err)
	}
	if len(r.GetNames()) == 0 && c.id.UID == 0 { // root sees every name
		n.noteAbsent("")
	}
	var b []byte
	for _, name := range r.GetNames() {
		b = append(append(b, name...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	c := n.m.callerOf(ctx)
	cctx, cancel := c.call(ctx)
	defer cancel()
	r, err := n.m.ns.Statfs(cctx, &mdtv1.StatfsRequest{})
	if err != nil {
		return errno(err)
	}
	out.Bsize, out.Frsize = r.GetBlockSize(), r.GetBlockSize()
	out.Blocks, out.Bfree, out.Bavail = r.GetBlocks(), r.GetBlocksFree(), r.GetBlocksAvailable()
	out.Files, out.Ffree = r.GetFiles(), r.GetFilesFree()
	out.NameLen = r.GetNameMax()
	return 0
}

// Access answers access(2) from the object's attributes as the server's
// permission check would (root may do anything but execute a file that no
// one may execute).
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	c := n.m.callerOf(ctx)
	var a fuse.AttrOut
	if e := n.Getattr(ctx, nil, &a); e != 0 {
		return e
	}
	mode := a.Mode & 07777
	if c.id.UID == 0 {
		if mask&1 != 0 && a.Mode&syscall.S_IFMT != syscall.S_IFDIR && mode&0o111 == 0 {
			return syscall.EACCES
		}
		return 0
	}
	var bits uint32
	switch {
	case c.id.UID == a.Uid:
		bits = mode >> 6 & 7
	case c.id.GID == a.Gid || slices.Contains(c.id.Groups, a.Gid):
		bits = mode >> 3 & 7
	default:
		bits = mode & 7
	}
	if mask&7&^bits != 0 {
		return syscall.EACCES
	}
	return 0
}

// readdirPage is how many entries one Readdir call asks for.
const readdirPage = 1024

// OpendirHandle checks that the caller may list the directory and returns
// a cursor over it.
func (n *node) OpendirHandle(ctx context.Context, _ uint32) (fs.FileHandle, uint32, syscall.Errno) {
	c := n.m.callerOf(ctx)
	d := &dirHandle{n: n, c: c, p: n.path()}
	if e := d.fetch(ctx); e != 0 {
		return nil, 0, e
	}
	return d, 0, 0
}

// dirHandle is an open directory: the entries read so far, in name order,
// fetched a page at a time with a name cursor, so a listing of N entries
// costs O(N) on the server. An entry's offset is its position in this
// handle's list, which only grows: offsets stay valid while the directory
// changes (entries added after the cursor appear, removed ones already
// read stay read).
type dirHandle struct {
	n    *node
	c    caller
	p    string
	mu   sync.Mutex
	ents []fuse.DirEntry
	pos  int
	more bool
}

// fetch reads the next page after the last name read.
func (d *dirHandle) fetch(ctx context.Context) syscall.Errno {
	if d.ents == nil {
		d.ents = []fuse.DirEntry{
			{Name: ".", Mode: syscall.S_IFDIR, Ino: ino(d.n.fid), Off: 1},
			{Name: "..", Mode: syscall.S_IFDIR, Ino: 1, Off: 2},
		}
	}
	after := ""
	if len(d.ents) > 2 {
		after = d.ents[len(d.ents)-1].Name
	}
	cctx, cancel := d.c.call(ctx)
	defer cancel()
	r, err := d.n.m.ns.Readdir(cctx, &mdtv1.ReaddirRequest{Path: []byte(d.p), StartAfter: []byte(after), MaxEntries: readdirPage})
	if err != nil {
		return errno(err)
	}
	for _, e := range r.GetEntries() {
		d.ents = append(d.ents, fuse.DirEntry{
			Name: string(e.GetName()), Mode: typeBits(e.GetType()),
			Ino: ino(client.FIDFromPB(e.GetFid())), Off: uint64(len(d.ents) + 1),
		})
	}
	d.more = r.GetMore() && len(r.GetEntries()) > 0
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pos == len(d.ents) && d.more {
		if e := d.fetch(ctx); e != 0 {
			return nil, e
		}
	}
	if d.pos == len(d.ents) {
		return nil, 0
	}
	e := d.ents[d.pos]
	d.pos++
	return &e, 0
}

// Seekdir moves to an offset Readdirent gave; 0 (rewinddir) starts over
// with a fresh listing.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		d.ents, d.pos = nil, 0
		return d.fetch(ctx)
	}
	for uint64(len(d.ents)) < off && d.more {
		if e := d.fetch(ctx); e != 0 {
			return e
		}
	}
	d.pos = int(min(off, uint64(len(d.ents))))
	return 0
}
