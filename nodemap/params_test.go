package nodemap_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/nodemap"
)

func paramMap(c *nodemap.Config) map[string]string {
	m := map[string]string{}
	for _, p := range c.Params() {
		m[p.Name] = p.Value
	}
	return m
}

func TestParamsDefault(t *testing.T) {
	c := nodemap.New()
	got := c.Params()
	want := []nodemap.Param{
		{Name: "nodemap.active", Value: "0"},
		{Name: "nodemap.default.admin_nodemap", Value: "0"},
		{Name: "nodemap.default.audit_mode", Value: "1"},
		{Name: "nodemap.default.child_raise_privileges", Value: "none"},
		{Name: "nodemap.default.deny_mount", Value: "0"},
		{Name: "nodemap.default.deny_unknown", Value: "0"},
		{Name: "nodemap.default.forbid_encryption", Value: "0"},
		{Name: "nodemap.default.id", Value: "0"},
		{Name: "nodemap.default.map_mode", Value: "all"},
		{Name: "nodemap.default.rbac", Value: "file_perms,dne_ops,quota_ops,byfid_ops,chlg_ops," +
			"fscrypt_admin,server_upcall,ignore_root_prjquota,hsm_ops,immutable_flags," +
			"pool_quota_ops,lqa_quota_ops,projid_set,foreign_ops"},
		{Name: "nodemap.default.readonly_mount", Value: "0"},
		{Name: "nodemap.default.squash_gid", Value: "65534"},
		{Name: "nodemap.default.squash_projid", Value: "65534"},
		{Name: "nodemap.default.squash_uid", Value: "65534"},
		{Name: "nodemap.default.trusted_nodemap", Value: "0"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Params() =\n%v\nwant\n%v", got, want)
	}
}

func TestParams(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Add("a_z"))
	mustOK(t, c.Add("b"))
	c.Activate(true)
	mustOK(t, c.AddRange("a_z", "192.168.1.[1-254]@tcp"))
	mustOK(t, c.AddRange("b", "10.0.0.0/24@o2ib1"))
	mustOK(t, c.AddRange("a_z", "[1-60000]@kfi"))
	mustOK(t, c.Modify("a_z", "admin", "1"))
	mustOK(t, c.Modify("a_z", "trusted", "yes"))
	mustOK(t, c.Modify("a_z", "audit_mode", "0"))
	mustOK(t, c.Modify("a_z", "squash_uid", "1000"))
	mustOK(t, c.Modify("a_z", "squash_projid", "7"))
	mustOK(t, c.Modify("a_z", "map_mode", "projid,uid"))
	mustOK(t, c.Modify("a_z", "rbac", "chlg_ops,byfid_ops"))
	mustOK(t, c.Modify("a_z", "child_raise_privileges", "trusted,admin,hsm_ops"))

	m := paramMap(c)
	want := map[string]string{
		"nodemap.active":                     "1",
		"nodemap.a_z.id":                     "1",
		"nodemap.b.id":                       "2",
		"nodemap.a_z.admin_nodemap":          "1",
		"nodemap.a_z.trusted_nodemap":        "1",
		"nodemap.a_z.audit_mode":             "0",
		"nodemap.a_z.squash_uid":             "1000",
		"nodemap.a_z.squash_gid":             "65534",
		"nodemap.a_z.squash_projid":          "7",
		"nodemap.a_z.map_mode":               "uid,projid",
		"nodemap.a_z.rbac":                   "byfid_ops,chlg_ops",
		"nodemap.a_z.child_raise_privileges": "admin,trusted,hsm_ops",
		"nodemap.a_z.gssonly_identification": "0",
		"nodemap.a_z.ranges": "[\n" +
			" { id: 3, start_nid: 1@kfi, end_nid: 60000@kfi },\n" +
			" { id: 1, start_nid: 192.168.1.1@tcp, end_nid: 192.168.1.254@tcp }\n" +
			"]",
		"nodemap.b.ranges": "[\n { id: 2, start_nid: 10.0.0.0@o2ib1, end_nid: 10.0.0.255@o2ib1 }\n]",
		"nodemap.b.rbac": "file_perms,dne_ops,quota_ops,byfid_ops,chlg_ops," +
			"fscrypt_admin,server_upcall,ignore_root_prjquota,hsm_ops,immutable_flags," +
			"local_admin,pool_quota_ops,lqa_quota_ops,projid_set,foreign_ops",
		"nodemap.b.audit_mode": "1",
	}
	for name, v := range want {
		if m[name] != v {
			t.Errorf("%s = %q, want %q", name, m[name], v)
		}
	}
	if _, ok := m["nodemap.default.ranges"]; ok {
		t.Errorf("default nodemap has a ranges parameter")
	}

	mustOK(t, c.DelRange("b", "10.0.0.0/24@o2ib1"))
	if got := paramMap(c)["nodemap.b.ranges"]; got != "[]" {
		t.Errorf("empty ranges = %q, want []", got)
	}

	names := make([]string, 0)
	for _, p := range c.Params() {
		names = append(names, p.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("Params() not sorted by name")
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "nodemap.") {
			t.Errorf("parameter %q outside nodemap.", n)
		}
	}
}

func TestParamsFormats(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Add("x"))
	cases := []struct{ prop, value, param, want string }{
		{"map_mode", "both", "map_mode", "uid,gid"},
		{"map_mode", "gid", "map_mode", "gid"},
		{"map_mode", "uid,gid,projid", "map_mode", "all"},
		{"rbac", "none", "rbac", "none"},
		{"rbac", "all", "rbac", "file_perms,dne_ops,quota_ops,byfid_ops,chlg_ops,fscrypt_admin," +
			"server_upcall,ignore_root_prjquota,hsm_ops,immutable_flags,local_admin,pool_quota_ops," +
			"lqa_quota_ops,projid_set,foreign_ops"},
		{"child_raise_privileges", "all", "child_raise_privileges",
			"child_raise_privs,admin,trusted,deny_unknown,readonly_mount,forbid_encryption,caps,deny_mount," +
				"file_perms,dne_ops,quota_ops,byfid_ops,chlg_ops,fscrypt_admin,server_upcall," +
				"ignore_root_prjquota,hsm_ops,immutable_flags,local_admin,pool_quota_ops,lqa_quota_ops," +
				"projid_set,foreign_ops"},
		{"child_raise_privileges", "chlg_ops", "child_raise_privileges", "chlg_ops"},
		{"squash_gid", "4294967295", "squash_gid", "4294967295"},
		{"deny_mount", "on", "deny_mount", "1"},
	}
	for _, tt := range cases {
		mustOK(t, c.Modify("x", tt.prop, tt.value))
		if got := paramMap(c)["nodemap.x."+tt.param]; got != tt.want {
			t.Errorf("after %s=%s, %s = %q, want %q", tt.prop, tt.value, tt.param, got, tt.want)
		}
	}
}
