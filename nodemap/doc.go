// Package nodemap is the MDT's view of Lustre nodemaps: named groups of
// clients identified by NID ranges, each with properties that decide how a
// client's identity is mapped (root squash, trusted IDs, deny_unknown),
// which RBAC roles it has, and whether its requests are audited in the
// changelog (audit_mode).
//
// NIDs ("192.168.1.5@tcp", "0@lo") are NID values; NID ranges
// ("192.168.1.[1-254]@tcp", "10.0.0.0/8@tcp", "[1-60000]@kfi") are Range
// values parsed with ParseRange. A Config holds the whole state and
// implements lctl's nodemap_activate, nodemap_add, nodemap_del,
// nodemap_add_range, nodemap_del_range, nodemap_modify and
// nodemap_test_nid, the get_param view (Params), per-request mapping (Map),
// and persistence (MarshalBinary, UnmarshalBinary).
//
// The package imports only the standard library.
//
// # Invariants
//
//   - A nodemap named "default" always exists, has id 0, never has ranges
//     and cannot be deleted. A client no range claims belongs to it; so
//     does 0@lo unless a range on lo claims it.
//   - Nodemap names are 1 to 16 ASCII letters, digits or '_'. Nodemap ids
//     (1, 2, ...) and range ids (1, 2, ...) grow with each Add and
//     AddRange and are never reused, also across MarshalBinary and
//     UnmarshalBinary.
//   - The ranges of all nodemaps together are pairwise disjoint (AddRange
//     refuses an overlap with ErrOverlap), so every NID belongs to exactly
//     one nodemap and Classify does not depend on the order ranges were
//     added.
//   - A Range is one contiguous block of NIDs on one network and address
//     family. ParseRange(r.String()) == r and ParseNID(n.String()) == n.
//     IPv4-mapped IPv6 addresses are held as IPv4, so a client has one NID
//     however its address reached us.
//   - A new nodemap starts with a copy of the default nodemap's properties
//     at the time of Add, and no ranges.
//   - Every mutating method either succeeds completely or returns an error
//     and changes nothing. Errors carry the offending value and match one
//     of the package's sentinels with errors.Is (see ErrInvalid for the
//     errno each maps to).
//   - While the Config is inactive, Map changes nothing: identities pass
//     through, every request is audited and has every role. Classification
//     works either way.
//   - Properties always satisfy what Modify enforces: squash uid and gid
//     are not 0, map_mode is not empty, roles and privileges are known
//     ones, the default nodemap never has local_admin without the full role
//     set, gssonly_identification is 0. UnmarshalBinary refuses states that
//     break any invariant above.
//
// # Differences from Lustre
//
// There are no ID maps, offsets, filesets, SELinux policies, capabilities,
// ban lists or dynamic nodemaps; on a nodemap with trusted=0 every ID is
// therefore squashed (Lustre squashes IDs that have no idmap entry).
// gssonly_identification cannot be set (it needs GSS keys). CIDR ranges are
// held and printed as their first and last NID, where Lustre keeps a base
// NID and a netmask; overlap between any two ranges is refused, where
// Lustre only refuses an identical netmask range. Boolean values must be
// whole words (Lustre's kstrtobool looks at the first characters only).
//
// # Locking
//
// Config has one lock, Config.mu, a sync.RWMutex. It is a leaf: no other
// lock is taken and no callback runs while it is held. Map, Classify,
// Params, Get, List and MarshalBinary take it shared; the mutating methods
// take it exclusively. Classification is a binary search over the sorted
// ranges, so Map costs O(log ranges) per request.
package nodemap
