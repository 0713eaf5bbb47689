// Package integration proves the whole system from the outside: its tests
// build the real binaries (mdtd, lfs, lctl, mdc), start real mdtd processes
// on temporary directories and loopback addresses, and drive them through
// the commands and a gRPC client. It has no non-test code.
//
// The default run is sized for CI (2 cores). Longer soaks are behind
// environment variables: FIDLOG_CRASH_ITERS (kill -9 iterations, default
// 6), FIDLOG_LOAD_SECONDS (load test length, default 4).
package integration
