package fid

import (
	"fmt"
	"sync"
)

// MemSeqStore is a SeqStore in memory, for tests: it is "durable" for as long
// as the value lives, so opening a new Allocator on the same MemSeqStore
// models a restart or crash. The zero value is an empty store. It is safe
// for concurrent use.
type MemSeqStore struct {
	mu struct {
		sync.Mutex
		seq   uint64
		ok    bool
		saves int
	}
}

var _ SeqStore = (*MemSeqStore)(nil)

// LoadSeq returns the saved sequence, with ok == false if there is none.
func (m *MemSeqStore) LoadSeq() (seq uint64, ok bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.seq, m.mu.ok, nil
}

// SaveSeq records seq. Saving a smaller sequence than the one stored is a
// bug in the caller and returns an error; saving the same one again is
// allowed.
func (m *MemSeqStore) SaveSeq(seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.ok && seq < m.mu.seq {
		return fmt.Errorf("fid: MemSeqStore: sequence %#x saved after %#x", seq, m.mu.seq)
	}
	m.mu.seq, m.mu.ok = seq, true
	m.mu.saves++
	return nil
}

// Saves returns how many times SaveSeq has succeeded.
func (m *MemSeqStore) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.saves
}
