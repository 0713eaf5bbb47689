package nodemap

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// NobodyID is the built-in squash uid, gid and project id (Lustre's
// NODEMAP_NOBODY_UID/GID/PROJID).
const NobodyID = 65534

// MapMode says which client IDs a nodemap maps (squashes) when it does not
// trust them: a set of MapUID, MapGID and MapProjID.
type MapMode uint8

// MapMode bits, as in Lustre's enum nodemap_mapping_modes.
const (
	MapUID    MapMode = 0x01
	MapGID    MapMode = 0x02
	MapProjID MapMode = 0x04
	// MapBoth is uid and gid, Lustre's legacy "both".
	MapBoth = MapUID | MapGID
	// MapAll is every ID type, the built-in default.
	MapAll = MapUID | MapGID | MapProjID
)

// String returns the map_mode value as Lustre prints it: "all" for MapAll,
// otherwise the set IDs joined by commas ("uid,gid").
func (m MapMode) String() string {
	if m == MapAll {
		return "all"
	}
	var names []string
	for _, x := range []struct {
		bit  MapMode
		name string
	}{{MapUID, "uid"}, {MapGID, "gid"}, {MapProjID, "projid"}} {
		if m&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

// parseMapMode parses a map_mode value: a comma-separated list of "all",
// "both", "uid", "uid_only", "gid", "gid_only", "projid", "projid_only".
// "all" anywhere in the list means MapAll. Empty elements are refused.
func parseMapMode(s string) (MapMode, bool) {
	var m MapMode
	all := false
	for p := range strings.SplitSeq(s, ",") {
		switch p {
		case "all":
			all = true
		case "both":
			m |= MapBoth
		case "uid", "uid_only":
			m |= MapUID
		case "gid", "gid_only":
			m |= MapGID
		case "projid", "projid_only":
			m |= MapProjID
		default:
			return 0, false
		}
	}
	if all {
		return MapAll, true
	}
	return m, true
}

// Roles is a set of RBAC roles (the rbac property), Lustre's enum
// nodemap_rbac_roles. The empty set prints as "none".
type Roles uint32

// The RBAC roles. RoleChangelog (chlg_ops) gates changelog reading and
// clearing; RoleByFID (byfid_ops) gates fid2path and open by FID.
const (
	RoleFilePerms          Roles = 0x00000001
	RoleDNEOps             Roles = 0x00000002
	RoleQuotaOps           Roles = 0x00000004
	RoleByFID              Roles = 0x00000008
	RoleChangelog          Roles = 0x00000010
	RoleFscryptAdmin       Roles = 0x00000020
	RoleServerUpcall       Roles = 0x00000040
	RoleIgnoreRootPrjquota Roles = 0x00000080
	RoleHSMOps             Roles = 0x00000100
	RoleLocalAdmin         Roles = 0x00000200
	RolePoolQuotaOps       Roles = 0x00000400
	RoleLQAQuotaOps        Roles = 0x00000800
	RoleProjIDSet          Roles = 0x00001000
	RoleForeignOps         Roles = 0x00002000
	RoleImmutableFlags     Roles = 0x00004000
	// RolesAll is every role, the built-in default.
	RolesAll Roles = 0x00007fff
)

// roleNames lists the roles in the order Lustre prints them
// (nodemap_rbac_names).
var roleNames = [...]struct {
	role Roles
	name string
}{
	{RoleFilePerms, "file_perms"},
	{RoleDNEOps, "dne_ops"},
	{RoleQuotaOps, "quota_ops"},
	{RoleByFID, "byfid_ops"},
	{RoleChangelog, "chlg_ops"},
	{RoleFscryptAdmin, "fscrypt_admin"},
	{RoleServerUpcall, "server_upcall"},
	{RoleIgnoreRootPrjquota, "ignore_root_prjquota"},
	{RoleHSMOps, "hsm_ops"},
	{RoleImmutableFlags, "immutable_flags"},
	{RoleLocalAdmin, "local_admin"},
	{RolePoolQuotaOps, "pool_quota_ops"},
	{RoleLQAQuotaOps, "lqa_quota_ops"},
	{RoleProjIDSet, "projid_set"},
	{RoleForeignOps, "foreign_ops"},
}

// Has reports whether every role in want is in r.
func (r Roles) Has(want Roles) bool { return r&want == want }

// String returns the roles as Lustre prints the rbac property of a
// non-default nodemap: names joined by commas in Lustre's order, or "none".
func (r Roles) String() string { return r.format(false) }

// format prints r; on the default nodemap Lustre leaves local_admin out of
// the full set.
func (r Roles) format(isDefault bool) string {
	if r == 0 {
		return "none"
	}
	var names []string
	for _, rn := range roleNames {
		if r&rn.role == 0 || (isDefault && r == RolesAll && rn.role == RoleLocalAdmin) {
			continue
		}
		names = append(names, rn.name)
	}
	return strings.Join(names, ",")
}

func roleByName(name string) (Roles, bool) {
	for _, rn := range roleNames {
		if strings.EqualFold(rn.name, name) {
			return rn.role, true
		}
	}
	return 0, false
}

// parseRoles parses an rbac value with the grammar of Lustre's cfs_str2mask:
// tokens separated by white space or commas, each a role name (any case),
// "all", "none" or "default" (= all), optionally preceded by '+' (add) or
// '-' (remove). If the first token has no operator the result starts from
// the empty set, otherwise from old.
func parseRoles(s string, old Roles) (Roles, bool) {
	type tok struct {
		op   byte
		name string
	}
	var toks []tok
	var op byte
	start := -1
	flush := func(end int) {
		if start >= 0 {
			toks = append(toks, tok{op, s[start:end]})
			start, op = -1, 0
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\v', '\f', '\r', ',':
			flush(i)
		case '+', '-':
			flush(i)
			if op != 0 {
				return 0, false // operator with nothing after it
			}
			op = c
		default:
			if start < 0 {
				start = i
			}
		}
	}
	flush(len(s))
	if op != 0 || len(toks) == 0 {
		return 0, false
	}
	r := old
	if toks[0].op == 0 {
		r = 0
	}
	for _, t := range toks {
		var set Roles
		switch {
		case strings.EqualFold(t.name, "all"), strings.EqualFold(t.name, "default"):
			set = RolesAll
		case strings.EqualFold(t.name, "none"):
			if t.op != '-' {
				r = 0
			}
			continue
		default:
			var ok bool
			if set, ok = roleByName(t.name); !ok {
				return 0, false
			}
		}
		if t.op == '-' {
			r &^= set
		} else {
			r |= set
		}
	}
	return r, true
}

// Privileges is the set of properties a nodemap lets its dynamic children
// raise (child_raise_privileges), Lustre's enum nodemap_raise_privs.
// PrivRBAC means "the roles in Properties.RaiseRoles".
type Privileges uint32

// The raisable privileges.
const (
	PrivChildRaise       Privileges = 0x001
	PrivAdmin            Privileges = 0x002
	PrivTrusted          Privileges = 0x004
	PrivDenyUnknown      Privileges = 0x008
	PrivReadonlyMount    Privileges = 0x010
	PrivRBAC             Privileges = 0x020
	PrivForbidEncryption Privileges = 0x040
	PrivCaps             Privileges = 0x080
	PrivDenyMount        Privileges = 0x100
	// PrivAll is every privilege.
	PrivAll Privileges = 0x1ff
)

// privNames lists the named privileges in Lustre's order
// (nodemap_priv_names); PrivRBAC has no name of its own.
var privNames = [...]struct {
	priv Privileges
	name string
}{
	{PrivChildRaise, "child_raise_privs"},
	{PrivAdmin, "admin"},
	{PrivTrusted, "trusted"},
	{PrivDenyUnknown, "deny_unknown"},
	{PrivReadonlyMount, "readonly_mount"},
	{PrivForbidEncryption, "forbid_encryption"},
	{PrivCaps, "caps"},
	{PrivDenyMount, "deny_mount"},
}

// formatRaise prints child_raise_privileges as Lustre does: the privilege
// names (or "none"), then, if PrivRBAC is set, the raisable roles.
func formatRaise(p Privileges, roles Roles) string {
	var names []string
	switch p {
	case 0:
		return "none"
	case PrivAll:
		for _, pn := range privNames {
			names = append(names, pn.name)
		}
	default:
		for _, pn := range privNames {
			if p&pn.priv != 0 {
				names = append(names, pn.name)
			}
		}
	}
	if p&PrivRBAC != 0 {
		for _, rn := range roleNames {
			if roles&rn.role != 0 {
				names = append(names, rn.name)
			}
		}
	}
	return strings.Join(names, ",")
}

// parseRaise parses a child_raise_privileges value: "all", "none", or a
// comma-separated list of privilege and role names.
func parseRaise(s string) (Privileges, Roles, bool) {
	switch s {
	case "all":
		return PrivAll, RolesAll, true
	case "none":
		return 0, 0, true
	}
	var p Privileges
	var roles Roles
next:
	for name := range strings.SplitSeq(s, ",") {
		for _, pn := range privNames {
			if name == pn.name {
				p |= pn.priv
				continue next
			}
		}
		for _, rn := range roleNames {
			if name == rn.name {
				p |= PrivRBAC
				roles |= rn.role
				continue next
			}
		}
		return 0, 0, false
	}
	return p, roles, true
}

// ParseBool parses a boolean as lctl nodemap_activate and nodemap_modify
// accept it: 1/0, y/n, yes/no, on/off, true/false, t/f, in any case. (The
// kernel's kstrtobool looks only at the first characters; this is stricter
// and refuses anything else.) The error matches ErrInvalid.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "y", "yes", "on", "true", "t":
		return true, nil
	case "0", "n", "no", "off", "false", "f":
		return false, nil
	}
	return false, fmt.Errorf("nodemap: invalid boolean %q: %w", s, ErrInvalid)
}

// Properties are a nodemap's settings. The zero value is not the default;
// use DefaultProperties.
type Properties struct {
	// Admin (admin, get_param admin_nodemap): root on these clients
	// stays root instead of being squashed.
	Admin bool
	// Trusted (trusted, get_param trusted_nodemap): client uids and gids
	// other than 0 are used as they are.
	Trusted bool
	// SquashUID, SquashGID, SquashProjID are the IDs squashed IDs become.
	// SquashUID and SquashGID are never 0.
	SquashUID, SquashGID, SquashProjID uint32
	// DenyUnknown: requests whose uid would be squashed are refused.
	DenyUnknown bool
	// AuditMode: requests from these clients produce changelog records.
	AuditMode bool
	// MapMode says which ID types untrusted clients have mapped; never 0.
	MapMode MapMode
	// ForbidEncryption, ReadonlyMount and DenyMount are kept and shown;
	// acting on them is up to the server, this package does not.
	ForbidEncryption bool
	ReadonlyMount    bool
	DenyMount        bool
	// RBAC is the set of roles clients of this nodemap have.
	RBAC Roles
	// RaisePrivileges and RaiseRoles are child_raise_privileges.
	RaisePrivileges Privileges
	RaiseRoles      Roles
	// GSSOnlyIdentification is always false: it needs GSS keys.
	GSSOnlyIdentification bool
}

// DefaultProperties returns the built-in defaults the default nodemap
// starts with (Lustre's nodemap_inherit_properties without a source):
// admin 0, trusted 0, squash IDs 65534, deny_unknown 0, audit_mode 1,
// map_mode all, forbid_encryption 0, readonly_mount 0, deny_mount 0,
// rbac all, child_raise_privileges none, gssonly_identification 0.
func DefaultProperties() Properties {
	return Properties{
		SquashUID:    NobodyID,
		SquashGID:    NobodyID,
		SquashProjID: NobodyID,
		AuditMode:    true,
		MapMode:      MapAll,
		RBAC:         RolesAll,
	}
}

// validate reports what is wrong with p, or "" if it is a state Modify can
// produce.
func (p Properties) validate(isDefault bool) string {
	switch {
	case p.SquashUID == 0 || p.SquashGID == 0:
		return "squash uid or gid 0"
	case p.MapMode == 0 || p.MapMode&^MapAll != 0:
		return "bad map_mode"
	case p.RBAC&^RolesAll != 0 || p.RaiseRoles&^RolesAll != 0:
		return "unknown rbac role"
	case isDefault && p.RBAC != RolesAll && p.RBAC&RoleLocalAdmin != 0:
		return "local_admin on the default nodemap"
	case p.RaisePrivileges&^PrivAll != 0:
		return "unknown privilege"
	case p.GSSOnlyIdentification:
		return "gssonly_identification set"
	}
	return ""
}

// propertyNames are the property names of nodemap_modify, in the order
// lctl checks them. Their get_param names are the same except admin
// (admin_nodemap) and trusted (trusted_nodemap).
var propertyNames = [...]string{
	"admin", "trusted", "deny_unknown", "squash_uid", "squash_gid", "squash_projid",
	"map_mode", "audit_mode", "forbid_encryption", "child_raise_privileges",
	"readonly_mount", "rbac", "deny_mount", "gssonly_identification",
}

// PropertyNames returns the property names Modify accepts, in the order
// lctl nodemap_modify checks them.
func PropertyNames() []string {
	return slices.Clone(propertyNames[:])
}

// set returns p with property prop (a nodemap_modify name) set from value,
// or the error that refuses the change. nodemap names the nodemap for
// messages; isDefault says whether it is the default nodemap.
func (p Properties) set(nodemap string, isDefault bool, prop, value string) (Properties, *PropertyError) {
	bad := &PropertyError{Nodemap: nodemap, Property: prop, Value: value, Err: ErrInvalid}
	boolField := map[string]*bool{
		"admin":             &p.Admin,
		"trusted":           &p.Trusted,
		"deny_unknown":      &p.DenyUnknown,
		"audit_mode":        &p.AuditMode,
		"forbid_encryption": &p.ForbidEncryption,
		"readonly_mount":    &p.ReadonlyMount,
		"deny_mount":        &p.DenyMount,
	}
	if f, ok := boolField[prop]; ok {
		v, err := ParseBool(value)
		if err != nil {
			return p, bad
		}
		*f = v
		return p, nil
	}
	switch prop {
	case "squash_uid", "squash_gid", "squash_projid":
		if !allDigits(value) {
			return p, bad
		}
		v, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return p, bad
		}
		switch prop {
		case "squash_uid", "squash_gid":
			if v == 0 {
				bad.Reason = "cannot squash to ID 0 on nodemap '" + nodemap + "'"
				return p, bad
			}
			if prop == "squash_uid" {
				p.SquashUID = uint32(v)
			} else {
				p.SquashGID = uint32(v)
			}
		default:
			p.SquashProjID = uint32(v)
		}
	case "map_mode":
		m, ok := parseMapMode(value)
		if !ok {
			return p, bad
		}
		p.MapMode = m
	case "rbac":
		r, ok := parseRoles(value, p.RBAC)
		if !ok || (isDefault && r != RolesAll && r&RoleLocalAdmin != 0) {
			return p, bad
		}
		p.RBAC = r
	case "child_raise_privileges":
		priv, roles, ok := parseRaise(value)
		if !ok {
			return p, bad
		}
		p.RaisePrivileges, p.RaiseRoles = priv, roles
	case "gssonly_identification":
		if _, err := ParseBool(value); err != nil {
			return p, bad
		}
		if !isDefault {
			bad.Err = ErrNotPermitted
			bad.Reason = "cannot set gssonly_identification on nodemap '" + nodemap +
				"': GSS identification is not supported"
		}
		return p, bad
	default:
		return p, &PropertyError{Nodemap: nodemap, Property: prop, Value: value, Err: ErrUnknownProperty}
	}
	return p, nil
}

// params returns p's get_param values by get_param name.
func (p Properties) params(isDefault bool) map[string]string {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	m := map[string]string{
		"admin_nodemap":          b(p.Admin),
		"trusted_nodemap":        b(p.Trusted),
		"squash_uid":             u(p.SquashUID),
		"squash_gid":             u(p.SquashGID),
		"squash_projid":          u(p.SquashProjID),
		"deny_unknown":           b(p.DenyUnknown),
		"audit_mode":             b(p.AuditMode),
		"map_mode":               p.MapMode.String(),
		"forbid_encryption":      b(p.ForbidEncryption),
		"readonly_mount":         b(p.ReadonlyMount),
		"deny_mount":             b(p.DenyMount),
		"rbac":                   p.RBAC.format(isDefault),
		"child_raise_privileges": formatRaise(p.RaisePrivileges, p.RaiseRoles),
	}
	if !isDefault {
		m["gssonly_identification"] = b(p.GSSOnlyIdentification)
	}
	return m
}
