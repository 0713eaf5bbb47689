// Package api serves one MDT over gRPC: the changelog, namespace, params
// and nodemap services of proto/, plus grpc.health.v1 and server
// reflection. It converts between the wire types and the domain types
// (xxxFromPB/xxxToPB), maps every error to a status in one function
// (toStatus), derives each caller's identity and enforces Lustre's
// authorization rules. Package api/client is the matching Go client.
//
// # Identity and authorization
//
// Nobody is who they say: identity comes from the transport.
//
//   - Unix socket (Serve on a unix listener): the kernel says who the peer
//     is. Transport credentials read SO_PEERCRED and SO_PEERGROUPS when the
//     connection is accepted (PeerCredInfo, from peer.FromContext). A peer
//     running as root or as the server's own uid is the local
//     administrator: it acts as the identity it asserts in the lustre-uid,
//     lustre-gid and lustre-groups metadata (uid 0, gid 0 if none; a mount
//     daemon forwards its callers this way). Any other peer acts as its own
//     uid, gid and groups; asserting another uid or gid, or a group it is
//     not in, is PERMISSION_DENIED (EPERM) and the request does nothing.
//     Socket credentials are mdt.Cred.Local: never mapped by nodemaps, NID
//     0@lo.
//   - TCP: only with mutual TLS (Options.TLS must require and verify client
//     certificates) or Options.Insecure; Serve refuses a TCP listener with
//     neither (ErrNoTransportSecurity). An authenticated node asserts uids
//     as a Lustre client kernel does (missing: 0); its NID <ip>@tcp (IPv6
//     included) selects the nodemap that squashes, maps and filters.
//
// Malformed metadata is INVALID_ARGUMENT naming the key and value.
//
// The changelog RPCs (read, follow, clear, register, deregister, users,
// state) need an unsquashed root with the rbac role chlg_ops; SetParam and
// every nodemap change need root with local_admin (sanity-sec 35 and 64e);
// Fid2Path needs byfid_ops, for any uid.
// authorize decides from the nodemap state directly (one NID
// classification, no allocation, flat in the number of nodemaps):
// Identify must report Admin, mapped uid 0 and the role. Root on the socket
// always qualifies; a local non-root user never does; a TCP node does while
// nodemaps are inactive, else from an admin=1 nodemap whose rbac holds the
// role. Everyone else gets PERMISSION_DENIED (EPERM) and nothing changes.
// Reads of parameters and nodemaps, and namespace operations, are governed
// by the MDT itself (squashing, permissions).
//
// # Errors
//
// Every error status carries one errdetails.ErrorInfo: domain "fidlog",
// reason the errno name ("ENOENT", ...) or "USER_EVICTED", metadata
// "errno" (decimal), and for an eviction "user", "gc", "index" and
// "unprocessed". The code follows the errno as proto/README.md lists; an
// error nothing recognises is INTERNAL/EIO (and is logged), never UNKNOWN.
// The message is the domain error's text, which names the bad value.
//
// # Streaming invariants
//
//   - A Read stream sends records in index order, never above the durable
//     index it reports in the same message, in batches of at most
//     max_batch_records (default Options.BatchRecords) and about
//     Options.BatchBytes of stored records; never one message per record
//     unless only one record is available.
//   - Records are read from Pebble (store.Log.Scan) by the stream's own
//     goroutine; no iterator is open while a message is sent and writers
//     never wait for a stream: a slow consumer only slows itself. At most
//     two built messages wait per stream.
//   - A follow stream waits with store.Log.WaitDurable (woken by
//     commits, no polling), may linger up to Options.FollowLinger (off by default) for
//     a fuller batch, sends a heartbeat after HeartbeatInterval of
//     silence, ends with FAILED_PRECONDITION/USER_EVICTED when its consumer
//     is evicted, with CANCELLED when the client goes away and with
//     UNAVAILABLE/ESHUTDOWN when the server drains.
//   - Every goroutine a stream starts ends before its handler returns;
//     Stop and Shutdown return only after every handler has returned
//     (grpc.WaitForHandlers).
//
// # Locking
//
// Server.mu guards the set of open streams; it is a leaf lock and is never
// held while calling the MDT or sending.
package api
