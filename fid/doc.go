// Package fid implements Lustre File IDentifiers: the 128-bit object names
// that changelog records use for targets, parents and rename sources.
//
// A FID is {seq uint64, oid uint32, ver uint32}. Its text form is the one
// Lustre prints ("[0x200000402:0x1:0x0]"; the zero FID is "[0:0x0:0x0]"),
// and its key form is 16 big-endian bytes whose byte order equals FID order.
//
// # Invariants
//
//   - Text: for every FID f, Parse(f.String()) == f. String never fails and
//     always produces lower-case hexadecimal without padding.
//   - Key: FromKey(f.Key()) == f, and bytes.Compare(a.Key(), b.Key()) has the
//     sign of comparing (Seq, Oid, Ver) lexicographically, so a key-ordered
//     store iterates FIDs in FID order.
//   - Parse errors are always *ParseError carrying the input verbatim and
//     unwrapping to exactly one of ErrInvalid (bad syntax, EINVAL) or
//     ErrRange (well-formed but a field too wide, ERANGE). Syntax is checked
//     over the whole input first, so ErrRange implies the text was
//     well-formed.
//   - Allocation: an Allocator never returns the same FID twice, across
//     concurrent callers, restarts and crashes, provided its SeqStore is
//     durable and is used by one Allocator at a time. Every FID it returns
//     has Seq >= SeqNormal, 1 <= Oid <= SeqWidth and Ver == 0; FIDs come out
//     in strictly increasing FID order.
//   - Persistence order: a sequence is saved with SeqStore.SaveSeq, and
//     SaveSeq has returned nil, before any FID of that sequence is returned.
//     A new Allocator starts at the sequence after the stored one, so the
//     unused rest of a partly used sequence is skipped (as a Lustre client
//     does when it reconnects); at most one sequence is wasted per restart.
//
// # Locking
//
// Allocator has one mutex, Allocator.mu, and it is a leaf: nothing else is
// locked while it is held except whatever SeqStore.SaveSeq locks. It is held
// across SaveSeq (an fsync in a real store) on purpose: no FID of a new
// sequence may be handed out before that sequence is durable, and this
// happens only once per SeqWidth (131072) FIDs, so the stall is rare.
// SeqStore implementations must therefore not call back into the Allocator.
package fid
