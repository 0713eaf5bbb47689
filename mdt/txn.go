package mdt

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// caller is a request's credentials with the identity they map to.
type caller struct {
	id   Identity
	cred Cred
}

// begin checks the context and the MDT state and maps the credentials.
func (m *MDT) begin(ctx context.Context, c Cred) (*caller, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.checkOpen(); err != nil {
		return nil, err
	}
	id, err := m.Identify(c)
	if err != nil {
		return nil, err
	}
	return &caller{id: id, cred: c}, nil
}

// nid returns the NID records carry for c.
func (c *Cred) nid() string {
	if c.NID == "" {
		return "0@lo"
	}
	return c.NID
}

// wants reports whether a record of type t from this caller would be kept:
// the caller is audited (nodemap audit_mode) and t is enabled. Records that
// are not wanted are never built.
func (m *MDT) wants(cl *caller, t changelog.Type) bool {
	return cl.id.Audit && m.log.Enabled(t)
}

// newRecord builds a client-originated record: u= (mapped), nid=, j=.
func newRecord(cl *caller, t changelog.Type, tfid, pfid fid.FID, name string) *changelog.Record {
	r := &changelog.Record{
		Type:       t,
		TFID:       tfid,
		PFID:       pfid,
		Name:       name,
		JobID:      cl.cred.JobID,
		ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID | changelog.ExtraNIDBE,
		UID:        uint64(cl.id.UID),
		GID:        uint64(cl.id.GID),
		NID:        cl.cred.nid(),
	}
	switch t {
	case changelog.CLOpen, changelog.CLDeniedOpen:
		r.ExtraFlags |= changelog.ExtraOpen
	case changelog.CLXattr, changelog.CLGetxattr:
		r.ExtraFlags |= changelog.ExtraXattr
	}
	return r
}

// txn is one operation's batch: namespace mutations and the records due.
// It is built and applied with the operation's locks held (see update).
type txn struct {
	m    *MDT
	cl   *caller
	b    *pebble.Batch
	recs []*changelog.Record
	now  int64
	err  error // a failure while building the batch; apply returns it
	// ns is what the batch changes of inodes and directory entries, for
	// the namespace cache (nscache.go): every such write goes through
	// putInode, addLink, removeLink or deleteObject.
	ns nsChanges
	// Room for the changes of a typical operation and its record, so
	// that building them allocates nothing more.
	inoBuf  [3]inoChange
	dentBuf [2]dentChange
	dirBuf  [1]fid.FID
	recBuf  [1]*changelog.Record
	// kbuf and vbuf hold a key and a value while they are written
	// (pebble's batch copies both).
	kbuf, vbuf []byte
	kmem       [1 + fid.KeySize + MaxName]byte
	vmem       [inodeFixed + 64]byte
}

func (m *MDT) newTxn(cl *caller) *txn {
	t := &txn{m: m, cl: cl, b: m.db.NewBatch(), now: m.now()}
	t.ns.inodes, t.ns.dents, t.ns.newDirs = t.inoBuf[:0], t.dentBuf[:0], t.dirBuf[:0]
	t.recs = t.recBuf[:0]
	t.kbuf, t.vbuf = t.kmem[:0], t.vmem[:0]
	return t
}

// close releases the batch, committed or not.
func (t *txn) close() { mustBatch(t.b.Close()) }

// mustBatch panics if a write to a batch failed. Set, Delete and Close on a
// batch from DB.NewBatch cannot fail: pebble reports errors there only from
// the key index of an indexed batch (the MDT never indexes its batches) and
// from closing a batch twice (each batch has one owner that closes it once).
// An error means that invariant broke, and the namespace and changelog
// could disagree if the operation went on.
func mustBatch(err error) {
	if err != nil {
		panic(fmt.Sprintf("mdt: write to an unindexed pebble batch failed: %v", err))
	}
}

// set and del add a write to the batch (see mustBatch). Inodes and
// directory entries are written only by putInode, addLink, removeLink and
// deleteObject, which tell the namespace cache; set and del refuse them.
func (t *txn) set(k, v []byte) { t.check(k); mustBatch(t.b.Set(k, v, nil)) }
func (t *txn) del(k []byte)    { t.check(k); mustBatch(t.b.Delete(k, nil)) }

// check panics for a key the namespace cache must hear of: such a write
// bypassing it would leave the cache stale.
func (t *txn) check(k []byte) {
	if len(k) > 0 && (k[0] == ksInode || k[0] == ksDirent) {
		panic(fmt.Sprintf("mdt: namespace key %x written around the namespace cache", k))
	}
}

// record adds a record of type typ if it is wanted and returns it (nil if
// not wanted).
func (t *txn) record(typ changelog.Type, tfid, pfid fid.FID, name string) *changelog.Record {
	if !t.m.wants(t.cl, typ) {
		return nil
	}
	r := newRecord(t.cl, typ, tfid, pfid, name)
	t.recs = append(t.recs, r)
	return r
}

// unrecord takes back rec, the last record added.
func (t *txn) unrecord(rec *changelog.Record) {
	if n := len(t.recs); n > 0 && t.recs[n-1] == rec {
		t.recs = t.recs[:n-1]
	}
}

func (t *txn) putInode(ino *inode) {
	t.kbuf, t.vbuf = appendInodeKey(t.kbuf[:0], ino.FID), appendInode(t.vbuf[:0], ino)
	mustBatch(t.b.Set(t.kbuf, t.vbuf, nil))
	t.ns.putInode(ino)
}

// addLink adds directory entry parent/name -> ino and ino's link record.
func (t *txn) addLink(parent fid.FID, name string, ino *inode) {
	t.kbuf, t.vbuf = appendDirentKey(t.kbuf[:0], parent, name), appendDirent(t.vbuf[:0], ino.FID, ino.Type)
	mustBatch(t.b.Set(t.kbuf, t.vbuf, nil))
	t.ns.dents = append(t.ns.dents, dentChange{dir: parent, name: name, e: dent{fid: ino.FID, typ: ino.Type}})
	t.kbuf, t.vbuf = appendLinkKey(t.kbuf[:0], ino.FID, ino.NextLink), appendLink(t.vbuf[:0], parent, name)
	t.set(t.kbuf, t.vbuf)
	ino.NextLink++
}

// removeLink removes directory entry parent/name of ino and its link. The
// caller found the entry, so the link must exist (every entry has exactly
// one link record); a missing link is ErrCorrupt and nothing is removed.
func (t *txn) removeLink(parent fid.FID, name string, ino *inode) error {
	links, err := t.m.links(ino.FID)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.parent == parent && l.name == name {
			mustBatch(t.b.Delete(direntKey(parent, name), nil))
			t.ns.dents = append(t.ns.dents, dentChange{dir: parent, name: name, del: true})
			t.del(linkKey(ino.FID, l.seq))
			return nil
		}
	}
	return fmt.Errorf("%w: %v has no link record for entry %v/%s", ErrCorrupt, ino.FID, parent, name)
}

// apply commits the batch with its records (NoSync), with the operation's
// locks held, and notes which objects had a record for the time-record
// dedup. On error nothing was committed.
func (t *txn) apply() (p *store.Pending, err error) {
	if t.err != nil {
		return nil, t.err
	}
	// The epoch is read before the records get their indices: if a new
	// epoch starts in between, the objects are noted in the old one and
	// their next time record is kept (an extra record, never a lost one).
	ep := t.m.epoch.Load()
	nsc := t.m.nsc
	if nsc != nil && t.ns.empty() {
		nsc = nil
	}
	if nsc != nil {
		nsc.begin(&t.ns)
	}
	p, err = t.m.log.Apply(t.b, t.recs)
	if err != nil {
		if nsc != nil {
			nsc.abort(&t.ns)
		}
		return nil, storeErr(err)
	}
	if nsc != nil {
		nsc.commit(&t.ns)
	}
	t.m.noteRecords(t.recs, ep)
	t.m.dedupNote(t.recs)
	return p, nil
}

// noteRecords marks the objects of kept records as having had a record in
// epoch ep.
func (m *MDT) noteRecords(recs []*changelog.Record, ep uint64) {
	if len(recs) == 0 {
		return
	}
	for _, r := range recs {
		if r.Index == 0 {
			continue
		}
		if !r.TFID.IsZero() {
			m.timeSeen.Add(r.TFID, ep)
		}
		if !r.SFID.IsZero() {
			m.timeSeen.Add(r.SFID, ep)
		}
	}
}

// wait makes an applied batch durable. A failed WAL sync is fatal, as
// Pebble treats it when it reports it through Logger.Fatalf: the batch is
// applied (visible) but not durable, so the MDT must not serve on; it
// latches the failure and calls OnFatal (see storeFailure).
func (m *MDT) wait(p *store.Pending) error {
	if p == nil {
		return nil
	}
	if err := p.Wait(); err != nil {
		err = storeErr(err)
		m.fatal("wal_sync_failed", err)
		return err
	}
	return nil
}

type linkEnt struct {
	seq    uint32
	parent fid.FID
	name   string
}

// links returns f's links in link order.
func (m *MDT) links(f fid.FID) ([]linkEnt, error) {
	var out []linkEnt
	lo, hi := linkRange(f)
	err := m.scan(lo, hi, func(k, v []byte) error {
		p, name, err := decodeLink(v)
		if err != nil {
			return err
		}
		out = append(out, linkEnt{seq: linkSeqOf(k), parent: p, name: name})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scan calls fn with the key and value of every key in [lo, hi) in order;
// both are valid only during the call. It stops at fn's first error and
// returns it; a read error is ErrIO. Every iteration of the namespace goes
// through it, so none can drop an iterator error.
func (m *MDT) scan(lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	return nil
}

// deleteObject adds to b the removal of f's inode, remaining links,
// xattrs, content chunks and orphan mark. Point deletes only (no range
// tombstones on the namespace). If the links or xattrs cannot be listed it
// returns ErrIO and the caller must not commit b (a half-deleted object
// would keep keys no inode owns).
func (m *MDT) deleteObject(b *pebble.Batch, f fid.FID) error {
	mustBatch(b.Delete(inodeKey(f), nil))
	mustBatch(b.Delete(orphanKey(f), nil))
	del := func(k, _ []byte) error {
		mustBatch(b.Delete(append([]byte(nil), k...), nil))
		return nil
	}
	lo, hi := linkRange(f)
	if err := m.scan(lo, hi, del); err != nil {
		return fmt.Errorf("deleting %v: %w", f, err)
	}
	lo, hi = xattrRange(f)
	if err := m.scan(lo, hi, del); err != nil {
		return fmt.Errorf("deleting %v: %w", f, err)
	}
	lo, hi = chunkRange(f)
	if err := m.scan(lo, hi, del); err != nil {
		return fmt.Errorf("deleting %v: %w", f, err)
	}
	return nil
}

// dropLastLink handles an object whose nlink reached 0: removed now, or
// kept as an orphan while handles are open.
func (t *txn) dropLastLink(ino *inode) error {
	if t.m.openCount(ino.FID) > 0 {
		t.putInode(ino)
		t.set(orphanKey(ino.FID), nil)
		return nil
	}
	return t.deleteObject(ino.FID)
}

// deleteObject adds the removal of object f to the batch (see
// MDT.deleteObject) and tells the namespace cache.
func (t *txn) deleteObject(f fid.FID) error {
	if err := t.m.deleteObject(t.b, f); err != nil {
		return err
	}
	t.ns.delInode(f)
	return nil
}
