// Package api serves one MDT over gRPC: the changelog, namespace, params
// and nodemap services of proto/, plus grpc.health.v1 and server
// reflection. It converts between the wire types and the domain types
// (xxxFromPB/xxxToPB), maps every error to a status in one function
// (toStatus), derives each caller's identity and enforces Lustre's
// authorization rules. Package api/client is the matching Go client.
//
// # Identity and authorization
//
// Interceptors attach the caller to every request: the NID comes from the
// connection (<ip>@tcp for TCP, IPv6 included; 0@lo on a unix socket), uid,
// gid, groups and job id from the lustre-uid, lustre-gid, lustre-groups and
// lustre-jobid metadata (missing: 0 or empty; malformed: INVALID_ARGUMENT
// naming the key and value). While nodemaps are active (nodemap.active=1),
// the changelog RPCs, SetParam and every nodemap change require root on an
// admin nodemap (Identify reports Admin with mapped uid 0), else
// PERMISSION_DENIED (EACCES, sanity-sec 35). Callers on a unix socket are
// always the local administrator. Reads of parameters and nodemaps, and
// namespace operations, are governed by the MDT itself (squashing,
// permissions).
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
