package nodemap

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Param is one lctl get_param parameter: a dotted name such as
// "nodemap.default.audit_mode" and its value as Lustre prints it, without
// the trailing newline.
type Param struct {
	Name  string
	Value string
}

// Params returns the nodemap parameter tree for lctl get_param, sorted by
// name (as get_param's glob lists it): "nodemap.active" and, for each
// nodemap, "nodemap.NAME.P" for P in admin_nodemap, audit_mode,
// child_raise_privileges, deny_mount, deny_unknown, forbid_encryption, id,
// map_mode, rbac, readonly_mount, squash_gid, squash_projid, squash_uid,
// trusted_nodemap, and, except on the default nodemap (which Lustre gives
// neither), gssonly_identification and ranges.
//
// Values are formatted as Lustre's nodemap_lproc.c prints them: booleans
// as 0 or 1, IDs in decimal, map_mode as "all" or "uid,gid,...", rbac as
// role names or "none" (the default nodemap's full set omits local_admin),
// and ranges as
//
//	[
//	 { id: 2, start_nid: 10.0.0.0@tcp, end_nid: 10.0.0.255@tcp },
//	 { id: 1, start_nid: 192.168.1.1@tcp, end_nid: 192.168.1.254@tcp }
//	]
//
// with the most recently added range first (Lustre adds to the head of the
// list), or "[]" when there are none. Parameters Lustre has but this
// implementation does not model (exports, idmap, fileset, sepol, offset,
// banlist, enable_cap_mask, parent) are left out.
func (c *Config) Params() []Param {
	c.init()
	c.mu.RLock()
	defer c.mu.RUnlock()
	active := "0"
	if c.mu.active {
		active = "1"
	}
	out := []Param{{Name: "nodemap.active", Value: active}}
	for _, nm := range c.mu.byName {
		isDefault := nm.name == DefaultName
		prefix := "nodemap." + nm.name + "."
		for name, value := range nm.props.params(isDefault) {
			out = append(out, Param{Name: prefix + name, Value: value})
		}
		out = append(out, Param{Name: prefix + "id", Value: strconv.FormatUint(uint64(nm.id), 10)})
		if !isDefault {
			out = append(out, Param{Name: prefix + "ranges", Value: formatRanges(nm.ranges)})
		}
	}
	slices.SortFunc(out, func(a, b Param) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// formatRanges prints ranges as nodemap_ranges_show does, newest first.
func formatRanges(ranges []RangeInfo) string {
	if len(ranges) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteString("[")
	for i := len(ranges) - 1; i >= 0; i-- {
		if i != len(ranges)-1 {
			b.WriteString(",")
		}
		ri := ranges[i]
		b.WriteString("\n { id: " + strconv.FormatUint(uint64(ri.ID), 10) +
			", start_nid: " + ri.Range.Start().String() +
			", end_nid: " + ri.Range.End().String() + " }")
	}
	b.WriteString("\n]")
	return b.String()
}
