package nodemap_test

import (
	"testing"

	"github.com/fidlog/fidlog/nodemap"
)

func TestMap(t *testing.T) {
	const (
		clientNID = "192.168.1.10@tcp"
		otherNID  = "172.16.0.1@tcp"
	)
	type props map[string]string
	tests := []struct {
		name     string
		active   bool
		props    props // applied to nodemap "c", which holds clientNID
		nid      string
		uid, gid uint32
		want     nodemap.Identity
	}{
		{
			name: "inactive root passes", nid: clientNID, uid: 0, gid: 0,
			props: props{"admin": "0", "audit_mode": "0", "deny_unknown": "1", "rbac": "none"},
			want:  nodemap.Identity{Nodemap: "c", UID: 0, GID: 0, Admin: true, Audit: true, Roles: nodemap.RolesAll},
		},
		{
			name: "inactive user passes", nid: clientNID, uid: 500, gid: 600,
			props: props{"trusted": "0", "audit_mode": "0"},
			want:  nodemap.Identity{Nodemap: "c", UID: 500, GID: 600, Audit: true, Roles: nodemap.RolesAll},
		},
		{
			name: "root squashed without admin", active: true, nid: clientNID, uid: 0, gid: 0,
			props: props{"trusted": "1"},
			want: nodemap.Identity{Nodemap: "c", UID: 65534, GID: 65534, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "root squashed to custom ids", active: true, nid: clientNID, uid: 0, gid: 0,
			props: props{"trusted": "1", "squash_uid": "99", "squash_gid": "98"},
			want: nodemap.Identity{Nodemap: "c", UID: 99, GID: 98, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "admin keeps root", active: true, nid: clientNID, uid: 0, gid: 0,
			props: props{"admin": "1", "trusted": "1"},
			want:  nodemap.Identity{Nodemap: "c", UID: 0, GID: 0, Admin: true, Audit: true, Roles: nodemap.RolesAll},
		},
		{
			name: "admin untrusted keeps root, squashes other gid", active: true, nid: clientNID, uid: 0, gid: 20,
			props: props{"admin": "1"},
			want: nodemap.Identity{Nodemap: "c", UID: 0, GID: 65534, Squashed: true, Admin: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "trusted user passes", active: true, nid: clientNID, uid: 500, gid: 600,
			props: props{"trusted": "1"},
			want:  nodemap.Identity{Nodemap: "c", UID: 500, GID: 600, Audit: true, Roles: nodemap.RolesAll},
		},
		{
			name: "untrusted user squashed", active: true, nid: clientNID, uid: 500, gid: 600,
			props: props{},
			want: nodemap.Identity{Nodemap: "c", UID: 65534, GID: 65534, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "map_mode gid only leaves uid", active: true, nid: clientNID, uid: 500, gid: 600,
			props: props{"map_mode": "gid_only"},
			want: nodemap.Identity{Nodemap: "c", UID: 500, GID: 65534, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "map_mode does not spare root", active: true, nid: clientNID, uid: 0, gid: 0,
			props: props{"map_mode": "projid"},
			want: nodemap.Identity{Nodemap: "c", UID: 65534, GID: 65534, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "deny_unknown denies squashed uid", active: true, nid: clientNID, uid: 500, gid: 600,
			props: props{"deny_unknown": "1"},
			want: nodemap.Identity{Nodemap: "c", UID: 65534, GID: 65534, Squashed: true, Denied: true,
				Audit: true, Roles: nodemap.RolesAll},
		},
		{
			name: "deny_unknown denies squashed root", active: true, nid: clientNID, uid: 0, gid: 0,
			props: props{"deny_unknown": "1", "trusted": "1"},
			want: nodemap.Identity{Nodemap: "c", UID: 65534, GID: 65534, Squashed: true, Denied: true,
				Audit: true, Roles: nodemap.RolesAll},
		},
		{
			name: "deny_unknown looks at the uid only", active: true, nid: clientNID, uid: 500, gid: 600,
			props: props{"deny_unknown": "1", "map_mode": "gid"},
			want: nodemap.Identity{Nodemap: "c", UID: 500, GID: 65534, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "deny_unknown spares trusted", active: true, nid: clientNID, uid: 500, gid: 600,
			props: props{"deny_unknown": "1", "trusted": "1"},
			want:  nodemap.Identity{Nodemap: "c", UID: 500, GID: 600, Audit: true, Roles: nodemap.RolesAll},
		},
		{
			name: "audit_mode 0", active: true, nid: clientNID, uid: 0, gid: 0,
			props: props{"audit_mode": "0", "admin": "1", "trusted": "1"},
			want:  nodemap.Identity{Nodemap: "c", UID: 0, GID: 0, Admin: true, Roles: nodemap.RolesAll},
		},
		{
			name: "rbac", active: true, nid: clientNID, uid: 0, gid: 0,
			props: props{"admin": "1", "trusted": "1", "rbac": "byfid_ops"},
			want:  nodemap.Identity{Nodemap: "c", UID: 0, GID: 0, Admin: true, Audit: true, Roles: nodemap.RoleByFID},
		},
		{
			name: "other clients use default", active: true, nid: otherNID, uid: 0, gid: 0,
			props: props{"admin": "1", "trusted": "1", "audit_mode": "0"},
			want: nodemap.Identity{Nodemap: "default", UID: 65534, GID: 65534, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
		{
			name: "local socket uses default", active: true, nid: "0@lo", uid: 1000, gid: 1000,
			props: props{"trusted": "1"},
			want: nodemap.Identity{Nodemap: "default", UID: 65534, GID: 65534, Squashed: true, Audit: true,
				Roles: nodemap.RolesAll},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := nodemap.New()
			mustOK(t, c.Add("c"))
			mustOK(t, c.AddRange("c", "192.168.1.[1-254]@tcp"))
			for p, v := range tt.props {
				mustOK(t, c.Modify("c", p, v))
			}
			c.Activate(tt.active)
			got := c.Map(nodemap.MustParseNID(tt.nid), tt.uid, tt.gid)
			if got != tt.want {
				t.Errorf("Map(%s, %d, %d)\n got %+v\nwant %+v", tt.nid, tt.uid, tt.gid, got, tt.want)
			}
		})
	}
}

func TestMapDefaultNodemap(t *testing.T) {
	c := nodemap.New()
	mustOK(t, c.Modify("default", "admin", "1"))
	mustOK(t, c.Modify("default", "trusted", "1"))
	mustOK(t, c.Modify("default", "audit_mode", "0"))
	c.Activate(true)
	got := c.Map(nodemap.LoNID(), 0, 0)
	want := nodemap.Identity{Nodemap: "default", Admin: true, Roles: nodemap.RolesAll}
	if got != want {
		t.Errorf("Map(0@lo, 0, 0) = %+v, want %+v", got, want)
	}
	c.Activate(false)
	if got := c.Map(nodemap.LoNID(), 0, 0); !got.Audit {
		t.Errorf("inactive Map is not audited: %+v", got)
	}
}
