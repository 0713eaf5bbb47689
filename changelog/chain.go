package changelog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
)

// HashSize is the size of a chain hash (SHA-256).
const HashSize = sha256.Size

// Hash is a record's chain hash: SHA-256(previous record's hash || the
// record's stored bytes without the hash trailer). The first chained
// record of a log has the zero hash as its predecessor.
type Hash [HashSize]byte

// IsZero reports whether h is the zero hash (no hash).
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("%w: hash '%s' is not %d hex digits", ErrCorrupt, s, 2*HashSize)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: hash '%s': %v", ErrCorrupt, s, err)
	}
	return h, nil
}

// ChainHash returns SHA-256(prev || body).
func ChainHash(prev Hash, body []byte) Hash {
	d := sha256.New()
	d.Write(prev[:])
	d.Write(body)
	var h Hash
	d.Sum(h[:0])
	return h
}

// Seal computes the chain hash of a version 2 encoding b (AppendEncodeChained,
// index already set) from prev, writes it into b's trailer and returns it.
func Seal(b []byte, prev Hash) Hash {
	var s Sealer
	return s.Seal(b, prev)
}

// Sealer seals records with a reused SHA-256 state: the sequencer keeps one
// under its lock so that sealing allocates nothing. Not safe for
// concurrent use.
type Sealer struct {
	d hash.Hash
	// in and out are the previous hash and the digest: the hash state
	// is an interface, so slices of locals passed to it would escape to
	// the heap on every call.
	in, out [HashSize]byte
}

// Seal is the package-level Seal with s's state.
func (s *Sealer) Seal(b []byte, prev Hash) Hash {
	if s.d == nil {
		s.d = sha256.New()
	}
	s.d.Reset()
	s.in = prev
	s.d.Write(s.in[:])
	s.d.Write(b[:len(b)-HashSize])
	s.d.Sum(s.out[:0])
	copy(b[len(b)-HashSize:], s.out[:])
	return s.out
}

// Chained reports whether b is a version 2 (chained) encoding.
func Chained(b []byte) bool { return len(b) >= hdrSize+HashSize && b[0] == codecVersion2 }

// StoredHash returns the hash trailer of a version 2 encoding; ok is false
// for anything else (version 1 records carry no hash).
func StoredHash(b []byte) (h Hash, ok bool) {
	if !Chained(b) {
		return h, false
	}
	copy(h[:], b[len(b)-HashSize:])
	return h, true
}

// Anchor is the chain's state just before a record: the hash of record
// Index (or, after a purge, of the last purged record, which the log keeps
// with the purge). The zero hash at index 0 starts a new log.
type Anchor struct {
	Index Index
	Hash  Hash
}

// anchorTag starts the encoding of an Anchor in a stream of stored
// records (record versions are small numbers; tags have the high bit).
const anchorTag = 0x82

// AppendAnchor appends the stream encoding of a: tag, index (8 bytes,
// big-endian), hash.
func AppendAnchor(dst []byte, a Anchor) []byte {
	dst = append(dst, anchorTag)
	dst = appendBE64(dst, uint64(a.Index))
	return append(dst, a.Hash[:]...)
}

// DecodeAnchor parses an encoding made by AppendAnchor.
func DecodeAnchor(b []byte) (Anchor, error) {
	var a Anchor
	if len(b) != 1+8+HashSize || b[0] != anchorTag {
		return a, fmt.Errorf("%w: not an anchor (%d bytes)", ErrCorrupt, len(b))
	}
	a.Index = Index(be64(b[1:]))
	copy(a.Hash[:], b[9:])
	return a, nil
}

// ItemKind says what an element of a verification stream is.
type ItemKind uint8

// Stream element kinds.
const (
	ItemUnknown ItemKind = iota
	ItemRecord
	ItemCheckpoint
	ItemAnchor
)

// KindOf classifies a stream element by its first byte.
func KindOf(b []byte) ItemKind {
	if len(b) == 0 {
		return ItemUnknown
	}
	switch b[0] {
	case codecVersion1, codecVersion2:
		return ItemRecord
	case checkpointTag:
		return ItemCheckpoint
	case anchorTag:
		return ItemAnchor
	}
	return ItemUnknown
}

func appendBE64(b []byte, v uint64) []byte {
	return append(b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
