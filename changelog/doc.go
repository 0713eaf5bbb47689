// Package changelog is the changelog's record format: record types and
// masks (Lustre's names and mask syntax), the Record and its text line and
// JSON (NDJSON) renderings, the versioned binary codec, user names and IDs,
// and the errors of the changelog contract.
//
// It imports no storage: a consumer that reads records (the Go client, lfs,
// lctl, mdc) links this package and fid only. The log itself, on Pebble,
// is package changelog/store, which the MDT uses.
//
// # Invariants
//
//   - The codec is versioned: Decode rejects versions and lengths it does
//     not know instead of guessing; every string field is bounded.
//   - Encode then Decode gives back the same record (a rapid property and
//     a fuzz target cover it).
//   - The text line is Lustre's `lfs changelog` line, times in UTC; the
//     JSON form is a view struct with stable field names. Names are
//     bytes: one that is not valid UTF-8 also gets name_b64 /
//     source_name_b64 with its exact bytes (NameB64, JSONName), so the
//     JSON is reversible and valid UTF-8 lines are unchanged.
//   - MARK is always in a mask (MinMask), as in Lustre.
//
// # Tamper evidence (chain.go, checkpoint.go, verify.go)
//
// Every record written since the chain exists (codec version 2) ends with
// h = SHA-256(h_prev || its bytes before the trailer), where h_prev is the
// previous record's hash (zero for the first chained record). Changing,
// removing, inserting or reordering records breaks a link at the first
// altered index. A forger who recomputes every later hash is caught by the
// next signed Checkpoint: an ed25519 signature over (sequence number,
// index, chain hash, time, device, signer, next key). A rotation
// checkpoint, signed by the old key, names the new key. The Verifier
// checks a stream of records, checkpoints and anchors (the hash of the
// record before the stream, or of the last purged record) in order and
// reports the first bad index and why; it also reads the NDJSON lines of a
// verifiable export (ItemJSON), checking each line's fields against its raw
// encoding. AppendExportJSON (export_json.go) writes fidlog-export's
// ndjson line of a record, the same fields as the JSON view (a property
// test holds the two together). ExportVerifier (export_verify.go) verifies a whole exported
// line stream offline (lfs changelog --output json --hash, fidlog-export's
// ndjson files): one Verifier per device, and after the first problem it
// reads on only to tell a reordered record from a missing one. An anchor
// inside a stream is accepted only when it restates a hash the chain
// already has (a restarted exporter writes one again).
//
// SHA-256 rather than BLAKE2b/3: it is in the standard library (no new
// dependency), Go's crypto/sha256 uses the CPU's SHA extensions (SHA-NI on
// x86-64, the ARMv8 SHA2 instructions), which make it as fast as BLAKE2b for
// records of ~100-300 bytes (the cost is per block, about 0.2 µs a record),
// and every auditor's toolbox (sha256sum, openssl) has it.
//
// Limits: deleting the newest records (and checkpoints) is seen only
// against the log's current index (Verifier.End) or a later checkpoint;
// deleting a checkpoint is seen at the next one (sequence gap), except the
// first of an export (whose records the next one still proves); records
// after the last checkpoint are linked, not yet signed; without its anchor
// an export's first record is not linked (the summary says so).
//
// Nothing in this package holds state or locks.
package changelog
