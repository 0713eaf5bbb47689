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
//     JSON form is a view struct with stable field names.
//   - MARK is always in a mask (MinMask), as in Lustre.
//
// Nothing in this package holds state or locks.
package changelog
