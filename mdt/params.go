package mdt

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
)

// Param is one parameter and its value as lctl get_param prints it.
type Param struct {
	Name, Value string
}

// paramDef is one parameter of the tree. check validates a value without
// setting it; set sets it (nil: read-only).
type paramDef struct {
	name  string
	get   func() (string, error)
	check func(v string) error
	set   func(v string) error
}

// debugfsParams are the mdd parameters Lustre keeps in debugfs (seq files)
// rather than sysfs (attributes); lctl lists them after the sysfs ones.
var debugfsParams = map[string]bool{
	"changelog_mask": true, "changelog_current_mask": true, "changelog_users": true,
}

// params returns the parameter tree in lctl get_param's order: mdd.<dev>.*
// then nodemap.*. Within mdd, as lctl's glob over /sys/fs/lustre then
// /sys/kernel/debug/lustre lists them: the sysfs attributes in name order,
// then the debugfs files (changelog_current_mask, changelog_mask,
// changelog_users) in name order.
func (m *MDT) params() []paramDef {
	defs := m.mddParams()
	slices.SortStableFunc(defs, func(a, b paramDef) int {
		da, db := debugfsParams[strings.TrimPrefix(a.name, "mdd."+m.dev+".")], debugfsParams[strings.TrimPrefix(b.name, "mdd."+m.dev+".")]
		if da != db {
			if da {
				return 1
			}
			return -1
		}
		return strings.Compare(a.name, b.name)
	})
	return append(defs, m.nodemapParams()...)
}

// mddParams returns the mdd.<dev>.* parameters, unordered.
func (m *MDT) mddParams() []paramDef {
	pre := "mdd." + m.dev + "."
	var defs []paramDef
	defs = append(defs,
		paramDef{
			name: pre + "changelog_mask",
			get:  func() (string, error) { return m.log.Settings().Mask.ParamString(), nil },
			check: func(v string) error {
				rel := m.log.Settings().Mask
				if rel == changelog.MinMask {
					rel = changelog.DefMask
				}
				_, err := changelog.ParseMask(v, rel)
				return err
			},
			set: func(v string) error { _, err := m.log.SetMask(v); return err },
		},
		paramDef{
			name: pre + "changelog_current_mask",
			get:  func() (string, error) { return m.log.State().Effective.ParamString(), nil },
		},
		paramDef{
			name: pre + "changelog_users",
			get:  func() (string, error) { return m.log.UsersText(), nil },
		},
		paramDef{
			name: pre + "changelog_size",
			get: func() (string, error) {
				n, err := m.log.Size()
				if err != nil {
					return "", storeErr(err)
				}
				return strconv.FormatUint(n, 10), nil
			},
		},
		paramDef{
			name:  pre + "changelog_deniednext",
			get:   func() (string, error) { return strconv.FormatUint(uint64(m.deniedNext.Load()), 10), nil },
			check: func(v string) error { _, err := parseDeniedNext(v); return err },
			set: func(v string) error {
				n, err := parseDeniedNext(v)
				if err != nil {
					return err
				}
				if err := m.setMeta(metaDeniedNext, []byte(strconv.FormatUint(uint64(n), 10))); err != nil {
					return err
				}
				m.deniedNext.Store(n)
				return nil
			},
		},
	)
	defs = append(defs, paramDef{
		// changelog_pubkey: the checkpoint signing key (fidlog's own).
		// Writing "rotate" replaces the key: a rotation checkpoint signed
		// by the old key names the new one.
		name: pre + "changelog_pubkey",
		get: func() (string, error) {
			k := m.log.PublicKey()
			if k == nil {
				return "none", nil
			}
			return changelog.FormatPublicKey(k), nil
		},
		check: func(v string) error {
			if strings.TrimSpace(v) != "rotate" {
				return &changelog.ParamError{Name: "changelog_pubkey", Value: v, Reason: "the only value to write is 'rotate'"}
			}
			if m.log.PublicKey() == nil {
				return fmt.Errorf("%w: %w", ErrInvalid, store.ErrNoSigningKey)
			}
			return nil
		},
		set: func(string) error {
			_, err := m.log.RotateKey()
			return err
		},
	})
	defs = append(defs,
		paramDef{
			// fidlog's own: suppress repeats of identical access records
			// (OPEN, GXATR, NOPEN, DENY) within this many seconds; 0 is off.
			name:  pre + "changelog_dedup_window",
			get:   func() (string, error) { return strconv.FormatUint(uint64(m.dedupWindow.Load()), 10), nil },
			check: func(v string) error { _, err := parseDedupWindow(v); return err },
			set: func(v string) error {
				n, err := parseDedupWindow(v)
				if err != nil {
					return err
				}
				if err := m.setMeta(metaDedupWindow, []byte(strconv.FormatUint(uint64(n), 10))); err != nil {
					return err
				}
				m.dedupWindow.Store(n)
				return nil
			},
		},
		paramDef{
			// fidlog's own (orphan.go): how long after a start the
			// orphans of the previous run (unlinked files that were
			// open) wait for a client to reopen them before they are
			// removed; as a Lustre MDT's recovery window.
			name: pre + "orphan_grace",
			get: func() (string, error) {
				m.orphans.mu.Lock()
				defer m.orphans.mu.Unlock()
				return strconv.FormatUint(uint64(m.orphans.grace), 10), nil
			},
			check: func(v string) error { _, err := parseOrphanGrace(v); return err },
			set: func(v string) error {
				n, err := parseOrphanGrace(v)
				if err != nil {
					return err
				}
				return m.setOrphanGrace(n)
			},
		},
		paramDef{
			// Read-only: unlinked objects kept because they are open or
			// await a reopen within orphan_grace.
			name: pre + "orphan_count",
			get: func() (string, error) {
				n, err := m.orphanCount()
				return strconv.Itoa(n), err
			},
		},
		paramDef{
			// Read-only: access records the window suppressed since start.
			name: pre + "changelog_dedup_suppressed",
			get:  func() (string, error) { return strconv.FormatUint(m.DedupSuppressed(), 10), nil },
		},
	)
	for _, short := range store.ParamNames {
		if short == "changelog_mask" {
			continue
		}
		defs = append(defs, paramDef{
			name: pre + short,
			get: func() (string, error) {
				s := m.log.Settings()
				v, _ := s.Param(short)
				return v, nil
			},
			check: func(v string) error {
				s := m.log.Settings()
				return s.SetParam(short, v)
			},
			set: func(v string) error {
				return m.log.UpdateSettings(func(s *store.Settings) error { return s.SetParam(short, v) })
			},
		})
	}
	return defs
}

// parseDeniedNext parses changelog_deniednext as mdd_lproc.c does: an
// unsigned int in any C base (kstrtouint(buf, 0)); too big is ERANGE.
func parseDeniedNext(v string) (uint32, error) {
	n, err := store.ParseUint("changelog_deniednext", v, 0, 32)
	return uint32(n), err
}

// matchParam reports whether name matches pattern, component by component
// (dotted names, path.Match globs per component).
func matchParam(pattern, name string) (bool, error) {
	return path.Match(strings.ReplaceAll(pattern, ".", "/"), strings.ReplaceAll(name, ".", "/"))
}

func (m *MDT) matchParams(pattern string) ([]paramDef, error) {
	var out []paramDef
	for _, d := range m.params() {
		ok, err := matchParam(pattern, d.name)
		if err != nil {
			return nil, &ParamError{Name: pattern, Err: fmt.Errorf("%w: bad pattern: %v", ErrInvalid, err)}
		}
		if ok {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, &ParamError{Name: pattern, Err: ErrNoParam}
	}
	return out, nil
}

// GetParams returns the parameters matching each pattern, in pattern
// order then tree order. A pattern with no match is ErrNoParam naming it.
func (m *MDT) GetParams(patterns ...string) ([]Param, error) {
	if err := m.checkOpen(); err != nil {
		return nil, err
	}
	var out []Param
	for _, p := range patterns {
		defs, err := m.matchParams(p)
		if err != nil {
			return out, err
		}
		for _, d := range defs {
			v, err := d.get()
			if err != nil {
				return out, &ParamError{Name: d.name, Err: err}
			}
			out = append(out, Param{Name: d.name, Value: v})
		}
	}
	return out, nil
}

// SetParam sets every parameter matching name to value. Every match is
// validated first (read-only ones before values); if any is read-only
// (ErrReadOnly) or refuses the value,
// nothing is set and the error names the parameter and value. Values are
// persisted before SetParam returns.
func (m *MDT) SetParam(name, value string) ([]Param, error) {
	if err := m.checkOpen(); err != nil {
		return nil, err
	}
	defs, err := m.matchParams(name)
	if err != nil {
		var pe *ParamError
		if errors.As(err, &pe) {
			pe.Value = value
		}
		return nil, err
	}
	for _, d := range defs {
		if d.set == nil {
			return nil, &ParamError{Name: d.name, Value: value, Err: ErrReadOnly}
		}
	}
	for _, d := range defs {
		if d.check != nil {
			if err := d.check(value); err != nil {
				return nil, &ParamError{Name: d.name, Value: value, Err: invalidParam(err)}
			}
		}
	}
	var out []Param
	for _, d := range defs {
		if err := d.set(value); err != nil {
			return out, &ParamError{Name: d.name, Value: value, Err: invalidParam(err)}
		}
		out = append(out, Param{Name: d.name, Value: value})
	}
	return out, nil
}

// invalidParam makes a validation error also match ErrInvalid unless it
// already carries a more specific class (ERANGE for a number out of range).
func invalidParam(err error) error {
	if errors.Is(err, changelog.ErrParamRange) {
		if !errors.Is(err, ErrRange) {
			return fmt.Errorf("%w: %w", ErrRange, err)
		}
		return err
	}
	if errors.Is(err, changelog.ErrBadParam) || errors.Is(err, changelog.ErrBadMask) {
		if !errors.Is(err, ErrInvalid) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return err
}
