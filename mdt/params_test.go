package mdt

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/changelog"
)

func TestParams(t *testing.T) {
	e := newEnv(t)
	const dev = "mdd.lustre-MDT0000."
	if got := e.param(dev + "changelog_mask"); got != "MARK " {
		t.Fatalf("default changelog_mask %q", got)
	}
	all := must[[]Param](t)(e.m.GetParams("mdd.*.*"))
	var names []string
	for _, p := range all {
		names = append(names, strings.TrimPrefix(p.Name, dev))
	}
	for _, want := range []string{"changelog_mask", "changelog_current_mask", "changelog_users", "changelog_deniednext",
		"changelog_gc", "changelog_free_space_gc", "changelog_max_idle_time", "changelog_max_idle_indexes",
		"changelog_min_gc_interval", "changelog_max_records", "changelog_size"} {
		if !strings.Contains(strings.Join(names, " ")+" ", want+" ") {
			t.Errorf("%s missing from %v", want, names)
		}
	}
	if got := must[[]Param](t)(e.m.GetParams("mdd.lustre-MDT0000.changelog_*gc")); len(got) != 2 {
		t.Fatalf("changelog_*gc matched %v", got)
	}
	if got := e.param("nodemap.active"); got != "0" {
		t.Fatalf("nodemap.active %q", got)
	}

	// Errors name the parameter and value; bad values change nothing.
	cases := []struct {
		name, value string
		want        syscall.Errno
		sentinel    error
	}{
		{"mdd.*.changelog_mask", "+BOGUS", syscall.EINVAL, changelog.ErrBadMask},
		{"mdd.*.changelog_gc", "maybe", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_max_idle_time", "0", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_deniednext", "-1", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_users", "1", syscall.EACCES, ErrReadOnly},
		{"mdd.*.changelog_current_mask", "ALL", syscall.EACCES, ErrReadOnly},
		{"mdd.*.changelog_size", "1", syscall.EACCES, ErrReadOnly},
		{"mdd.*.nosuch", "1", syscall.ENOENT, ErrNoParam},
		{"nodemap.default.squash_uid", "0", syscall.EINVAL, nil},
		{"nodemap.default.id", "3", syscall.EACCES, ErrReadOnly},
		{"nodemap.active", "sometimes", syscall.EINVAL, nil},
		{"mdd.*.changelog_*", "1", syscall.EACCES, ErrReadOnly}, // a read-only match fails the whole set
	}
	before := must[[]Param](t)(e.m.GetParams("mdd.*.*", "nodemap.*", "nodemap.*.*"))
	for _, c := range cases {
		_, err := e.m.SetParam(c.name, c.value)
		wantErrno(t, err, c.want)
		if c.sentinel != nil && !errors.Is(err, c.sentinel) {
			t.Errorf("%s=%s: %v does not match %v", c.name, c.value, err, c.sentinel)
		}
		if !strings.Contains(err.Error(), c.value) {
			t.Errorf("error %q does not name the value %q", err, c.value)
		}
	}
	_, err := e.m.GetParams("mdd.*.nosuch")
	if !errors.Is(err, ErrNoParam) || !strings.Contains(err.Error(), "mdd.*.nosuch") {
		t.Fatalf("get of unknown param: %v", err)
	}
	after := must[[]Param](t)(e.m.GetParams("mdd.*.*", "nodemap.*", "nodemap.*.*"))
	if len(after) != len(before) {
		t.Fatal("failed sets changed the tree")
	}
	for i := range after {
		if after[i] != before[i] && !strings.HasSuffix(after[i].Name, "changelog_users") && !strings.HasSuffix(after[i].Name, "changelog_size") {
			t.Errorf("%s changed: %q -> %q", after[i].Name, before[i].Value, after[i].Value)
		}
	}

	// Good values are set, echoed and persisted.
	set := must[[]Param](t)(e.m.SetParam("mdd.*.changelog_mask", "+hsm"))
	if len(set) != 1 || set[0].Name != dev+"changelog_mask" || set[0].Value != "+hsm" {
		t.Fatalf("set echoed %v", set)
	}
	e.setParam(dev+"changelog_max_records", "0x100")
	e.setParam(dev+"changelog_gc", "off")
	e.setParam(dev+"changelog_deniednext", "010")
	e.setParam("nodemap.default.audit_mode", "0")
	e.setParam("nodemap.default.admin_nodemap", "1")
	e.reopen()
	for name, want := range map[string]string{
		dev + "changelog_mask":            changelog.DefMask.ParamString(),
		dev + "changelog_max_records":     "256",
		dev + "changelog_gc":              "0",
		dev + "changelog_deniednext":      "8",
		"nodemap.default.audit_mode":      "0",
		"nodemap.default.admin_nodemap":   "1",
		dev + "changelog_max_idle_time":   "2592000",
		dev + "changelog_min_gc_interval": "3600",
	} {
		if got := e.param(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	e.register("")
	e.touch(root, "f")
	if n := must[[]Param](t)(e.m.GetParams(dev + "changelog_size")); n[0].Value == "0" {
		t.Error("changelog_size is 0 with records")
	}
}

func TestErrnoMapping(t *testing.T) {
	tests := []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{&PathError{Op: "x", Path: "p", Err: ErrNotFound}, syscall.ENOENT},
		{storeErr(&changelog.NoSpaceError{Retained: 1, Cap: 1}), syscall.ENOSPC},
		{storeErr(errors.New("disk on fire")), syscall.EIO},
		{&changelog.UserError{User: "cl9", Err: changelog.ErrUnknownUser}, syscall.ENOENT},
		{&changelog.RangeError{End: 9, Current: 1}, syscall.EINVAL},
		{syscall.EROFS, syscall.EROFS},
		{errors.New("unknown"), syscall.EIO},
	}
	for _, tt := range tests {
		if got := Errno(tt.err); got != tt.want {
			t.Errorf("Errno(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
