package nodemap

// Identity is what the server makes of a request's credentials after
// nodemap mapping.
type Identity struct {
	// Nodemap is the name of the client's nodemap (Classify), whether or
	// not nodemaps are active.
	Nodemap string
	// UID and GID are the IDs to act as: the client's, or squashed.
	UID, GID uint32
	// Squashed reports that UID or GID was replaced by a squash ID.
	Squashed bool
	// Admin reports that the request runs as root: the client sent uid 0
	// and it was not squashed.
	Admin bool
	// Denied reports that the request must be refused (EACCES): its
	// nodemap has deny_unknown=1 and its uid was squashed.
	Denied bool
	// Audit reports whether the request's operations produce changelog
	// records (the nodemap's audit_mode; always true while inactive).
	Audit bool
	// Roles are the RBAC roles the request has (the nodemap's rbac;
	// RolesAll while inactive).
	Roles Roles
}

// Map classifies nid and maps uid and gid as Lustre's nodemap_map_id does
// for a request from that client.
//
// While the Config is inactive, everything passes through: the IDs are
// unchanged, Audit is true, Roles is RolesAll and Admin is uid == 0.
//
// While active, the client's nodemap decides, for uid and gid separately:
//   - ID 0 (root) stays 0 if the nodemap has admin=1, else becomes the
//     squash ID;
//   - another ID whose type map_mode leaves out stays as it is;
//   - another ID stays as it is if the nodemap has trusted=1; otherwise it
//     is looked up in the nodemap's ID maps and, not being found there, is
//     squashed. This implementation has no ID maps (lctl
//     nodemap_add_idmap), so on a nodemap with trusted=0 every ID is
//     squashed, which is what Lustre does for IDs without an idmap entry.
//
// Denied is deny_unknown=1 with the uid squashed (Lustre checks the uid
// only); Audit is audit_mode; Roles is rbac.
func (c *Config) Map(nid NID, uid, gid uint32) Identity {
	c.init()
	c.mu.RLock()
	defer c.mu.RUnlock()
	nm := c.classifyLocked(nid)
	id := Identity{Nodemap: nm.name, UID: uid, GID: gid, Audit: true, Roles: RolesAll}
	if !c.mu.active {
		id.Admin = uid == 0
		return id
	}
	p := &nm.props
	var uidSquashed, gidSquashed bool
	id.UID, uidSquashed = mapID(p, uid, MapUID, p.SquashUID)
	id.GID, gidSquashed = mapID(p, gid, MapGID, p.SquashGID)
	id.Squashed = uidSquashed || gidSquashed
	id.Admin = uid == 0 && !uidSquashed
	id.Denied = p.DenyUnknown && uidSquashed
	id.Audit = p.AuditMode
	id.Roles = p.RBAC
	return id
}

// mapID maps one client ID of type kind, returning the ID to use and
// whether it was squashed.
func mapID(p *Properties, id uint32, kind MapMode, squash uint32) (uint32, bool) {
	switch {
	case id == 0 && p.Admin:
		return 0, false
	case id == 0:
		return squash, true
	case p.MapMode&kind == 0, p.Trusted:
		return id, false
	default:
		return squash, true
	}
}
