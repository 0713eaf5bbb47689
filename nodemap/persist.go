package nodemap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// persistVersion is the version of the encoding MarshalBinary writes.
// UnmarshalBinary accepts only this version.
const persistVersion = 1

// The saved form: JSON, nodemaps in ID order, ranges in ID order, so that
// equal states encode to equal bytes.
type savedConfig struct {
	Version       int            `json:"version"`
	Active        bool           `json:"active"`
	LastNodemapID uint32         `json:"last_nodemap_id"`
	LastRangeID   uint32         `json:"last_range_id"`
	Nodemaps      []savedNodemap `json:"nodemaps"`
}

type savedNodemap struct {
	Name   string       `json:"name"`
	ID     uint32       `json:"id"`
	Props  savedProps   `json:"props"`
	Ranges []savedRange `json:"ranges"`
}

type savedProps struct {
	Admin            bool   `json:"admin"`
	Trusted          bool   `json:"trusted"`
	SquashUID        uint32 `json:"squash_uid"`
	SquashGID        uint32 `json:"squash_gid"`
	SquashProjID     uint32 `json:"squash_projid"`
	DenyUnknown      bool   `json:"deny_unknown"`
	AuditMode        bool   `json:"audit_mode"`
	MapMode          uint8  `json:"map_mode"`
	ForbidEncryption bool   `json:"forbid_encryption"`
	ReadonlyMount    bool   `json:"readonly_mount"`
	DenyMount        bool   `json:"deny_mount"`
	RBAC             uint32 `json:"rbac"`
	RaisePrivileges  uint32 `json:"raise_privileges"`
	RaiseRoles       uint32 `json:"raise_roles"`
	GSSOnly          bool   `json:"gssonly_identification"`
}

type savedRange struct {
	ID    uint32 `json:"id"`
	Range string `json:"range"`
}

func saveProps(p Properties) savedProps {
	return savedProps{
		Admin: p.Admin, Trusted: p.Trusted,
		SquashUID: p.SquashUID, SquashGID: p.SquashGID, SquashProjID: p.SquashProjID,
		DenyUnknown: p.DenyUnknown, AuditMode: p.AuditMode, MapMode: uint8(p.MapMode),
		ForbidEncryption: p.ForbidEncryption, ReadonlyMount: p.ReadonlyMount, DenyMount: p.DenyMount,
		RBAC: uint32(p.RBAC), RaisePrivileges: uint32(p.RaisePrivileges), RaiseRoles: uint32(p.RaiseRoles),
		GSSOnly: p.GSSOnlyIdentification,
	}
}

func (s savedProps) props() Properties {
	return Properties{
		Admin: s.Admin, Trusted: s.Trusted,
		SquashUID: s.SquashUID, SquashGID: s.SquashGID, SquashProjID: s.SquashProjID,
		DenyUnknown: s.DenyUnknown, AuditMode: s.AuditMode, MapMode: MapMode(s.MapMode),
		ForbidEncryption: s.ForbidEncryption, ReadonlyMount: s.ReadonlyMount, DenyMount: s.DenyMount,
		RBAC: Roles(s.RBAC), RaisePrivileges: Privileges(s.RaisePrivileges), RaiseRoles: Roles(s.RaiseRoles),
		GSSOnlyIdentification: s.GSSOnly,
	}
}

// MarshalBinary encodes the whole state (activation, nodemaps, properties,
// ranges, nodemap and range ids, and the last ids handed out) as versioned
// JSON. Equal states give equal bytes. It never fails.
func (c *Config) MarshalBinary() ([]byte, error) {
	c.init()
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := savedConfig{
		Version:       persistVersion,
		Active:        c.mu.active,
		LastNodemapID: c.mu.lastNodemapID,
		LastRangeID:   c.mu.lastRangeID,
	}
	for _, info := range c.listLocked() {
		sn := savedNodemap{Name: info.Name, ID: info.ID, Props: saveProps(info.Properties), Ranges: []savedRange{}}
		for _, ri := range info.Ranges {
			sn.Ranges = append(sn.Ranges, savedRange{ID: ri.ID, Range: ri.Range.String()})
		}
		s.Nodemaps = append(s.Nodemaps, sn)
	}
	return json.Marshal(s)
}

// UnmarshalBinary replaces the whole state with one MarshalBinary encoded.
// It checks everything an operation could not have produced (unknown
// version or fields, invalid or duplicate names or ids, ids above the last
// ones handed out, no default nodemap or a default with ranges, ranges that
// do not parse or overlap, property values Modify refuses) and then
// returns an error wrapping ErrCorrupt and leaves the state unchanged.
func (c *Config) UnmarshalBinary(data []byte) error {
	c.init()
	var s savedConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON value", ErrCorrupt)
	}
	byName, index, err := s.build()
	if err != nil {
		return fmt.Errorf("%w: %s", ErrCorrupt, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.active = s.Active
	c.mu.byName = byName
	c.mu.index = index
	c.mu.lastNodemapID = s.LastNodemapID
	c.mu.lastRangeID = s.LastRangeID
	return nil
}

// build validates s and returns the nodemaps and the range index it holds.
func (s *savedConfig) build() (map[string]*nodemap, []indexEntry, error) {
	if s.Version != persistVersion {
		return nil, nil, fmt.Errorf("unsupported version %d", s.Version)
	}
	byName := make(map[string]*nodemap, len(s.Nodemaps))
	ids := make(map[uint32]bool)
	rangeIDs := make(map[uint32]bool)
	var index []indexEntry
	for _, sn := range s.Nodemaps {
		q := strconv.Quote(sn.Name)
		isDefault := sn.Name == DefaultName
		switch {
		case checkName(sn.Name) != "":
			return nil, nil, fmt.Errorf("nodemap %s: %s", q, checkName(sn.Name))
		case byName[sn.Name] != nil:
			return nil, nil, fmt.Errorf("nodemap %s: duplicate name", q)
		case ids[sn.ID]:
			return nil, nil, fmt.Errorf("nodemap %s: duplicate id %d", q, sn.ID)
		case isDefault != (sn.ID == 0):
			return nil, nil, fmt.Errorf("nodemap %s: id %d (id 0 is the default nodemap's)", q, sn.ID)
		case sn.ID > s.LastNodemapID:
			return nil, nil, fmt.Errorf("nodemap %s: id %d above last id %d", q, sn.ID, s.LastNodemapID)
		case isDefault && len(sn.Ranges) > 0:
			return nil, nil, fmt.Errorf("nodemap %s has ranges", q)
		}
		props := sn.Props.props()
		if reason := props.validate(isDefault); reason != "" {
			return nil, nil, fmt.Errorf("nodemap %s: %s", q, reason)
		}
		nm := &nodemap{name: sn.Name, id: sn.ID, props: props}
		for _, sr := range sn.Ranges {
			r, err := ParseRange(sr.Range)
			switch {
			case err != nil:
				return nil, nil, fmt.Errorf("nodemap %s: %w", q, err)
			case sr.ID == 0 || rangeIDs[sr.ID]:
				return nil, nil, fmt.Errorf("nodemap %s: range id %d is 0 or duplicate", q, sr.ID)
			case sr.ID > s.LastRangeID:
				return nil, nil, fmt.Errorf("nodemap %s: range id %d above last id %d", q, sr.ID, s.LastRangeID)
			case len(nm.ranges) > 0 && nm.ranges[len(nm.ranges)-1].ID > sr.ID:
				return nil, nil, fmt.Errorf("nodemap %s: range ids out of order", q)
			}
			rangeIDs[sr.ID] = true
			nm.ranges = append(nm.ranges, RangeInfo{ID: sr.ID, Range: r})
			index = append(index, indexEntry{r: r, nm: nm})
		}
		byName[sn.Name] = nm
		ids[sn.ID] = true
	}
	if byName[DefaultName] == nil {
		return nil, nil, fmt.Errorf("no default nodemap")
	}
	slices.SortFunc(index, func(a, b indexEntry) int { return a.r.start.Compare(b.r.start) })
	for i := 1; i < len(index); i++ {
		if index[i-1].r.Overlaps(index[i].r) {
			return nil, nil, fmt.Errorf("range %s of nodemap %q overlaps range %s of nodemap %q",
				index[i].r, index[i].nm.name, index[i-1].r, index[i-1].nm.name)
		}
	}
	return byName, index, nil
}
