package changelog

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/fidlog/fidlog/fid"
)

// On-disk record encoding, versions 1 and 2. The record format belongs to
// this package and is versioned on its own: readers reject versions they do
// not know instead of guessing.
//
//	off  size  field
//	0    1     version (1: unchained; 2: chained, hash trailer)
//	1    8     index, big-endian (patched in place by the sequencer)
//	9    1     type
//	10   2     flags (little-endian)
//	12   8     time, unix nanoseconds (little-endian, signed)
//	20   16    target FID (key form)
//	36   16    parent FID (key form)
//	52   8     extra flags (little-endian)
//	60   1     presence bits: 1 rename, 2 jobid, 4 uid/gid, 8 nid, 16 open, 32 xattr, 64 name
//	61   ...   present fields in that order: rename = sfid(16) spfid(16)
//	           uvarint-len sname; jobid/nid/xattr/name = uvarint-len bytes;
//	           uid/gid = 2 uvarints; open = uvarint.
//	end-32 32  version 2 only: the chain hash SHA-256(previous hash || every
//	           byte before this trailer), set by the sequencer (chain.go).
//
// Version 1 records were written before the hash chain existed (or with
// the chain off for a benchmark); they decode with a zero Hash.
const (
	codecVersion1 = 1
	codecVersion2 = 2
	hdrSize       = 61
	offIndex      = 1
	offType       = 9
)

const (
	hasRename = 1 << iota
	hasJobID
	hasUIDGID
	hasNID
	hasOpen
	hasXattr
	hasName
	hasAll = hasRename | hasJobID | hasUIDGID | hasNID | hasOpen | hasXattr | hasName
)

// maxString bounds any string field when decoding.
const maxString = 4096

// AppendEncode appends the version 1 (unchained) encoding of r to dst.
func AppendEncode(dst []byte, r *Record) []byte { return appendBody(dst, r, codecVersion1) }

// AppendEncodeChained appends the version 2 encoding of r to dst with a
// zero hash trailer; Seal fills the trailer once the index and the
// previous hash are known.
func AppendEncodeChained(dst []byte, r *Record) []byte {
	dst = appendBody(dst, r, codecVersion2)
	var zero [HashSize]byte
	return append(dst, zero[:]...)
}

// maxEncodedSize bounds the version 2 encoding of r, so that Encode and
// EncodeChained allocate once (appending from nil grew the buffer five
// times for a typical CREAT).
func maxEncodedSize(r *Record) int {
	const varint = binary.MaxVarintLen64
	return hdrSize + 2*fid.KeySize + 8*varint + HashSize +
		len(r.SName) + len(r.JobID) + len(r.NID) + len(r.XattrName) + len(r.Name)
}

func appendBody(dst []byte, r *Record, version byte) []byte {
	var pres byte
	if !r.SFID.IsZero() || !r.SPFID.IsZero() || r.SName != "" {
		pres |= hasRename
	}
	if r.JobID != "" {
		pres |= hasJobID
	}
	if r.ExtraFlags&ExtraUIDGID != 0 || r.UID != 0 || r.GID != 0 {
		pres |= hasUIDGID
	}
	if r.NID != "" {
		pres |= hasNID
	}
	if r.OpenFlags != 0 {
		pres |= hasOpen
	}
	if r.XattrName != "" {
		pres |= hasXattr
	}
	if r.Name != "" {
		pres |= hasName
	}
	dst = append(dst, version)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Index))
	dst = append(dst, byte(r.Type))
	dst = binary.LittleEndian.AppendUint16(dst, r.Flags)
	var ns int64
	if !r.Time.IsZero() {
		ns = r.Time.UnixNano()
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(ns))
	dst = r.TFID.AppendKey(dst)
	dst = r.PFID.AppendKey(dst)
	dst = binary.LittleEndian.AppendUint64(dst, r.ExtraFlags)
	dst = append(dst, pres)
	if pres&hasRename != 0 {
		dst = r.SFID.AppendKey(dst)
		dst = r.SPFID.AppendKey(dst)
		dst = appendString(dst, r.SName)
	}
	if pres&hasJobID != 0 {
		dst = appendString(dst, r.JobID)
	}
	if pres&hasUIDGID != 0 {
		dst = binary.AppendUvarint(dst, r.UID)
		dst = binary.AppendUvarint(dst, r.GID)
	}
	if pres&hasNID != 0 {
		dst = appendString(dst, r.NID)
	}
	if pres&hasOpen != 0 {
		dst = binary.AppendUvarint(dst, uint64(r.OpenFlags))
	}
	if pres&hasXattr != 0 {
		dst = appendString(dst, r.XattrName)
	}
	if pres&hasName != 0 {
		dst = appendString(dst, r.Name)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendStored appends r as the log stores it: the version 2 encoding
// with r.Hash in its trailer, or version 1 for a record without a hash.
// For a record decoded from the log these are the stored bytes (the
// encoding is canonical), so a consumer that kept only the decoded record
// can export what the chain covers.
func AppendStored(dst []byte, r *Record) []byte {
	if r.Hash.IsZero() {
		return AppendEncode(dst, r)
	}
	dst = appendBody(dst, r, codecVersion2)
	return append(dst, r.Hash[:]...)
}

// Encode returns the version 1 (unchained) encoding of r.
func Encode(r *Record) []byte { return AppendEncode(make([]byte, 0, maxEncodedSize(r)), r) }

// EncodeChained returns the version 2 encoding of r with a zero hash
// trailer (see Seal).
func EncodeChained(r *Record) []byte {
	return AppendEncodeChained(make([]byte, 0, maxEncodedSize(r)), r)
}

// minLen returns the shortest valid encoding of the version in b[0], or 0
// for an unknown version.
func minLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch b[0] {
	case codecVersion1:
		return hdrSize
	case codecVersion2:
		return hdrSize + HashSize
	}
	return 0
}

// PeekIndex returns the index of an encoded record without decoding it.
func PeekIndex(b []byte) (Index, bool) {
	if n := minLen(b); n == 0 || len(b) < n {
		return 0, false
	}
	return Index(binary.BigEndian.Uint64(b[offIndex:])), true
}

// PeekType returns the type of an encoded record without decoding it.
func PeekType(b []byte) (Type, bool) {
	if n := minLen(b); n == 0 || len(b) < n {
		return 0, false
	}
	return Type(b[offType]), true
}

// SetIndex patches the index of an encoded record in place (the sequencer
// assigns indices after encoding, under its lock).
func SetIndex(b []byte, idx Index) { binary.BigEndian.PutUint64(b[offIndex:], uint64(idx)) }

// Decode parses an encoded record. It never panics; malformed input gives an
// error wrapping ErrCorrupt.
func Decode(b []byte) (*Record, error) {
	r := new(Record)
	if err := DecodeInto(r, b); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeInto parses an encoded record into r, overwriting every field.
func DecodeInto(r *Record, b []byte) error { return decodeInto(r, b, nil) }

// DecodeIntoShared is DecodeInto with r's strings (names, job id, NID,
// xattr name) appended to strs and taken as substrings of it: the records
// of a batch decoded with one builder share its allocation (one, when strs
// was grown by StringBytes of each) instead of having one a string. The
// strings stay valid however strs grows; they keep its buffer alive while
// any of them is.
func DecodeIntoShared(r *Record, b []byte, strs *strings.Builder) error {
	return decodeInto(r, b, strs)
}

// StringBytes bounds the bytes of the strings of the encoded record b
// (what DecodeIntoShared appends): its length less the fixed fields of
// its version; 0 if b is too short to be a record.
func StringBytes(b []byte) int {
	n := minLen(b)
	if n == 0 || len(b) < n {
		return 0
	}
	return len(b) - n
}

func decodeInto(r *Record, b []byte, strs *strings.Builder) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrCorrupt)
	}
	n := minLen(b)
	if n == 0 {
		return fmt.Errorf("%w: unknown record version %d", ErrCorrupt, b[0])
	}
	if len(b) < n {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrCorrupt, len(b), n)
	}
	*r = Record{}
	if b[0] == codecVersion2 {
		copy(r.Hash[:], b[len(b)-HashSize:])
		b = b[:len(b)-HashSize]
	}
	r.Index = Index(binary.BigEndian.Uint64(b[1:]))
	r.Type = Type(b[9])
	if !r.Type.Valid() {
		return fmt.Errorf("%w: record type %d", ErrCorrupt, b[9])
	}
	r.Flags = binary.LittleEndian.Uint16(b[10:])
	if ns := int64(binary.LittleEndian.Uint64(b[12:])); ns != 0 {
		r.Time = time.Unix(0, ns)
	}
	r.TFID = fid.FromKeyArray([fid.KeySize]byte(b[20:36]))
	r.PFID = fid.FromKeyArray([fid.KeySize]byte(b[36:52]))
	r.ExtraFlags = binary.LittleEndian.Uint64(b[52:])
	pres := b[60]
	if pres&^hasAll != 0 {
		return fmt.Errorf("%w: presence bits 0x%x", ErrCorrupt, pres)
	}
	d := decoder{b: b[hdrSize:], strs: strs}
	if pres&hasRename != 0 {
		r.SFID = d.fid()
		r.SPFID = d.fid()
		r.SName = d.str()
	}
	if pres&hasJobID != 0 {
		r.JobID = d.str()
	}
	if pres&hasUIDGID != 0 {
		r.UID = d.uvarint()
		r.GID = d.uvarint()
	}
	if pres&hasNID != 0 {
		r.NID = d.str()
	}
	if pres&hasOpen != 0 {
		v := d.uvarint()
		if v > 0xFFFFFFFF {
			d.fail("open flags overflow")
		}
		r.OpenFlags = uint32(v)
	}
	if pres&hasXattr != 0 {
		r.XattrName = d.str()
	}
	if pres&hasName != 0 {
		r.Name = d.str()
	}
	if d.err == "" && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != "" {
		return fmt.Errorf("%w: index %d: %s", ErrCorrupt, r.Index, d.err)
	}
	return nil
}

type decoder struct {
	b   []byte
	err string
	// strs, if not nil, holds the strings (DecodeIntoShared).
	strs *strings.Builder
}

func (d *decoder) fail(msg string) {
	if d.err == "" {
		d.err = msg
	}
	d.b = nil
}

func (d *decoder) fid() fid.FID {
	if d.err != "" || len(d.b) < fid.KeySize {
		d.fail("short FID")
		return fid.FID{}
	}
	f := fid.FromKeyArray([fid.KeySize]byte(d.b[:fid.KeySize]))
	d.b = d.b[fid.KeySize:]
	return f
}

func (d *decoder) uvarint() uint64 {
	if d.err != "" {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != "" {
		return ""
	}
	if n > maxString || n > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("string of %d bytes", n))
		return ""
	}
	var s string
	switch {
	case n == 0:
	case d.strs != nil:
		start := d.strs.Len()
		d.strs.Write(d.b[:n])
		s = d.strs.String()[start:]
	default:
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}
