package fid

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// FID names one object for its whole lifetime. The zero value is the zero
// FID, which changelog records use for "no object".
type FID struct {
	Seq uint64
	Oid uint32
	Ver uint32
}

// Well-known sequences and FIDs.
const (
	// SeqRoot is the sequence of the root directory of MDT0.
	SeqRoot uint64 = 0x200000007
	// SeqDotLustre is the sequence of the .lustre directory and its children.
	SeqDotLustre uint64 = 0x200000002
	// SeqNormal is the first sequence handed out for normal objects
	// (FID_SEQ_NORMAL).
	SeqNormal uint64 = 0x200000400
	// SeqWidth is the number of object ids in one metadata sequence
	// (LUSTRE_METADATA_SEQ_MAX_WIDTH).
	SeqWidth uint32 = 0x20000
)

var (
	// Zero is the zero FID, printed "[0:0x0:0x0]".
	Zero = FID{}
	// Root is the root directory: [0x200000007:0x1:0x0].
	Root = FID{Seq: SeqRoot, Oid: 1}
	// DotLustre is the .lustre directory: [0x200000002:0x1:0x0].
	DotLustre = FID{Seq: SeqDotLustre, Oid: 1}
	// DotLustreFid is .lustre/fid: [0x200000002:0x2:0x0].
	DotLustreFid = FID{Seq: SeqDotLustre, Oid: 2}
)

// KeySize is the length of the key form.
const KeySize = 16

// IsZero reports whether f is the zero FID.
func (f FID) IsZero() bool { return f == FID{} }

// IsNormal reports whether f belongs to a normal (client-visible) sequence.
func (f FID) IsNormal() bool { return f.Seq >= SeqNormal }

// String returns Lustre's DFID form "[%#llx:0x%x:0x%x]": sequence 0 prints
// as "0" because of C's %#x.
func (f FID) String() string {
	var buf [maxTextLen]byte
	return string(f.AppendTo(buf[:0]))
}

// maxTextLen is the longest text form: "[0x" 16 ":0x" 8 ":0x" 8 "]".
const maxTextLen = 3 + 16 + 3 + 8 + 3 + 8 + 1

// AppendTo appends the DFID form of f (String) to dst.
func (f FID) AppendTo(dst []byte) []byte {
	if f.Seq == 0 {
		dst = append(dst, "[0"...)
	} else {
		dst = append(dst, "[0x"...)
		dst = strconv.AppendUint(dst, f.Seq, 16)
	}
	dst = append(dst, ":0x"...)
	dst = strconv.AppendUint(dst, uint64(f.Oid), 16)
	dst = append(dst, ":0x"...)
	dst = strconv.AppendUint(dst, uint64(f.Ver), 16)
	return append(dst, ']')
}

// AppendKey appends the 16-byte order-preserving key form of f to dst.
func (f FID) AppendKey(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, f.Seq)
	dst = binary.BigEndian.AppendUint32(dst, f.Oid)
	return binary.BigEndian.AppendUint32(dst, f.Ver)
}

// Key returns the 16-byte order-preserving key form of f.
func (f FID) Key() [KeySize]byte {
	var k [KeySize]byte
	f.AppendKey(k[:0])
	return k
}

// FromKey decodes a key produced by Key or AppendKey. It returns an error if
// b is not exactly KeySize bytes.
func FromKey(b []byte) (FID, error) {
	if len(b) != KeySize {
		return FID{}, fmt.Errorf("fid: key has %d bytes, want %d", len(b), KeySize)
	}
	return FromKeyArray([KeySize]byte(b)), nil
}

// FromKeyArray decodes the key form held in an array, which cannot fail;
// decoders that have checked a value's length use it as
// FromKeyArray([KeySize]byte(v[off:off+KeySize])).
func FromKeyArray(k [KeySize]byte) FID {
	return FID{
		Seq: binary.BigEndian.Uint64(k[0:8]),
		Oid: binary.BigEndian.Uint32(k[8:12]),
		Ver: binary.BigEndian.Uint32(k[12:16]),
	}
}
