package main

import (
	"context"
	"slices"
	"sync"
	"time"
	"unsafe"

	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// Missing names answered by the mount (README "Caching and coherence").
//
// The kernel looks up every name before it creates it, so each file a
// program creates costs a lookup that the server answers with ENOENT. The
// mount answers such a lookup itself when it knows, within --attr-timeout,
// both that the directory has no such name and that the server lets this
// caller search the directory:
//
//   - The names: a directory this mount made is empty when the server
//     answers the mkdir; otherwise the mount lists it (at most
//     dirNamesPages pages of readdirPage entries, as the caller). From
//     then on every name this mount adds there is added to what it knows
//     before the request that adds it is answered, and a request whose
//     outcome is unknown (an error) makes the mount list the directory
//     again. What the mount knows is trusted for --attr-timeout after the
//     server said it (the mkdir's answer, or the start of the listing):
//     another client's create shows after at most that long, as its chmod
//     or rename does. A name the mount knows is always asked about.
//   - The caller: the server answered a lookup, create or listing in
//     that directory as the same uid, gid and groups within
//     --attr-timeout, so it let that caller search the whole path. A
//     chmod, chown or rename of a directory through this mount forgets
//     what every caller was allowed (dirEpoch). A caller the server has
//     not let search the directory is always sent to the server, which
//     checks it and audits a denial.
//
// A missing name records nothing on the server whoever answers, so
// answering it loses no record.

// dirNamesPages bounds the listing of a directory whose names the mount
// does not know: a larger directory's lookups go to the server.
const dirNamesPages = 4

// maxKnownNames bounds the names the mount keeps of one directory: past
// it (a directory this mount made grew) it forgets them, and the next
// listing finds the directory too large.
const maxKnownNames = 2 * dirNamesPages * readdirPage

// dirNames is what the mount knows of the names of one directory.
type dirNames struct {
	mu sync.Mutex
	// known holds every name the directory had when the server last
	// said (till - --attr-timeout), and every name this mount added
	// since; names removed since may remain (they are asked about).
	known map[string]struct{}
	till  time.Time
	// gen counts the requests of unknown outcome: a listing started
	// before one does not make known trusted.
	gen uint64
	// bigTill: the directory was too large to list; not again before.
	bigTill time.Time
	// allowed is whom the server let search the directory, until when,
	// at which dirEpoch.
	allowed map[identKey]allowedSearch
}

type identKey struct {
	uid, gid uint32
	groups   string // the supplementary groups' bytes
}

type allowedSearch struct {
	till  time.Time
	epoch uint64
}

func keyOf(c caller) identKey {
	k := identKey{uid: c.id.UID, gid: c.id.GID}
	if len(c.id.Groups) > 0 {
		k.groups = string(unsafe.Slice((*byte)(unsafe.Pointer(&c.id.Groups[0])), len(c.id.Groups)*4))
	}
	return k
}

// searchChanged forgets whom the server let search every directory: a
// chmod, chown or rename of a directory through this mount may change
// it.
func (m *mountFS) searchChanged() { m.dirEpoch.Add(1) }

// allowSearch remembers that the server just let c search n.
func (n *node) allowSearch(c caller) {
	if n.m.attrTimeout <= 0 {
		return
	}
	d := &n.names
	till := time.Now().Add(n.m.attrTimeout)
	epoch := n.m.dirEpoch.Load()
	d.mu.Lock()
	if d.allowed == nil || len(d.allowed) >= 64 {
		d.allowed = map[identKey]allowedSearch{}
	}
	d.allowed[keyOf(c)] = allowedSearch{till: till, epoch: epoch}
	d.mu.Unlock()
}

// namesEmpty notes that the server just made n: it has no names.
func (n *node) namesEmpty() {
	if n.m.attrTimeout <= 0 {
		return
	}
	d := &n.names
	d.mu.Lock()
	d.known = map[string]struct{}{}
	d.till = time.Now().Add(n.m.attrTimeout)
	d.mu.Unlock()
}

// nameAdded notes that n has name (this mount added it, or the server
// named it).
func (n *node) nameAdded(name string) {
	d := &n.names
	d.mu.Lock()
	if d.known != nil {
		d.known[name] = struct{}{}
		if len(d.known) > maxKnownNames {
			d.known, d.till = nil, time.Time{}
		}
	}
	d.mu.Unlock()
}

// namesUncertain notes a request in n whose outcome is unknown: it may
// have added a name.
func (n *node) namesUncertain() {
	d := &n.names
	d.mu.Lock()
	d.gen++
	d.till = time.Time{}
	d.mu.Unlock()
}

// nameMissing reports whether the mount knows that n has no name, and
// that the server lets c search n (see above). It lists n when it knows
// the caller but not the names.
func (n *node) nameMissing(ctx context.Context, c caller, name string) bool {
	if n.m.attrTimeout <= 0 {
		return false
	}
	d := &n.names
	now := time.Now()
	key := keyOf(c)
	d.mu.Lock()
	a, ok := d.allowed[key]
	if !ok || !now.Before(a.till) || a.epoch != n.m.dirEpoch.Load() {
		d.mu.Unlock()
		return false
	}
	if _, ok := d.known[name]; ok {
		d.mu.Unlock()
		return false
	}
	if now.Before(d.till) {
		d.mu.Unlock()
		return true
	}
	if now.Before(d.bigTill) {
		d.mu.Unlock()
		return false
	}
	gen := d.gen
	d.mu.Unlock()

	names, ok := n.listNames(ctx, c)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ok {
		d.bigTill = now.Add(n.m.attrTimeout)
		d.known, d.till = nil, time.Time{}
		return false
	}
	if d.known == nil {
		d.known = make(map[string]struct{}, len(names))
	}
	for _, k := range names {
		d.known[k] = struct{}{}
	}
	if d.gen == gen {
		d.till = now.Add(n.m.attrTimeout)
	}
	_, known := d.known[name]
	return !known && time.Now().Before(d.till)
}

// listNames lists n as c, if it has at most dirNamesPages pages.
func (n *node) listNames(ctx context.Context, c caller) ([]string, bool) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	var names []string
	var after []byte
	for range dirNamesPages {
		r, err := n.m.ns.Readdir(cctx, &mdtv1.ReaddirRequest{Path: []byte(n.path()), StartAfter: after, MaxEntries: readdirPage})
		if err != nil {
			return nil, false
		}
		for _, e := range r.GetEntries() {
			names = append(names, string(e.GetName()))
		}
		if !r.GetMore() || len(r.GetEntries()) == 0 {
			return names, true
		}
		after = slices.Clone(r.GetEntries()[len(r.GetEntries())-1].GetName())
	}
	return nil, false
}
