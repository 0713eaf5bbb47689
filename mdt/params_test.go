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
	// lctl get_param's order (lustre_param.c globs /sys/fs/lustre, then
	// /sys/kernel/debug/lustre, each sorted): mdd_lproc.c's sysfs
	// attributes by name, then its debugfs files by name. fidlog's own
	// changelog_max_records sorts among the attributes; the other
	// fidlog-only ones (dedup, checkpoint, pubkey, orphan) are left out.
	wantOrder := []string{
		"changelog_deniednext", "changelog_free_space_gc", "changelog_gc",
		"changelog_max_idle_indexes", "changelog_max_idle_time", "changelog_max_records",
		"changelog_min_free_cat_entries", "changelog_min_gc_interval", "changelog_size",
		"enable_shard_pfid",
		"changelog_current_mask", "changelog_mask", "changelog_users",
	}
	var lustreNames []string
	for _, n := range names {
		if !strings.Contains(n, "dedup") && !strings.Contains(n, "checkpoint") && !strings.Contains(n, "pubkey") && !strings.Contains(n, "orphan") {
			lustreNames = append(lustreNames, n)
		}
	}
	if strings.Join(lustreNames, " ") != strings.Join(wantOrder, " ") {
		t.Errorf("get_param mdd.*.* order:\n got %v\nwant %v", lustreNames, wantOrder)
	}
	for name, want := range map[string]string{dev + "changelog_min_free_cat_entries": "2", dev + "enable_shard_pfid": "0"} {
		if got := e.param(name); got != want {
			t.Errorf("default %s = %q, want %q", name, got, want)
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
		// mdd_lproc.c: kstrtoll/kstrtouint syntax errors are EINVAL, values
		// below the minimum or too big for the type ERANGE.
		{"mdd.*.changelog_max_idle_time", "0", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.changelog_max_idle_time", "-5", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.changelog_max_idle_time", "2147483648", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.changelog_max_idle_time", "0x10", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_min_gc_interval", "0", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.changelog_min_gc_interval", "soon", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_min_free_cat_entries", "0", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.changelog_min_free_cat_entries", "-1", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_min_free_cat_entries", "4294967296", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.enable_shard_pfid", "256", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.enable_shard_pfid", "yes", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_deniednext", "-1", syscall.EINVAL, changelog.ErrBadParam},
		{"mdd.*.changelog_deniednext", "0x100000000", syscall.ERANGE, changelog.ErrParamRange},
		{"mdd.*.changelog_max_idle_indexes", "18446744073709551616", syscall.ERANGE, changelog.ErrParamRange},
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
	e.setParam(dev+"changelog_min_free_cat_entries", "3")
	e.setParam(dev+"enable_shard_pfid", "7") // kstrtou8, stored as a boolean
	e.setParam("nodemap.default.audit_mode", "0")
	e.setParam("nodemap.default.admin_nodemap", "1")
	e.reopen()
	for name, want := range map[string]string{
		dev + "changelog_mask":                 changelog.DefMask.ParamString(),
		dev + "changelog_max_records":          "256",
		dev + "changelog_gc":                   "0",
		dev + "changelog_deniednext":           "8",
		dev + "changelog_min_free_cat_entries": "3",
		dev + "enable_shard_pfid":              "1",
		"nodemap.default.audit_mode":           "0",
		"nodemap.default.admin_nodemap":        "1",
		dev + "changelog_max_idle_time":        "2592000",
		dev + "changelog_min_gc_interval":      "3600",
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

// TestPubkeyParam: changelog_pubkey prints the checkpoint key, "rotate"
// replaces it (a rotation checkpoint), anything else changes nothing.
func TestPubkeyParam(t *testing.T) {
	keyFile := t.TempDir() + "/changelog.key"
	e := newEnv(t, func(o *Options) { o.ChangelogKeyFile = keyFile })
	const name = "mdd.lustre-MDT0000.changelog_pubkey"
	k1 := e.param(name)
	if !strings.HasPrefix(k1, "ed25519:") || k1 != changelog.FormatPublicKey(e.m.log.PublicKey()) {
		t.Fatalf("changelog_pubkey %q", k1)
	}
	if _, err := e.m.SetParam(name, "x"); !errors.Is(err, ErrInvalid) || Errno(err) != syscall.EINVAL {
		t.Fatalf("set x: %v", err)
	}
	if e.param(name) != k1 {
		t.Fatal("a bad value changed the key")
	}
	if _, err := e.m.SetParam(name, "rotate"); err != nil {
		t.Fatal(err)
	}
	if k2 := e.param(name); k2 == k1 || !strings.HasPrefix(k2, "ed25519:") {
		t.Fatalf("after rotate: %q (was %q)", k2, k1)
	}
	// Without a key file there is no key to rotate.
	e2 := newEnv(t)
	if got := e2.param(name); got != "none" {
		t.Fatalf("no key: %q", got)
	}
	if _, err := e2.m.SetParam(name, "rotate"); err == nil {
		t.Fatal("rotate without a key succeeded")
	}
}
