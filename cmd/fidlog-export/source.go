package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// source is one MDT the exporter follows with its own changelog user.
type source struct {
	target string
	c      *client.Client
	dev    string // "lustre-MDT0000"
	user   string // "cl<ID>-<name>", as Clear wants it
	start  changelog.Index
	mask   string    // the user's mask, as the server lists it
	paths  *resolver // nil: paths are not resolved
	// joined holds the paths events joins from a directory and a name
	// (pathArena).
	joined pathArena
}

// discover asks the server which device it serves, from the name of its
// mdd.<device>.changelog_users parameter.
func (s *source) discover(ctx context.Context) error {
	ps, err := s.c.GetParams(ctx, "mdd.*.changelog_users")
	if err != nil {
		return err
	}
	for _, p := range ps {
		name := strings.TrimSuffix(strings.TrimPrefix(p.GetName(), "mdd."), ".changelog_users")
		if name != "" && name != p.GetName() {
			s.dev = name
			return nil
		}
	}
	return fmt.Errorf("server '%s' reports no MDT device", s.target)
}

// ensureUser finds the changelog user named name, registering it with
// mask if it does not exist yet (an existing user keeps its mask).
func (s *source) ensureUser(ctx context.Context, name, mask string) (registered bool, err error) {
	r, err := s.c.Users(ctx, s.dev)
	if err != nil {
		return false, err
	}
	for _, u := range r.GetUsers() {
		if u.GetName() == name {
			s.user, s.start = u.GetDisplayName(), changelog.Index(u.GetIndex())
			s.mask = strings.Join(u.GetMaskNames(), ",")
			return false, nil
		}
	}
	reg, err := s.c.Register(ctx, s.dev, name, mask)
	if err != nil {
		return false, err
	}
	s.user, s.start = reg.GetDisplayName(), changelog.Index(reg.GetIndex())
	s.mask = strings.Join(reg.GetMaskNames(), ",")
	return true, nil
}

// events makes the events of a batch of n items read from src (item(i)
// without the device), all in one allocation, and resolves the records'
// paths in order, the joined ones in a few shared allocations (pathArena),
// not one a record.
func (s *source) events(ctx context.Context, n int, item func(i int) event) []*event {
	evs, store := make([]*event, n), make([]event, n)
	s.joined.start(n)
	for i := range store {
		e := &store[i]
		*e = item(i)
		e.dev = s.dev
		if e.isRecord() && s.paths != nil {
			s.paths.resolve(ctx, e, &s.joined)
		}
		evs[i] = e
	}
	return evs
}

// pathArena builds the paths of a batch (a directory's path, a slash and
// a name) into shared chunks: each path is a substring of a chunk, which
// stays alive while any of its paths is. A chunk is room for the paths of
// the rest of the batch at pathGuess bytes each.
type pathArena struct {
	sb   strings.Builder
	left int // records of the batch not joined yet
}

// pathGuess is about a path's length in bytes.
const pathGuess = 48

// start begins a batch of n records: the next join starts a new chunk.
func (a *pathArena) start(n int) {
	a.sb = strings.Builder{}
	a.left = n
}

// join returns dir + "/" + name ("/" + name in the root), "" if either is
// unknown.
func (a *pathArena) join(dir, name string) string {
	if dir == "" || name == "" {
		return ""
	}
	need := len(dir) + 1 + len(name)
	if a.sb.Cap()-a.sb.Len() < need {
		a.sb = strings.Builder{}
		a.sb.Grow(max(need, a.left*pathGuess))
	}
	a.left = max(a.left-1, 1)
	start := a.sb.Len()
	a.sb.WriteString(dir)
	if dir != "/" {
		a.sb.WriteByte('/')
	}
	a.sb.WriteString(name)
	return a.sb.String()[start:]
}

// resolver turns FIDs into full paths with fid2path, caching them. Paths
// are those at export time: a record exported late names where its object
// is now. Renames and rmdirs drop the cache (a directory's descendants
// move with it); unlinks drop their object.
type resolver struct {
	c     *client.Client
	cache *lru.Cache[fid.FID, string]
}

func newResolver(c *client.Client) *resolver {
	cache, err := lru.New[fid.FID, string](1 << 16)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &resolver{c: c, cache: cache}
}

// path returns the full path of f ("/" for the root), or "" if the server
// cannot resolve it (removed, or not reachable).
func (r *resolver) path(ctx context.Context, f fid.FID) string {
	if f.IsZero() {
		return ""
	}
	if p, ok := r.cache.Get(f); ok {
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ps, err := r.c.Fid2Path(ctx, f, 0)
	if err != nil || len(ps) == 0 {
		return ""
	}
	p := "/" + ps[0]
	r.cache.Add(f, p)
	return p
}

// resolve fills e's paths, joining them in a.
func (r *resolver) resolve(ctx context.Context, e *event, a *pathArena) {
	rec := e.rec
	switch {
	case !rec.PFID.IsZero() && rec.Name != "":
		e.path = a.join(r.path(ctx, rec.PFID), rec.Name)
	default:
		e.path = r.path(ctx, rec.TFID)
	}
	if !rec.SFID.IsZero() {
		e.spath = a.join(r.path(ctx, rec.SPFID), rec.SName)
	}
	switch rec.Type {
	case changelog.CLRename, changelog.CLRmdir, changelog.CLMigrate:
		r.cache.Purge()
	case changelog.CLUnlink:
		r.cache.Remove(rec.TFID)
	}
}
