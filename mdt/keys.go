package mdt

import (
	"encoding/binary"
	"fmt"

	"github.com/fidlog/fidlog/fid"
)

// The key schema of the MDT's Pebble DB. Every key starts with a one-byte
// keyspace prefix; this file is the only place that builds or parses keys.
//
//	'c' ...                               the changelog (package changelog owns
//	                                      everything under this prefix)
//	'i' FID                               -> inode: encodeInode(ino)
//	'd' parentFID name                    -> directory entry: childFID type(1)
//	'l' FID linkseq(u32 BE)               -> link: parentFID name (hard links and
//	                                         fid2path, in link order = key order)
//	'x' FID name                          -> xattr value
//	'b' FID chunk(u64 BE)                 -> file content: bytes [chunk*ChunkSize,
//	                                         +len) (Data-on-MDT, data.go)
//	'o' FID                               -> "" : object with nlink 0 kept for
//	                                         open handles (dropped at next Open)
//	'm' name                              -> MDT metadata:
//	                                         "seq"        highest FID sequence (u64 BE)
//	                                         "deniednext" changelog_deniednext (decimal)
//	'n' name                              -> nodemap configuration (opaque to the
//	                                         namespace; see nodemap.go)
//
// FIDs are in their 16-byte order-preserving key form, so one object's
// links and xattrs, and one directory's entries, are contiguous and sorted
// (entries by name bytes, links by sequence).
const (
	ksChangelog = 'c'
	ksInode     = 'i'
	ksDirent    = 'd'
	ksLink      = 'l'
	ksXattr     = 'x'
	ksOrphan    = 'o'
	ksData      = 'b'
	ksMeta      = 'm'
	ksNodemap   = 'n'
)

// changelogPrefix is the changelog's KeyPrefix.
var changelogPrefix = []byte{ksChangelog}

// Metadata key names.
const (
	metaSeq        = "seq"
	metaDeniedNext = "deniednext"
	// metaDedupWindow holds changelog_dedup_window.
	metaDedupWindow = "dedupwindow"
	// metaBoot counts the starts of the MDT (the high bits of handle
	// numbers).
	metaBoot = "boot"
	// metaOrphanGrace holds orphan_grace.
	metaOrphanGrace = "orphangrace"
)

func fidKey(prefix byte, f fid.FID, extra int) []byte {
	k := make([]byte, 0, 1+fid.KeySize+extra)
	k = append(k, prefix)
	return f.AppendKey(k)
}

func inodeKey(f fid.FID) []byte { return fidKey(ksInode, f, 0) }

// appendInodeKey, appendDirentKey and appendLinkKey append the keys to dst
// (the write path builds them in a reused buffer; the batch copies them).
func appendInodeKey(dst []byte, f fid.FID) []byte { return f.AppendKey(append(dst, ksInode)) }

func appendDirentKey(dst []byte, parent fid.FID, name string) []byte {
	return append(parent.AppendKey(append(dst, ksDirent)), name...)
}

func appendLinkKey(dst []byte, f fid.FID, seq uint32) []byte {
	return binary.BigEndian.AppendUint32(f.AppendKey(append(dst, ksLink)), seq)
}

func direntKey(parent fid.FID, name string) []byte {
	return append(fidKey(ksDirent, parent, len(name)), name...)
}

// direntRange bounds every entry of directory parent.
func direntRange(parent fid.FID) (lo, hi []byte) {
	return fidKey(ksDirent, parent, 0), prefixEnd(fidKey(ksDirent, parent, 0))
}

func linkKey(f fid.FID, seq uint32) []byte {
	return binary.BigEndian.AppendUint32(fidKey(ksLink, f, 4), seq)
}

func linkRange(f fid.FID) (lo, hi []byte) {
	return fidKey(ksLink, f, 0), prefixEnd(fidKey(ksLink, f, 0))
}

func xattrKey(f fid.FID, name string) []byte {
	return append(fidKey(ksXattr, f, len(name)), name...)
}

func xattrRange(f fid.FID) (lo, hi []byte) {
	return fidKey(ksXattr, f, 0), prefixEnd(fidKey(ksXattr, f, 0))
}

func chunkKey(f fid.FID, ci uint64) []byte {
	return binary.BigEndian.AppendUint64(fidKey(ksData, f, 8), ci)
}

func chunkRange(f fid.FID) (lo, hi []byte) {
	return fidKey(ksData, f, 0), prefixEnd(fidKey(ksData, f, 0))
}

// chunkIndexOf returns the chunk number of a chunk key.
func chunkIndexOf(key []byte) uint64 { return binary.BigEndian.Uint64(key[1+fid.KeySize:]) }

func orphanKey(f fid.FID) []byte { return fidKey(ksOrphan, f, 0) }

func orphanRange() (lo, hi []byte) { return []byte{ksOrphan}, []byte{ksOrphan + 1} }

func metaKey(name string) []byte { return append([]byte{ksMeta}, name...) }

func nodemapKey(name string) []byte { return append([]byte{ksNodemap}, name...) }

// prefixEnd returns the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return append(e, 0xff)
}

// direntName returns the name part of a dirent key.
func direntName(key []byte) string { return string(key[1+fid.KeySize:]) }

// xattrName returns the name part of an xattr key.
func xattrName(key []byte) string { return string(key[1+fid.KeySize:]) }

// linkSeqOf returns the sequence part of a link key.
func linkSeqOf(key []byte) uint32 { return binary.BigEndian.Uint32(key[1+fid.KeySize:]) }

// appendDirent appends the value of a directory entry.
func appendDirent(dst []byte, child fid.FID, t FileType) []byte {
	return append(child.AppendKey(dst), byte(t))
}

func decodeDirent(v []byte) (fid.FID, FileType, error) {
	if len(v) != fid.KeySize+1 {
		return fid.FID{}, 0, fmt.Errorf("%w: directory entry of %d bytes", ErrIO, len(v))
	}
	f := fid.FromKeyArray([fid.KeySize]byte(v[:fid.KeySize]))
	return f, FileType(v[fid.KeySize]), nil
}

// appendLink appends the value of a link: the parent FID and the entry
// name.
func appendLink(dst []byte, parent fid.FID, name string) []byte {
	return append(parent.AppendKey(dst), name...)
}

func decodeLink(v []byte) (fid.FID, string, error) {
	if len(v) < fid.KeySize {
		return fid.FID{}, "", fmt.Errorf("%w: link of %d bytes", ErrIO, len(v))
	}
	f := fid.FromKeyArray([fid.KeySize]byte(v[:fid.KeySize]))
	return f, string(v[fid.KeySize:]), nil
}

// inodeVersion is the first byte of every encoded inode.
const inodeVersion = 1

// inodeFixed is the size of an encoded inode without the symlink target.
const inodeFixed = 1 + 1 + 4*4 + 8 + 3*8 + 8 + 4

// encodeInode is the value of an inode key:
//
//	version(1) type(1) mode(4) uid(4) gid(4) nlink(4) size(8)
//	atime mtime ctime (8 each, unix ns) rdev(8) nextLinkSeq(4) target(rest)
func encodeInode(ino *inode) []byte {
	return appendInode(make([]byte, 0, inodeFixed+len(ino.Target)), ino)
}

func appendInode(v []byte, ino *inode) []byte {
	v = append(v, inodeVersion, byte(ino.Type))
	v = binary.BigEndian.AppendUint32(v, ino.Mode)
	v = binary.BigEndian.AppendUint32(v, ino.UID)
	v = binary.BigEndian.AppendUint32(v, ino.GID)
	v = binary.BigEndian.AppendUint32(v, ino.Nlink)
	v = binary.BigEndian.AppendUint64(v, ino.Size)
	v = binary.BigEndian.AppendUint64(v, uint64(ino.Atime))
	v = binary.BigEndian.AppendUint64(v, uint64(ino.Mtime))
	v = binary.BigEndian.AppendUint64(v, uint64(ino.Ctime))
	v = binary.BigEndian.AppendUint64(v, ino.Rdev)
	v = binary.BigEndian.AppendUint32(v, ino.NextLink)
	return append(v, ino.Target...)
}

func decodeInode(f fid.FID, v []byte) (*inode, error) {
	if len(v) < inodeFixed || v[0] != inodeVersion {
		return nil, fmt.Errorf("%w: inode %v: bad encoding (%d bytes)", ErrIO, f, len(v))
	}
	be := binary.BigEndian
	ino := &inode{
		FID:      f,
		Type:     FileType(v[1]),
		Mode:     be.Uint32(v[2:]),
		UID:      be.Uint32(v[6:]),
		GID:      be.Uint32(v[10:]),
		Nlink:    be.Uint32(v[14:]),
		Size:     be.Uint64(v[18:]),
		Atime:    int64(be.Uint64(v[26:])),
		Mtime:    int64(be.Uint64(v[34:])),
		Ctime:    int64(be.Uint64(v[42:])),
		Rdev:     be.Uint64(v[50:]),
		NextLink: be.Uint32(v[58:]),
		Target:   string(v[inodeFixed:]),
	}
	return ino, nil
}
