// Package cli holds what the Lustre-compatible commands (lfs, lctl) and the
// metadata client (mdc) share: turning a gRPC error into the errno Lustre
// would report, and running a cobra command tree so that every failure ends
// in an exit status. Choosing and dialing the server, TLS and the caller's
// identity are the Go client's (api/client: client.Flags, client.Dial).
//
// Discoverability (complete.go): Live answers shell completion with the
// names the server knows (devices, changelog user ids, parameter and
// nodemap names), each question bounded by a 2 s timeout and silent when no
// server answers; ApplyExamples sets the Examples: sections of a command
// tree.
//
// Exit status convention: an operation that fails exits with the errno the
// server reported (ENOENT 2, EACCES 13, EEXIST 17, EINVAL 22, ...); a usage
// error exits with the command's usage code (4 for lfs and lctl, as Lustre
// does); a server that cannot be reached exits with ECONNREFUSED (111) or
// ENOTCONN (107).
package cli
