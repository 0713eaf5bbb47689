package nodemap_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/nodemap"
)

// snapshot returns c's encoded state, to check that failed calls change
// nothing.
func snapshot(t *testing.T, c *nodemap.Config) []byte {
	t.Helper()
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNew(t *testing.T) {
	for _, c := range []*nodemap.Config{nodemap.New(), new(nodemap.Config)} {
		if c.Active() {
			t.Errorf("new Config is active")
		}
		list := c.List()
		if len(list) != 1 || list[0].Name != "default" || list[0].ID != 0 || len(list[0].Ranges) != 0 {
			t.Fatalf("List() = %+v, want only default", list)
		}
		if list[0].Properties != nodemap.DefaultProperties() {
			t.Errorf("default properties = %+v", list[0].Properties)
		}
	}
	if !bytes.Equal(snapshot(t, nodemap.New()), snapshot(t, new(nodemap.Config))) {
		t.Errorf("zero Config differs from New()")
	}
}

func TestDefaultProperties(t *testing.T) {
	p := nodemap.DefaultProperties()
	want := nodemap.Properties{
		SquashUID: 65534, SquashGID: 65534, SquashProjID: 65534,
		AuditMode: true, MapMode: nodemap.MapAll, RBAC: nodemap.RolesAll,
	}
	if p != want {
		t.Errorf("DefaultProperties() = %+v, want %+v", p, want)
	}
}

func TestAddDel(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Add("clients"))
	mustOK(t, c.Add("B_2"))
	mustOK(t, c.Add(strings.Repeat("x", 16)))

	tests := []struct {
		op   string
		name string
		want error
		msg  string
	}{
		{"add", "clients", nodemap.ErrExists, "nodemap 'clients' already exists"},
		{"add", "default", nodemap.ErrExists, "nodemap 'default' already exists"},
		{"add", "", nodemap.ErrInvalid, ""},
		{"add", strings.Repeat("x", 17), nodemap.ErrInvalid, ""},
		{"add", "bad-name", nodemap.ErrInvalid, ""},
		{"add", "bad name", nodemap.ErrInvalid, ""},
		{"add", "é", nodemap.ErrInvalid, ""},
		{"del", "default", nodemap.ErrInvalid, ""},
		{"del", "nope", nodemap.ErrNotFound, "nodemap 'nope' does not exist"},
		{"del", "bad-name", nodemap.ErrInvalid, ""},
	}
	for _, tt := range tests {
		before := snapshot(t, c)
		var err error
		if tt.op == "add" {
			err = c.Add(tt.name)
		} else {
			err = c.Del(tt.name)
		}
		var ne *nodemap.NodemapError
		if !errors.Is(err, tt.want) || !errors.As(err, &ne) || ne.Name != tt.name {
			t.Errorf("%s(%q) = %v, want *NodemapError matching %v", tt.op, tt.name, err, tt.want)
		}
		if tt.msg != "" && err.Error() != tt.msg {
			t.Errorf("%s(%q) message = %q, want %q", tt.op, tt.name, err.Error(), tt.msg)
		}
		if !bytes.Equal(before, snapshot(t, c)) {
			t.Errorf("failed %s(%q) changed the state", tt.op, tt.name)
		}
	}

	mustOK(t, c.Del("B_2"))
	if _, err := c.Get("B_2"); !errors.Is(err, nodemap.ErrNotFound) {
		t.Errorf("Get after Del = %v", err)
	}
	// Ids are never reused.
	mustOK(t, c.Add("B_2"))
	info, err := c.Get("B_2")
	mustOK(t, err)
	if info.ID != 4 {
		t.Errorf("re-added nodemap id = %d, want 4", info.ID)
	}
}

func TestAddCopiesDefaultProperties(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Modify("default", "squash_uid", "99"))
	mustOK(t, c.Modify("default", "audit_mode", "0"))
	mustOK(t, c.Add("a"))
	mustOK(t, c.Modify("default", "squash_uid", "98"))
	info, err := c.Get("a")
	mustOK(t, err)
	if info.Properties.SquashUID != 99 || info.Properties.AuditMode {
		t.Errorf("new nodemap properties = %+v, want default's at creation", info.Properties)
	}
}

func TestRanges(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Add("a"))
	mustOK(t, c.Add("b"))
	mustOK(t, c.AddRange("a", "192.168.1.[1-254]@tcp"))
	mustOK(t, c.AddRange("a", "10.0.0.0/24@tcp"))
	mustOK(t, c.AddRange("b", "192.168.2.[1-254]@tcp"))
	mustOK(t, c.AddRange("b", "[1-100]@kfi"))

	tests := []struct {
		op, name, rng string
		want          error
	}{
		{"add", "a", "192.168.1.1@tcp", nodemap.ErrOverlap},             // inside its own range
		{"add", "a", "192.168.1.[1-254]@tcp", nodemap.ErrOverlap},       // identical
		{"add", "b", "192.168.1.200@tcp", nodemap.ErrOverlap},           // another nodemap's
		{"add", "b", "192.168.0.0/16@tcp", nodemap.ErrOverlap},          // covers others
		{"add", "a", "[100-200]@kfi", nodemap.ErrOverlap},               // numeric
		{"add", "a", "*@tcp", nodemap.ErrOverlap},                       // everything
		{"add", "default", "172.16.0.1@tcp", nodemap.ErrInvalid},        // default gets none
		{"add", "nope", "172.16.0.1@tcp", nodemap.ErrNotFound},          //
		{"add", "bad-name", "172.16.0.1@tcp", nodemap.ErrInvalid},       //
		{"add", "a", "172.16.0.[1,3]@tcp", nodemap.ErrNotContiguous},    //
		{"add", "a", "172.16.0@tcp", nodemap.ErrBadRange},               //
		{"add", "nope", "172.16.0@tcp", nodemap.ErrBadRange},            // parse first
		{"del", "a", "192.168.1.[1-253]@tcp", nodemap.ErrNotFound},      // not exact
		{"del", "a", "192.168.2.[1-254]@tcp", nodemap.ErrNotFound},      // b's
		{"del", "default", "192.168.1.[1-254]@tcp", nodemap.ErrInvalid}, //
		{"del", "nope", "192.168.1.[1-254]@tcp", nodemap.ErrNotFound},   //
		{"del", "a", "junk", nodemap.ErrBadRange},                       //
	}
	for _, tt := range tests {
		before := snapshot(t, c)
		var err error
		if tt.op == "add" {
			err = c.AddRange(tt.name, tt.rng)
		} else {
			err = c.DelRange(tt.name, tt.rng)
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%sRange(%q, %q) = %v, want %v", tt.op, tt.name, tt.rng, err, tt.want)
		}
		if !bytes.Equal(before, snapshot(t, c)) {
			t.Errorf("failed %sRange(%q, %q) changed the state", tt.op, tt.name, tt.rng)
		}
	}

	err := c.AddRange("b", "192.168.1.200@tcp")
	var oe *nodemap.OverlapError
	if !errors.As(err, &oe) || oe.Holder != "a" || oe.Existing.String() != "192.168.1.[1-254]@tcp" ||
		!errors.Is(err, nodemap.ErrExists) {
		t.Errorf("overlap error = %#v", err)
	}

	// Deletion matches the block, however it is written.
	mustOK(t, c.DelRange("a", "10.0.0.[0-255]@tcp"))
	if got := c.Classify(nodemap.MustParseNID("10.0.0.7@tcp")); got != "default" {
		t.Errorf("after DelRange, Classify = %q", got)
	}
	// Range ids keep growing.
	mustOK(t, c.AddRange("a", "10.0.0.0/24@tcp"))
	info, err := c.Get("a")
	mustOK(t, err)
	var ids []uint32
	for _, ri := range info.Ranges {
		ids = append(ids, ri.ID)
	}
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 5 {
		t.Errorf("range ids of a = %v, want [1 5]", ids)
	}

	// Deleting a nodemap frees its ranges.
	mustOK(t, c.Del("b"))
	mustOK(t, c.AddRange("a", "192.168.2.[1-254]@tcp"))
}

func TestClassify(t *testing.T) {
	c := nodemap.New()
	for _, name := range []string{"lan", "lan6", "hpc", "local", "wide"} {
		mustOK(t, c.Add(name))
	}
	mustOK(t, c.AddRange("lan", "192.168.1.[1-254]@tcp"))
	mustOK(t, c.AddRange("lan", "192.168.3.0/24@tcp"))
	mustOK(t, c.AddRange("lan6", "2001:db8::/32@tcp"))
	mustOK(t, c.AddRange("hpc", "[1-60000]@kfi"))
	mustOK(t, c.AddRange("wide", "10.0.0.0/8@o2ib"))

	tests := []struct{ nid, want string }{
		{"192.168.1.1@tcp", "lan"},
		{"192.168.1.254@tcp", "lan"},
		{"192.168.1.255@tcp", "default"},
		{"192.168.1.0@tcp", "default"},
		{"192.168.2.9@tcp", "default"},
		{"192.168.3.9@tcp", "lan"},
		{"192.168.1.9@tcp1", "default"},
		{"192.168.1.9@o2ib", "default"},
		{"::ffff:192.168.1.9@tcp", "lan"},
		{"2001:db8:1::9@tcp", "lan6"},
		{"2001:db9::9@tcp", "default"},
		{"7@kfi", "hpc"},
		{"0@kfi", "default"},
		{"60001@kfi", "default"},
		{"10.200.0.1@o2ib", "wide"},
		{"10.200.0.1@tcp", "default"},
		{"0@lo", "default"},
	}
	check := func() {
		t.Helper()
		for _, tt := range tests {
			if got := c.Classify(nodemap.MustParseNID(tt.nid)); got != tt.want {
				t.Errorf("Classify(%s) = %q, want %q", tt.nid, got, tt.want)
			}
			if got, err := c.TestNID(tt.nid); err != nil || got != tt.want {
				t.Errorf("TestNID(%s) = %q, %v, want %q", tt.nid, got, err, tt.want)
			}
		}
	}
	check()
	c.Activate(true)
	check() // classification does not depend on activation

	if got := c.Classify(nodemap.NID{}); got != "default" {
		t.Errorf("Classify(zero NID) = %q", got)
	}
	if _, err := c.TestNID("junk@tcp"); !errors.Is(err, nodemap.ErrBadNID) {
		t.Errorf("TestNID(junk) error = %v", err)
	}

	// A range on lo claims 0@lo.
	mustOK(t, c.AddRange("local", "0@lo"))
	if got := c.Classify(nodemap.LoNID()); got != "local" {
		t.Errorf("Classify(0@lo) with a lo range = %q", got)
	}
}

func TestModify(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Add("a"))

	ok := []struct {
		prop, value string
		check       func(p nodemap.Properties) bool
	}{
		{"admin", "1", func(p nodemap.Properties) bool { return p.Admin }},
		{"admin", "off", func(p nodemap.Properties) bool { return !p.Admin }},
		{"admin", "YES", func(p nodemap.Properties) bool { return p.Admin }},
		{"admin", "n", func(p nodemap.Properties) bool { return !p.Admin }},
		{"trusted", "True", func(p nodemap.Properties) bool { return p.Trusted }},
		{"trusted", "F", func(p nodemap.Properties) bool { return !p.Trusted }},
		{"deny_unknown", "on", func(p nodemap.Properties) bool { return p.DenyUnknown }},
		{"audit_mode", "0", func(p nodemap.Properties) bool { return !p.AuditMode }},
		{"audit_mode", "y", func(p nodemap.Properties) bool { return p.AuditMode }},
		{"squash_uid", "1000", func(p nodemap.Properties) bool { return p.SquashUID == 1000 }},
		{"squash_gid", "4294967295", func(p nodemap.Properties) bool { return p.SquashGID == 4294967295 }},
		{"squash_projid", "0", func(p nodemap.Properties) bool { return p.SquashProjID == 0 }},
		{"map_mode", "uid_only", func(p nodemap.Properties) bool { return p.MapMode == nodemap.MapUID }},
		{"map_mode", "gid,projid", func(p nodemap.Properties) bool { return p.MapMode == nodemap.MapGID|nodemap.MapProjID }},
		{"map_mode", "both", func(p nodemap.Properties) bool { return p.MapMode == nodemap.MapBoth }},
		{"map_mode", "uid,all", func(p nodemap.Properties) bool { return p.MapMode == nodemap.MapAll }},
		{"forbid_encryption", "1", func(p nodemap.Properties) bool { return p.ForbidEncryption }},
		{"readonly_mount", "1", func(p nodemap.Properties) bool { return p.ReadonlyMount }},
		{"deny_mount", "1", func(p nodemap.Properties) bool { return p.DenyMount }},
		{"rbac", "chlg_ops,byfid_ops", func(p nodemap.Properties) bool {
			return p.RBAC == nodemap.RoleChangelog|nodemap.RoleByFID
		}},
		{"rbac", "+hsm_ops", func(p nodemap.Properties) bool {
			return p.RBAC == nodemap.RoleChangelog|nodemap.RoleByFID|nodemap.RoleHSMOps
		}},
		{"rbac", "-chlg_ops", func(p nodemap.Properties) bool { return p.RBAC == nodemap.RoleByFID|nodemap.RoleHSMOps }},
		{"rbac", "none", func(p nodemap.Properties) bool { return p.RBAC == 0 }},
		{"rbac", "all -local_admin", func(p nodemap.Properties) bool { return p.RBAC == nodemap.RolesAll&^nodemap.RoleLocalAdmin }},
		{"rbac", "ALL", func(p nodemap.Properties) bool { return p.RBAC == nodemap.RolesAll }},
		{"child_raise_privileges", "admin,chlg_ops", func(p nodemap.Properties) bool {
			return p.RaisePrivileges == nodemap.PrivAdmin|nodemap.PrivRBAC && p.RaiseRoles == nodemap.RoleChangelog
		}},
		{"child_raise_privileges", "none", func(p nodemap.Properties) bool { return p.RaisePrivileges == 0 && p.RaiseRoles == 0 }},
	}
	for _, tt := range ok {
		if err := c.Modify("a", tt.prop, tt.value); err != nil {
			t.Errorf("Modify(a, %s, %q) error: %v", tt.prop, tt.value, err)
			continue
		}
		info, err := c.Get("a")
		mustOK(t, err)
		if !tt.check(info.Properties) {
			t.Errorf("after Modify(a, %s, %q), properties = %+v", tt.prop, tt.value, info.Properties)
		}
	}

	bad := []struct {
		name, prop, value string
		want              error
		msg               string
	}{
		{"a", "bogus", "1", nodemap.ErrUnknownProperty, "invalid property: bogus"},
		{"nope", "bogus", "1", nodemap.ErrUnknownProperty, ""},
		{"a", "admin_nodemap", "1", nodemap.ErrUnknownProperty, ""},
		{"nope", "admin", "1", nodemap.ErrNotFound, "nodemap 'nope' does not exist"},
		{"bad-name", "admin", "1", nodemap.ErrInvalid, ""},
		{"a", "admin", "2", nodemap.ErrInvalid, "cannot modify nodemap 'a' to param 'admin': value '2'"},
		{"a", "admin", "", nodemap.ErrInvalid, ""},
		{"a", "admin", "yess", nodemap.ErrInvalid, ""},
		{"a", "squash_uid", "0", nodemap.ErrInvalid, "cannot squash to ID 0 on nodemap 'a'"},
		{"default", "squash_gid", "0", nodemap.ErrInvalid, "cannot squash to ID 0 on nodemap 'default'"},
		{"a", "squash_uid", "-1", nodemap.ErrInvalid, ""},
		{"a", "squash_uid", "+5", nodemap.ErrInvalid, ""},
		{"a", "squash_uid", "4294967296", nodemap.ErrInvalid, ""},
		{"a", "squash_projid", "x", nodemap.ErrInvalid, ""},
		{"a", "map_mode", "", nodemap.ErrInvalid, ""},
		{"a", "map_mode", "uid,", nodemap.ErrInvalid, ""},
		{"a", "map_mode", "ball", nodemap.ErrInvalid, ""},
		{"a", "rbac", "", nodemap.ErrInvalid, ""},
		{"a", "rbac", "chlg_ops+", nodemap.ErrInvalid, ""},
		{"a", "rbac", "bogus_ops", nodemap.ErrInvalid, ""},
		{"default", "rbac", "chlg_ops,local_admin", nodemap.ErrInvalid, ""},
		{"a", "child_raise_privileges", "admin,,trusted", nodemap.ErrInvalid, ""},
		{"a", "child_raise_privileges", "root", nodemap.ErrInvalid, ""},
		{"a", "gssonly_identification", "1", nodemap.ErrNotPermitted, ""},
		{"a", "gssonly_identification", "0", nodemap.ErrNotPermitted, ""},
		{"default", "gssonly_identification", "1", nodemap.ErrInvalid, ""},
		{"a", "gssonly_identification", "maybe", nodemap.ErrInvalid, ""},
	}
	for _, tt := range bad {
		before := snapshot(t, c)
		err := c.Modify(tt.name, tt.prop, tt.value)
		if !errors.Is(err, tt.want) {
			t.Errorf("Modify(%q, %q, %q) = %v, want %v", tt.name, tt.prop, tt.value, err, tt.want)
			continue
		}
		if tt.msg != "" && err.Error() != tt.msg {
			t.Errorf("Modify(%q, %q, %q) message = %q, want %q", tt.name, tt.prop, tt.value, err.Error(), tt.msg)
		}
		if !bytes.Equal(before, snapshot(t, c)) {
			t.Errorf("failed Modify(%q, %q, %q) changed the state", tt.name, tt.prop, tt.value)
		}
	}

	// The default nodemap may have every role including local_admin only
	// as the full set.
	mustOK(t, c.Modify("default", "rbac", "chlg_ops"))
	mustOK(t, c.Modify("default", "rbac", "all"))
}

func TestPropertyNames(t *testing.T) {
	c := nodemap.New()
	for _, p := range nodemap.PropertyNames() {
		err := c.Modify("default", p, "\x00")
		if errors.Is(err, nodemap.ErrUnknownProperty) {
			t.Errorf("PropertyNames() lists %q but Modify does not know it", p)
		}
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{
		"1": true, "0": false, "y": true, "Y": true, "n": false, "yes": true, "No": false,
		"on": true, "OFF": false, "true": true, "False": false, "t": true, "f": false,
	} {
		got, err := nodemap.ParseBool(in)
		if err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2", "yep", "o", "onn", " 1", "1 "} {
		if _, err := nodemap.ParseBool(in); err == nil {
			t.Errorf("ParseBool(%q) succeeded", in)
		}
	}
}
