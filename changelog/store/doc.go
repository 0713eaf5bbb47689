// Package store is the MDT changelog on Pebble: a sequencer that assigns
// contiguous indices in commit order, a durable watermark for readers and
// followers, registered users, purge and space reclaim, idle and capacity
// GC, and the persistent changelog settings. Records and their format are
// package changelog.
//
// Files: log.go (open, load, state), sequencer.go (Apply, Pending),
// watermark.go (sync, durable watermark, followers), users.go (register,
// clear, deregister), purge.go (purge, reclaim), gc.go (eviction),
// read.go (Scan, Read), settings.go, keys.go (key schema under the prefix).
//
// # Invariants
//
//   - Atomic: the caller's batch and its records commit as one Pebble
//     batch (Apply copies the batch into a group batch with the records;
//     a group is one Pebble commit), so a namespace change and its records
//     are atomic. If the records cannot be stored (cap reached, write
//     error) nothing of the caller's batch commits.
//   - Contiguous indices in commit order: indices are assigned under the
//     log's lock in the same critical section that commits the group batch
//     to the WAL, so WAL order is index order and no index is skipped.
//   - Durable before acknowledged: Pending.Wait waits for the fsync Pebble
//     does for the group batch (a group is committed with a sync requested
//     but not awaited; Pebble's WAL writer shares one fsync among every
//     group and batch queued) and only then returns. No lock is held
//     across the fsync, and the next group commits while it is in flight.
//     A group held for announced writers (Expect; "Held syncs" in
//     sequencer.go) is applied NoSync and its callers wait for the
//     covering sync: one empty WAL record written after every held group.
//     Batches without records (users, settings, purge) commit NoSync and
//     are synced with one LogData(nil, Sync).
//   - Durable watermark: Pebble shows a batch before its WAL sync, so readers
//     (Scan, WaitDurable) never go past Durable(), which is published only
//     after a covering sync.
//   - The index never goes back: the current index is persisted with every
//     user change and purge, so it survives a purge of every record and a
//     restart. User IDs are never reused (the last ID is persisted).
//   - Purge to the lowest point: after every clear and deregistration,
//     records with index <= min(user points) are deleted with one
//     DeleteRange over [old floor+1, new floor+1) in the same batch as the
//     user update; ranges never overlap. A reclaimer compacts the purged span
//     shortly after a large purge so the sstables at its edges, which also
//     hold other keys, give the space back. No users means changelogs are
//     off: nothing is recorded and the index does not move.
//   - Clear is monotonic and idempotent; clearing past the current index is
//     an error and changes nothing. Clearing below the user's point changes
//     nothing and loses nobody; as in Lustre's mdd_changelog_clear it is
//     ENOENT (changelog.BehindError), while clearing to the user's own point
//     succeeds.
//   - Every successful clear, deregistration, eviction and purge, and
//     changelogs turning on or off, is reported to Options.OnStateChange
//     in the critical section that commits it (the MDT derives its
//     time-record dedup epoch from it).
//   - Hash chain: Apply seals each record (codec version 2) with
//     SHA-256(previous hash || record) under the lock, in the same critical
//     section that assigns its index, so the chain follows commit order
//     exactly; the only work added under the lock is the hash. The head
//     (last record's hash) is in memory and is recovered at Open from the
//     last stored record. A purge keeps the hash of the last purged record
//     as the chain's anchor, in the state written by the purge's batch, so
//     the chain verifies from the first retained record. Options.NoChain
//     (benchmarks only) writes version 1 records without hashes.
//   - Checkpoints (checkpoint.go) are stored in their own keyspace, keyed
//     by position (the index of the record they precede) and sequence
//     number, not in the record index space: Lustre consumers never see
//     them and indices stay Lustre's. A chain Scan (ReadOptions.Chain)
//     streams the anchor, then records with the checkpoints in position
//     order. The checkpointer goroutine signs outside the log's lock and
//     takes it only to read the head and to commit; a purge deletes the
//     checkpoints before the new first record with a second DeleteRange in
//     its batch. The signing key is Options.SigningKey or Options.KeyFile
//     (created 0600 on first start); RotateKey writes a rotation
//     checkpoint signed by the old key, then replaces the key file (an
//     interrupted rotation is finished at Open).
//   - Bounded: idle users are evicted by GC (Lustre's idle rules) and, at
//     the retained-records cap, the most lagging user is evicted; an evicted
//     user is told so by name (changelog.EvictedError). With nothing
//     evictable, Apply fails with changelog.ErrNoSpace.
//
// # Lustre quirks and what this package does instead
//
//   - MARK records are never written (Lustre's writer has returned early
//     since 2012 because MARK is always in the mask).
//   - At start all users are read (Lustre reads only the last user record).
//   - Registration validates before assigning an ID (no gaps), and IDs are
//     never reused across restarts (Lustre re-seeds from the highest
//     remaining user).
//
// # Goroutines and locking
//
// The Log owns up to three goroutines, the GC loop, the reclaimer and (with
// a signing key) the checkpointer; Close stops them and waits for them.
//
// Apply calls queue on Log.qmu; the leader of a group takes the queue and
// commits it under Log.mu (sequencer.go). qmu is never held with mu.
// Log.mu guards the sequencer state (current index, users, settings); it is
// held while a batch is committed and never across a sync.
// Log.dmu guards the durable watermark and the follower wake-up channel; it
// is never held while taking mu (lock order: mu, then dmu). Log.ckMu
// serialises checkpoints and guards the signing key; it is taken before mu
// (lock order: ckMu, mu, dmu) and held while signing and syncing a
// checkpoint, which no writer waits for. The Appended event runs after mu
// is released (it is on every write); the other events and OnStateChange
// run with mu held and must not call into the Log.
package store
