package mdt

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/fidlog/fidlog/nodemap"
)

// nodemapConfigKey holds the marshalled nodemap.Config.
var nodemapConfigKey = nodemapKey("config")

// nodemapState is the MDT's nodemap configuration. Requests read the
// current *nodemap.Config through an atomic pointer; a change is made on a
// copy, persisted with a synced write, and only then published, so a
// failed write changes nothing and every change applies from the next
// request on.
type nodemapState struct {
	db   *pebble.DB
	mu   sync.Mutex // serialises changes
	cfg  atomic.Pointer[nodemap.Config]
	fail *storeFailure
}

func loadNodemap(db *pebble.DB, fail *storeFailure) (*nodemapState, error) {
	s := &nodemapState{db: db, fail: fail}
	cfg := nodemap.New()
	if _, err := get(db, nodemapConfigKey, func(v []byte) error {
		if err := cfg.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("%w: stored nodemap configuration: %w", ErrIO, err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	s.cfg.Store(cfg)
	return s, nil
}

// clone returns a private copy of the current configuration.
func (s *nodemapState) clone() (*nodemap.Config, error) {
	data, err := s.cfg.Load().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIO, err)
	}
	c := nodemap.New()
	if err := c.UnmarshalBinary(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIO, err)
	}
	return c, nil
}

// change applies fn to a copy, persists it and publishes it. With dryRun
// it only validates.
func (s *nodemapState) change(fn func(*nodemap.Config) error, dryRun bool) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail.get(); err != nil {
		return err
	}
	next, err := s.clone()
	if err != nil {
		return err
	}
	if err := fn(next); err != nil {
		return err
	}
	if dryRun {
		return nil
	}
	data, err := next.MarshalBinary()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	if err := s.db.Set(nodemapConfigKey, data, pebble.Sync); err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	s.cfg.Store(next)
	return nil
}

// Identify maps a request's credentials through the nodemap. While
// nodemaps are inactive the identity is unchanged and audited. While
// active, the NID's nodemap decides: root is squashed unless admin=1,
// other IDs unless trusted=1; supplementary groups that would be squashed
// are dropped; deny_unknown with a squashed uid is ErrPermission;
// audit_mode=0 makes Audit false. An empty NID is the local administrator
// (0@lo); a NID that does not parse is EINVAL. Local credentials pass
// through unmapped and audited, with every role (root on the MDS).
func (m *MDT) Identify(c Cred) (Identity, error) {
	if c.Local {
		return Identity{UID: c.UID, GID: c.GID, Groups: c.Groups, Audit: true, Admin: c.UID == 0, Roles: nodemap.RolesAll}, nil
	}
	nid := nodemap.LoNID()
	if c.NID != "" {
		if last := m.lastNID.Load(); last != nil && last.s == c.NID {
			nid = last.nid
		} else {
			n, err := nodemap.ParseNID(c.NID)
			if err != nil {
				return Identity{}, &PathError{Op: "identify", Path: c.NID, Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
			}
			nid = n
			m.lastNID.Store(&parsedNID{s: c.NID, nid: n})
		}
	}
	cfg := m.nm.cfg.Load()
	id := cfg.Map(nid, c.UID, c.GID)
	if id.Denied {
		return Identity{}, &PathError{Op: "identify", Path: c.NID, Err: fmt.Errorf("%w: unknown user %d refused by nodemap '%s' (deny_unknown)", ErrPermission, c.UID, id.Nodemap)}
	}
	out := Identity{UID: id.UID, GID: id.GID, Groups: c.Groups, Audit: id.Audit, Admin: id.Admin, Nodemap: id.Nodemap, Roles: id.Roles}
	if len(c.Groups) > 0 && cfg.Active() {
		out.Groups = nil
		for _, g := range c.Groups {
			if cfg.Map(nid, c.UID, g).GID == g {
				out.Groups = append(out.Groups, g)
			}
		}
	}
	return out, nil
}

// NodemapActive reports whether nodemaps are enforced (nodemap.active).
func (m *MDT) NodemapActive() bool { return m.nm.cfg.Load().Active() }

// NodemapActivate turns nodemap enforcement on or off (nodemap_activate).
func (m *MDT) NodemapActivate(on bool) error {
	return m.nm.change(func(c *nodemap.Config) error { c.Activate(on); return nil }, false)
}

// NodemapAdd creates a nodemap (nodemap_add).
func (m *MDT) NodemapAdd(name string) error {
	return m.nm.change(func(c *nodemap.Config) error { return c.Add(name) }, false)
}

// NodemapDel deletes a nodemap (nodemap_del).
func (m *MDT) NodemapDel(name string) error {
	return m.nm.change(func(c *nodemap.Config) error { return c.Del(name) }, false)
}

// NodemapAddRange adds a NID range to a nodemap (nodemap_add_range).
func (m *MDT) NodemapAddRange(name, rng string) error {
	return m.nm.change(func(c *nodemap.Config) error { return c.AddRange(name, rng) }, false)
}

// NodemapDelRange removes a NID range from a nodemap (nodemap_del_range).
func (m *MDT) NodemapDelRange(name, rng string) error {
	return m.nm.change(func(c *nodemap.Config) error { return c.DelRange(name, rng) }, false)
}

// NodemapModify sets a nodemap property (nodemap_modify).
func (m *MDT) NodemapModify(name, prop, value string) error {
	return m.nm.change(func(c *nodemap.Config) error { return c.Modify(name, prop, value) }, false)
}

// NodemapTestNID returns the nodemap a NID belongs to (nodemap_test_nid).
func (m *MDT) NodemapTestNID(nid string) (string, error) {
	return m.nm.cfg.Load().TestNID(nid)
}

// nodemapParams exposes nodemap.Config.Params. nodemap.active and the
// properties (by their get_param names) can be set; id and ranges are
// read-only.
func (m *MDT) nodemapParams() []paramDef {
	var defs []paramDef
	for _, p := range m.nm.cfg.Load().Params() {
		d := paramDef{name: p.Name, get: func() (string, error) { return p.Value, nil }}
		var fn func(v string) func(*nodemap.Config) error
		parts := strings.Split(p.Name, ".")
		switch {
		case p.Name == "nodemap.active":
			fn = func(v string) func(*nodemap.Config) error {
				return func(c *nodemap.Config) error {
					on, err := nodemap.ParseBool(v)
					if err != nil {
						return fmt.Errorf("%w: expect a boolean", ErrInvalid)
					}
					c.Activate(on)
					return nil
				}
			}
		case len(parts) == 3 && parts[2] != "id" && parts[2] != "ranges":
			prop := strings.TrimSuffix(parts[2], "_nodemap") // admin_nodemap -> admin
			name := parts[1]
			fn = func(v string) func(*nodemap.Config) error {
				return func(c *nodemap.Config) error { return c.Modify(name, prop, v) }
			}
		}
		if fn != nil {
			d.check = func(v string) error { return m.nm.change(fn(v), true) }
			d.set = func(v string) error { return m.nm.change(fn(v), false) }
		}
		defs = append(defs, d)
	}
	return defs
}

// parsedNID is a NID string with its parse: requests repeat their
// client's NID, and parsing it was 1-2 % of a create's CPU.
type parsedNID struct {
	s   string
	nid nodemap.NID
}
