package store

import (
	"encoding/binary"

	"github.com/fidlog/fidlog/changelog"
)

// keyspace builds the log's keys under its prefix.
type keyspace struct{ prefix []byte }

const (
	ksRecord = 'r'
	ksUser   = 'u'
	ksEvict  = 'e'
	ksMeta   = 'm'
	// ksCheckpoint holds signed checkpoints by position (the index of the
	// record each precedes) and sequence number.
	ksCheckpoint = 'k'
)

func (k keyspace) sub(c byte, n int) []byte {
	b := make([]byte, 0, len(k.prefix)+1+n)
	b = append(b, k.prefix...)
	return append(b, c)
}

func (k keyspace) record(idx changelog.Index) []byte {
	return binary.BigEndian.AppendUint64(k.sub(ksRecord, 8), uint64(idx))
}
func (k keyspace) recordEnd() []byte { return k.sub(ksRecord+1, 0) }
func (k keyspace) recordIndex(key []byte) changelog.Index {
	return changelog.Index(binary.BigEndian.Uint64(key[len(key)-8:]))
}
func (k keyspace) checkpoint(pos changelog.Index, seq uint64) []byte {
	b := binary.BigEndian.AppendUint64(k.sub(ksCheckpoint, 16), uint64(pos))
	return binary.BigEndian.AppendUint64(b, seq)
}
func (k keyspace) checkpointPosition(key []byte) changelog.Index {
	return changelog.Index(binary.BigEndian.Uint64(key[len(key)-16:]))
}
func (k keyspace) user(id uint32) []byte {
	return binary.BigEndian.AppendUint32(k.sub(ksUser, 4), id)
}
func (k keyspace) userPrefix() []byte { return k.sub(ksUser, 0) }
func (k keyspace) userEnd() []byte    { return k.sub(ksUser+1, 0) }
func (k keyspace) evict(id uint32) []byte {
	return binary.BigEndian.AppendUint32(k.sub(ksEvict, 4), id)
}
func (k keyspace) evictPrefix() []byte { return k.sub(ksEvict, 0) }
func (k keyspace) evictEnd() []byte    { return k.sub(ksEvict+1, 0) }
func (k keyspace) meta(name string) []byte {
	return append(k.sub(ksMeta, len(name)), name...)
}
func (k keyspace) prefixEnd() []byte {
	e := append([]byte(nil), k.prefix...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return append(e, 0xff)
}
