package main

import (
	"bytes"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
)

// What the mount caches, and its coherence (README "Mounting it"):
//
//   - The kernel keeps attributes for --attr-timeout (default 1 s), as an
//     NFS client's attribute cache does, and names and missing names for
//     --entry-timeout and --negative-timeout (default 0: the kernel does
//     not check the search permission of directories for this mount, the
//     server does on each lookup; mount.go), except names in directories
//     every user may search, which it keeps as long as the mount would
//     answer their lookups itself (setEntryTimeout). Changes made through
//     this mount are seen at once: the kernel updates or drops its own
//     entries on each of its requests, and the mount drops what a request
//     changes as a side effect (a close's times). Another client's change
//     shows after at most the timeout; an open always reaches the server,
//     and when the object's attributes changed since the kernel cached
//     them the mount drops the kernel's copy, so a file another client
//     wrote and closed is read whole (close-to-open, as NFS).
//   - The mount keeps each object's last attributes for the same
//     --attr-timeout, so the kernel's forced re-reads (it re-reads the
//     mode before every chown) are answered without a round trip, the
//     name the server last gave it, so the kernel's repeated lookups in a
//     directory everyone may search are answered too (lookupCached), and the
//     security.* xattrs an object is known not to have: a new object has
//     none, and an ENODATA answer is remembered. The kernel asks for
//     security.capability before every write and chown; these probes are
//     answered locally. (security.* names are readable by everyone, so the
//     answer does not depend on who asks; other names always go to the
//     server, which checks the caller's access.) Values are never cached, so every getxattr that
//     returns data reaches the server and is audited (GXATR) as before; a
//     getxattr that finds nothing records nothing, cached or not.
//   - Nothing that changes the namespace or a file is cached or delayed:
//     creates, writes, setattrs, xattr changes, opens and closes all reach
//     the server, which makes them durable and records them before the
//     program is answered.
//
// With --attr-timeout 0 too nothing is cached and every request reaches
// the server.

// objCache is what the mount knows about one object from the server.
type objCache struct {
	mu       sync.Mutex
	attr     fuse.Attr
	attrTill time.Time            // attr is valid before this
	modeTill time.Time            // attr.Mode is valid before this (dropAttr keeps it)
	noXattrs time.Time            // the object has no xattr at all before this
	absent   map[string]time.Time // xattr names it lacks, until
	// The name the server last said the object has, in which directory,
	// and until when the mount may answer a lookup of it (lookupCached).
	boundIn   *node
	boundName string
	boundTill time.Time
}

// bind remembers that the server just said that name in dir is this
// object.
func (n *node) bind(dir *node, name string) {
	if n.m.attrTimeout <= 0 {
		return
	}
	c := &n.cache
	c.mu.Lock()
	c.boundIn, c.boundName, c.boundTill = dir, name, time.Now().Add(n.m.attrTimeout)
	c.mu.Unlock()
}

// dirModeStale reports whether lookupCached could answer name in n but
// for n's mode having expired: the name is bound and fresh. A GETATTR of
// n then costs one round trip per --attr-timeout instead of one lookup per
// request.
func (n *node) dirModeStale(name string) bool {
	if n.m.attrTimeout <= 0 {
		return false
	}
	now := time.Now()
	n.cache.mu.Lock()
	stale := !now.Before(n.cache.modeTill)
	n.cache.mu.Unlock()
	if !stale {
		return false
	}
	ch := n.GetChild(name)
	if ch == nil {
		return false
	}
	cn, ok := ch.Operations().(*node)
	if !ok {
		return false
	}
	c := &cn.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boundIn == n && c.boundName == name && now.Before(c.boundTill)
}

// lookupCached answers the kernel's lookup of name in n without a round
// trip when the server said, within --attr-timeout, that name is the
// object the mount knows by it, and n lets everyone search it (the x bit
// of owner, group and others, in the attributes the mount holds; an owner
// without x may not search where others may), so the answer does not
// depend on who asks. The kernel is told to keep the name for as long. The kernel does not check directories' search
// permission for this mount, the server does on each lookup; a directory
// that only some may search is always asked about, so denials reach the
// server and are audited (DENY).
func (n *node) lookupCached(name string, out *fuse.EntryOut) *fs.Inode {
	if n.m.attrTimeout <= 0 {
		return nil
	}
	now := time.Now()
	modeTill, searchable := n.searchableTill(now)
	if !searchable {
		return nil
	}
	ch := n.GetChild(name)
	if ch == nil {
		return nil
	}
	cn, ok := ch.Operations().(*node)
	if !ok {
		return nil
	}
	c := &cn.cache
	c.mu.Lock()
	if c.boundIn != n || c.boundName != name || !now.Before(c.boundTill) {
		c.mu.Unlock()
		return nil
	}
	fresh := now.Before(c.attrTill)
	dir := c.attr.Mode&syscall.S_IFMT == syscall.S_IFDIR
	out.Attr = c.attr
	n.setEntryTimeout(out, minTime(c.boundTill, modeTill).Sub(now))
	if fresh {
		out.SetAttrTimeout(c.attrTill.Sub(now))
	}
	c.mu.Unlock()
	if !fresh {
		if !dir {
			return nil
		}
		// A directory whose times or link count changed (a create or
		// rename in it): the name is known, its attributes are not. The
		// kernel is told to forget its attributes first; that makes it
		// ignore the stale ones in this reply (they predate the
		// invalidation), so it asks for them before it shows them.
		cn.notifyAttr()
		out.SetAttrTimeout(0)
	}
	return ch
}

// searchAll is the mode bits that let every user search a directory: the
// owner's, the group's and others' x.
const searchAll = 0o111

// searchableTill reports whether the mount knows, from attributes the
// server gave it within --attr-timeout, that every user may search n, and
// until when it knows that.
func (n *node) searchableTill(now time.Time) (time.Time, bool) {
	n.cache.mu.Lock()
	defer n.cache.mu.Unlock()
	ok := now.Before(n.cache.modeTill) && n.cache.attr.Mode&syscall.S_IFMT == syscall.S_IFDIR && n.cache.attr.Mode&searchAll == searchAll
	return n.cache.modeTill, ok
}

// setEntryTimeout lets the kernel keep a name of a directory every user
// may search for d, the time left of both what the mount knows of the
// name and of the directory's mode: the mount would answer the kernel's
// lookups of it itself for that long (lookupCached), whoever asks, so the
// kernel need not ask. A chmod or rename through this mount that could
// make the answer depend on who asks drops the kernel's names
// (dropNames); another client's shows after at most --attr-timeout, as
// for lookupCached. --entry-timeout, when longer, applies instead.
func (n *node) setEntryTimeout(out *fuse.EntryOut, d time.Duration) {
	if d > n.m.entryTimeout {
		out.SetEntryTimeout(d)
	}
}

// dropNames makes the kernel forget the names it keeps in directory n
// (all of them, or only name), so that its next lookups reach the mount,
// which checks who may search n. The kernel holds the directory's lock
// while it waits for the request that changed n, and an invalidation
// takes that lock: it is sent from another goroutine, and takes effect as
// that request completes.
func (n *node) dropNames(name string) {
	if n.m.attrTimeout <= 0 && n.m.entryTimeout <= 0 {
		return
	}
	var names []string
	if name != "" {
		names = []string{name}
	} else {
		for k := range n.Children() {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return
	}
	go func() {
		for _, k := range names {
			_ = n.NotifyEntry(k)
		}
	}()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// cacheAttr remembers a as the object's attributes.
func (n *node) cacheAttr(a *commonv1.Attr) {
	if n.m.attrTimeout <= 0 || a == nil {
		return
	}
	c := &n.cache
	c.mu.Lock()
	fillAttr(&c.attr, a)
	c.attrTill = time.Now().Add(n.m.attrTimeout)
	c.modeTill = c.attrTill
	c.mu.Unlock()
}

// cachedAttr fills out from the cache, with the time left as the
// kernel's timeout, and reports whether it could.
func (n *node) cachedAttr(out *fuse.AttrOut) bool {
	c := &n.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	left := time.Until(c.attrTill)
	if left <= 0 {
		return false
	}
	out.Attr = c.attr
	out.SetTimeout(left)
	return true
}

// sameAttr reports whether the cache holds a and is still valid.
func (n *node) sameAttr(a *commonv1.Attr) bool {
	var f fuse.Attr
	fillAttr(&f, a)
	c := &n.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.attrTill) && c.attr == f
}

// dropAttr forgets the object's attributes (a request changed them as a
// side effect the reply does not show: times, size, link count; not the
// mode, which only a setattr changes, and the setattr's reply is cached).
func (n *node) dropAttr() {
	c := &n.cache
	c.mu.Lock()
	c.attrTill = time.Time{}
	c.mu.Unlock()
}

// created notes that the object is new: it has no xattrs.
func (n *node) created() {
	if n.m.attrTimeout <= 0 {
		return
	}
	c := &n.cache
	c.mu.Lock()
	c.noXattrs = time.Now().Add(n.m.attrTimeout)
	c.mu.Unlock()
}

// xattrAbsent reports whether the object is known not to have xattr name.
func (n *node) xattrAbsent(name string) bool {
	c := &n.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Before(c.noXattrs) {
		return true
	}
	t, ok := c.absent[name]
	if ok && !now.Before(t) {
		delete(c.absent, name)
		return false
	}
	return ok
}

// noteAbsent remembers that the server said the object lacks xattr name
// (or, for name "", any xattr).
func (n *node) noteAbsent(name string) {
	if n.m.attrTimeout <= 0 {
		return
	}
	c := &n.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	till := time.Now().Add(n.m.attrTimeout)
	if name == "" {
		c.noXattrs = till
		return
	}
	if c.absent == nil {
		c.absent = map[string]time.Time{}
	}
	c.absent[name] = till
}

// xattrsChanged forgets what the mount knew of the object's xattrs.
func (n *node) xattrsChanged() {
	c := &n.cache
	c.mu.Lock()
	c.noXattrs = time.Time{}
	c.absent = nil
	c.mu.Unlock()
}

// identity of a process as read from /proc: the supplementary groups are
// kept for identityTTL per (pid, uid, gid); the process name is read on
// every request, so a job id follows an exec at once.
type procIdentity struct {
	uid, gid uint32
	groups   []uint32
	till     time.Time
}

// identityTTL is how long the supplementary groups of a process are
// reused (Lustre's MDS keeps a user's groups for identity_expire, 20
// minutes by default).
const identityTTL = time.Second

// procCache maps a pid to its groups.
type procCache struct {
	mu sync.Mutex
	m  map[uint32]procIdentity
}

// groups returns the supplementary groups of pid, which runs as uid/gid.
func (p *procCache) groups(pid, uid, gid uint32) []uint32 {
	now := time.Now()
	p.mu.Lock()
	e, ok := p.m[pid]
	p.mu.Unlock()
	if ok && e.uid == uid && e.gid == gid && now.Before(e.till) {
		return e.groups
	}
	e = procIdentity{uid: uid, gid: gid, groups: readGroups(pid), till: now.Add(identityTTL)}
	p.mu.Lock()
	if p.m == nil {
		p.m = map[uint32]procIdentity{}
	}
	if len(p.m) >= 4096 {
		for k, v := range p.m {
			if !now.Before(v.till) {
				delete(p.m, k)
			}
		}
	}
	p.m[pid] = e
	p.mu.Unlock()
	return e.groups
}

// readGroups reads the Groups: line of /proc/PID/status.
func readGroups(pid uint32) []uint32 {
	var buf [4096]byte
	b := readProc(pid, "status", buf[:])
	i := bytes.Index(b, []byte("\nGroups:"))
	if i < 0 {
		return nil
	}
	b = b[i+len("\nGroups:"):]
	if j := bytes.IndexByte(b, '\n'); j >= 0 {
		b = b[:j]
	}
	var gs []uint32
	for _, f := range bytes.Fields(b) {
		if n, err := strconv.ParseUint(string(f), 10, 32); err == nil {
			gs = append(gs, uint32(n))
		}
	}
	return gs
}

// commFiles keeps /proc/PID/comm open for the processes that made
// requests, so that reading a process name is one pread instead of open,
// read and close. A descriptor stays bound to its process: once that
// process has exited, a read fails (ESRCH) even if its pid was reused,
// and the file is opened again.
type commFiles struct {
	mu  sync.Mutex
	fds map[uint32]int
}

// maxCommFiles bounds the descriptors commFiles keeps.
const maxCommFiles = 256

// comm returns the process name of pid ("" if the process is gone).
func (c *commFiles) comm(pid uint32) string {
	var buf [64]byte
	c.mu.Lock() // held across the read: a descriptor is closed only here
	defer c.mu.Unlock()
	if fd, ok := c.fds[pid]; ok {
		if n, err := syscall.Pread(fd, buf[:], 0); err == nil && n > 0 {
			return string(bytes.TrimRight(buf[:n], "\n"))
		}
		_ = syscall.Close(fd)
		delete(c.fds, pid)
	}
	var pb [32]byte
	path := append(append(append(pb[:0], "/proc/"...), strconv.FormatUint(uint64(pid), 10)...), "/comm"...)
	fd, err := syscall.Open(string(path), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	n, err := syscall.Pread(fd, buf[:], 0)
	if err != nil || n <= 0 {
		_ = syscall.Close(fd)
		return ""
	}
	if c.fds == nil {
		c.fds = map[uint32]int{}
	}
	if len(c.fds) >= maxCommFiles {
		for p, f := range c.fds {
			_ = syscall.Close(f)
			delete(c.fds, p)
		}
	}
	c.fds[pid] = fd
	return string(bytes.TrimRight(buf[:n], "\n"))
}

// readProc reads /proc/PID/file into buf (what fits) with three system
// calls: proc's files give their whole text to one read that has room
// for it.
func readProc(pid uint32, file string, buf []byte) []byte {
	var pb [32]byte
	path := append(append(append(append(pb[:0], "/proc/"...), strconv.FormatUint(uint64(pid), 10)...), '/'), file...)
	fd, err := syscall.Open(string(path), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		k, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || k <= 0 {
			break
		}
		n += k
		if n < len(buf) {
			break
		}
	}
	return buf[:n]
}

// opened checks the attributes an open returned against the cache: if
// they changed since the kernel cached them (another client wrote), the
// kernel's copy is dropped, so that the size it reads up to is the
// server's (close-to-open).
func (n *node) opened(a *commonv1.Attr) {
	if a == nil || n.sameAttr(a) {
		return
	}
	n.cacheAttr(a)
	n.notifyAttr()
}

// changedBehind drops the mount's and the kernel's copies of the
// attributes after a request changed them behind the kernel's back (the
// close of a handle that wrote updates the times).
func (n *node) changedBehind() {
	n.dropAttr()
	n.notifyAttr()
}

// notifyAttr tells the kernel to forget the object's attributes (not its
// pages). Errors mean the kernel no longer knows the object.
func (n *node) notifyAttr() {
	if n.m.attrTimeout > 0 {
		_ = n.NotifyContent(-1, 0)
	}
}
