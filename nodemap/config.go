package nodemap

import (
	"cmp"
	"slices"
	"sync"
)

// DefaultName is the name of the nodemap that always exists and holds
// every client no range claims.
const DefaultName = "default"

// MaxNameLen is the longest nodemap name (LUSTRE_NODEMAP_NAME_LENGTH).
const MaxNameLen = 16

// RangeInfo is a range held by a nodemap, with the id it was given when it
// was added. Range ids are unique across all nodemaps, start at 1, grow with
// each AddRange and are never reused.
type RangeInfo struct {
	ID    uint32
	Range Range
}

// Info is a snapshot of one nodemap.
type Info struct {
	Name string
	// ID is 0 for the default nodemap; other nodemaps get 1, 2, ... in
	// creation order, never reused.
	ID         uint32
	Properties Properties
	// Ranges are in ascending ID order; the default nodemap has none.
	Ranges []RangeInfo
}

// nodemap is one nodemap inside a Config, guarded by Config.mu.
type nodemap struct {
	name   string
	id     uint32
	props  Properties
	ranges []RangeInfo // ascending ID
}

// indexEntry places a range in Config's classification index.
type indexEntry struct {
	r  Range
	nm *nodemap
}

// Config is the whole nodemap state of a server: the activation flag, the
// nodemaps, their properties and NID ranges. It is safe for concurrent
// use. The zero Config is ready to use and equals New().
type Config struct {
	once sync.Once
	mu   struct {
		sync.RWMutex
		active bool
		byName map[string]*nodemap
		// index holds every range of every nodemap sorted by start; the
		// ranges are pairwise disjoint.
		index         []indexEntry
		lastNodemapID uint32
		lastRangeID   uint32
	}
}

// New returns an inactive Config holding only the default nodemap, with
// DefaultProperties.
func New() *Config {
	c := &Config{}
	c.init()
	return c
}

// init makes the zero Config equal to New().
func (c *Config) init() {
	c.once.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.resetLocked()
	})
}

// resetLocked sets the state to that of New().
func (c *Config) resetLocked() {
	c.mu.active = false
	c.mu.byName = map[string]*nodemap{
		DefaultName: {name: DefaultName, id: 0, props: DefaultProperties()},
	}
	c.mu.index = nil
	c.mu.lastNodemapID = 0
	c.mu.lastRangeID = 0
}

// Activate turns nodemap enforcement on or off (lctl nodemap_activate).
// While inactive, Map passes every identity through unchanged.
func (c *Config) Activate(on bool) {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.active = on
}

// Active reports whether nodemaps are enforced (nodemap.active).
func (c *Config) Active() bool {
	c.init()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.active
}

// checkName returns what is wrong with a nodemap name, or "".
func checkName(name string) string {
	if name == "" || len(name) > MaxNameLen {
		return "invalid name: must be 1 to 16 characters"
	}
	for i := range len(name) {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "invalid name: only letters, digits and '_' are allowed"
		}
	}
	return ""
}

// lookupLocked returns the named nodemap or the error naming why not.
func (c *Config) lookupLocked(name string) (*nodemap, error) {
	if reason := checkName(name); reason != "" {
		return nil, &NodemapError{Name: name, Err: ErrInvalid, Reason: reason}
	}
	nm := c.mu.byName[name]
	if nm == nil {
		return nil, &NodemapError{Name: name, Err: ErrNotFound}
	}
	return nm, nil
}

// Add creates nodemap name (lctl nodemap_add) with a copy of the default
// nodemap's current properties and no ranges. The name must be 1 to 16
// letters, digits or '_' (else ErrInvalid); a name in use, including
// "default", gives ErrExists. On error nothing changes.
func (c *Config) Add(name string) error {
	c.init()
	if reason := checkName(name); reason != "" {
		return &NodemapError{Name: name, Err: ErrInvalid, Reason: reason}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.byName[name] != nil {
		return &NodemapError{Name: name, Err: ErrExists}
	}
	props := c.mu.byName[DefaultName].props
	props.GSSOnlyIdentification = false
	c.mu.lastNodemapID++
	c.mu.byName[name] = &nodemap{name: name, id: c.mu.lastNodemapID, props: props}
	return nil
}

// Del deletes nodemap name and its ranges (lctl nodemap_del); its clients
// fall back to the default nodemap. Deleting "default" or using an invalid
// name gives ErrInvalid, an unknown name ErrNotFound. On error nothing
// changes.
func (c *Config) Del(name string) error {
	c.init()
	if name == DefaultName {
		return &NodemapError{Name: name, Err: ErrInvalid, Reason: "the default nodemap cannot be deleted"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	nm, err := c.lookupLocked(name)
	if err != nil {
		return err
	}
	delete(c.mu.byName, name)
	if len(nm.ranges) > 0 {
		c.rebuildIndexLocked()
	}
	return nil
}

// AddRange adds the NID range rangeText (ParseRange's grammar) to nodemap
// name (lctl nodemap_add_range) and gives it the next range id. Errors, in
// the order they are checked: the text does not parse (*ParseError), the
// name is invalid or unknown, name is the default nodemap (ErrInvalid),
// the range overlaps any range of any nodemap, including name itself
// (*OverlapError, ErrOverlap). On error nothing changes.
func (c *Config) AddRange(name, rangeText string) error {
	c.init()
	r, err := ParseRange(rangeText)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	nm, err := c.lookupLocked(name)
	if err != nil {
		return err
	}
	if nm.name == DefaultName {
		return &NodemapError{Name: name, Err: ErrInvalid, Reason: "the default nodemap cannot have NID ranges"}
	}
	for _, e := range c.mu.index {
		if e.r.Overlaps(r) {
			return &OverlapError{Nodemap: name, Range: r, Holder: e.nm.name, Existing: e.r}
		}
	}
	c.mu.lastRangeID++
	nm.ranges = append(nm.ranges, RangeInfo{ID: c.mu.lastRangeID, Range: r})
	c.rebuildIndexLocked()
	return nil
}

// DelRange removes from nodemap name the range equal to rangeText's (lctl
// nodemap_del_range); equal means the same block of NIDs, however it is
// written. Errors: the text does not parse (*ParseError), the name is
// invalid, unknown or default, or the nodemap has no such range
// (ErrNotFound). On error nothing changes.
func (c *Config) DelRange(name, rangeText string) error {
	c.init()
	r, err := ParseRange(rangeText)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	nm, err := c.lookupLocked(name)
	if err != nil {
		return err
	}
	if nm.name == DefaultName {
		return &NodemapError{Name: name, Err: ErrInvalid, Reason: "the default nodemap has no NID ranges"}
	}
	i := slices.IndexFunc(nm.ranges, func(ri RangeInfo) bool { return ri.Range == r })
	if i < 0 {
		return &NodemapError{Name: name, Err: ErrNotFound, Reason: "no nid range " + r.String()}
	}
	nm.ranges = slices.Delete(nm.ranges, i, i+1)
	c.rebuildIndexLocked()
	return nil
}

// rebuildIndexLocked recomputes c.mu.index from the nodemaps' ranges.
func (c *Config) rebuildIndexLocked() {
	c.mu.index = c.mu.index[:0]
	for _, nm := range c.mu.byName {
		for _, ri := range nm.ranges {
			c.mu.index = append(c.mu.index, indexEntry{r: ri.Range, nm: nm})
		}
	}
	slices.SortFunc(c.mu.index, func(a, b indexEntry) int { return a.r.start.Compare(b.r.start) })
}

// Modify sets one property of nodemap name (lctl nodemap_modify). prop is
// a nodemap_modify property name (see PropertyNames); value is parsed as
// Lustre does: booleans with ParseBool, IDs as decimal numbers, map_mode,
// rbac and child_raise_privileges as lists of names. Setting a property to
// its current value is a no-op.
//
// Errors, in the order they are checked: unknown property
// (*PropertyError, ErrUnknownProperty); invalid or unknown nodemap
// (*NodemapError); bad value, squash_uid or squash_gid 0, the local_admin
// role on the default nodemap (*PropertyError, ErrInvalid);
// gssonly_identification on a nodemap other than default
// (*PropertyError, ErrNotPermitted). On error nothing changes.
func (c *Config) Modify(name, prop, value string) error {
	c.init()
	if !slices.Contains(propertyNames[:], prop) {
		return &PropertyError{Nodemap: name, Property: prop, Value: value, Err: ErrUnknownProperty}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	nm, err := c.lookupLocked(name)
	if err != nil {
		return err
	}
	props, perr := nm.props.set(name, nm.name == DefaultName, prop, value)
	if perr != nil {
		return perr
	}
	nm.props = props
	return nil
}

// classifyLocked returns the nodemap whose range holds nid, or the default
// nodemap.
func (c *Config) classifyLocked(nid NID) *nodemap {
	idx := c.mu.index
	// The last range starting at or before nid is the only one that can
	// hold it, since the ranges are disjoint.
	i, found := slices.BinarySearchFunc(idx, nid, func(e indexEntry, n NID) int { return e.r.start.Compare(n) })
	if !found {
		i--
	}
	if i >= 0 && idx[i].r.Contains(nid) {
		return idx[i].nm
	}
	return c.mu.byName[DefaultName]
}

// Classify returns the name of the nodemap nid belongs to: the nodemap one
// of whose ranges contains it, else "default". It does not depend on
// activation. 0@lo belongs to default unless a range on lo holds it.
func (c *Config) Classify(nid NID) string {
	c.init()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.classifyLocked(nid).name
}

// TestNID parses nidText with ParseNID and classifies it (lctl
// nodemap_test_nid).
func (c *Config) TestNID(nidText string) (string, error) {
	nid, err := ParseNID(nidText)
	if err != nil {
		return "", err
	}
	return c.Classify(nid), nil
}

// infoLocked returns a snapshot of nm.
func infoLocked(nm *nodemap) Info {
	return Info{Name: nm.name, ID: nm.id, Properties: nm.props, Ranges: slices.Clone(nm.ranges)}
}

// Get returns a snapshot of nodemap name, or the *NodemapError naming why
// not (ErrInvalid, ErrNotFound).
func (c *Config) Get(name string) (Info, error) {
	c.init()
	c.mu.RLock()
	defer c.mu.RUnlock()
	nm, err := c.lookupLocked(name)
	if err != nil {
		return Info{}, err
	}
	return infoLocked(nm), nil
}

// List returns a snapshot of every nodemap in ID order (default first).
func (c *Config) List() []Info {
	c.init()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.listLocked()
}

func (c *Config) listLocked() []Info {
	out := make([]Info, 0, len(c.mu.byName))
	for _, nm := range c.mu.byName {
		out = append(out, infoLocked(nm))
	}
	slices.SortFunc(out, func(a, b Info) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
