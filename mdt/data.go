package mdt

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sys/unix"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// File content (Data-on-MDT). A regular file's bytes live in the same
// Pebble DB as its inode, in chunks of ChunkSize keyed by FID and chunk
// number (keys.go). A chunk may be shorter than ChunkSize or missing: the
// bytes it does not hold, up to the inode's size, read as zeros (holes).
// Chunks are written in the batch that sets the inode's size and mtime, so
// a reply to a write means the data and its size are durable together;
// they are removed with the object (last link and last close).

// ChunkSize is the size of one stored piece of file content.
const ChunkSize = 64 << 10

// MaxIO is the most bytes one WriteFile or ReadFile moves.
const MaxIO = 1 << 20

// handleFor returns the handle h under the stripe of its object; it
// returns errRelock if the stripe must be taken first.
func (m *MDT) handleFor(ls *lockSet, h uint64) (*handle, error) {
	m.omu.Lock()
	hd, ok := m.omu.handles[h]
	m.omu.Unlock()
	if !ok {
		return nil, ErrBadHandle
	}
	if !ls.need(hd.key.fid) {
		return nil, ls.relock()
	}
	m.omu.Lock()
	hd, ok = m.omu.handles[h]
	m.omu.Unlock()
	if !ok {
		return nil, ErrBadHandle
	}
	return hd, nil
}

// WriteFile writes data at off through handle h, which must be open for
// writing (EBADF otherwise); with APPEND the data goes at the end of the
// file. It extends the size as needed, sets mtime and ctime, and returns
// when the data is durable. It records nothing: the MTIME due for written
// data is recorded when the handle is closed (as Lustre records the times
// a client sends with its close). h works while the file is unlinked and
// still open.
func (m *MDT) WriteFile(ctx context.Context, c Cred, h uint64, off uint64, data []byte) (Attr, error) {
	name := "handle " + strconv.FormatUint(h, 10)
	cl, err := m.begin(ctx, c)
	if err != nil {
		return Attr{}, pathErr("write", name, err)
	}
	if len(data) > MaxIO {
		return Attr{}, pathErr("write", name, fmt.Errorf("%w: write of %d bytes (max %d)", ErrInvalid, len(data), MaxIO))
	}
	if off > MaxFileSize || uint64(len(data)) > MaxFileSize-off {
		return Attr{}, pathErr("write", name, fmt.Errorf("%w: write past %d bytes", ErrTooBig, uint64(MaxFileSize)))
	}
	var (
		a    Attr
		pend *store.Pending
	)
	err = m.update(func(ls *lockSet) error {
		hd, err := m.handleFor(ls, h)
		if err != nil {
			return err
		}
		if !isWriteOpen(hd.flags) {
			return ErrBadHandle
		}
		ino, err := m.getInode(hd.key.fid)
		if err != nil {
			return err
		}
		if ino.Type != TypeReg {
			return ErrInvalid
		}
		at := off
		if hd.flags&changelog.OpenAppend != 0 {
			at = ino.Size
		}
		t := m.newTxn(cl)
		defer t.close()
		if err := m.writeChunks(t.b, ino.FID, at, data); err != nil {
			return err
		}
		ino.Size = max(ino.Size, at+uint64(len(data)))
		ino.Mtime, ino.Ctime = t.now, t.now
		t.putInode(ino)
		if pend, err = t.apply(); err != nil {
			return err
		}
		m.omu.Lock()
		hd.wrote = true
		m.omu.Unlock()
		a = ino.attr()
		return nil
	})
	if err == nil {
		err = m.wait(pend)
	}
	if err != nil {
		return Attr{}, pathErr("write", name, err)
	}
	return a, nil
}

// MaxFileSize is the largest file size WriteFile and Setattr accept.
const MaxFileSize = 1 << 40

// writeChunks adds to b the chunks of f that data written at off changes.
// The caller holds f's stripe.
func (m *MDT) writeChunks(b *pebble.Batch, f fid.FID, off uint64, data []byte) error {
	for len(data) > 0 {
		ci := off / ChunkSize
		in := int(off % ChunkSize)
		n := min(len(data), ChunkSize-in)
		old, err := m.getChunk(f, ci)
		if err != nil {
			return err
		}
		buf := old
		if len(buf) < in+n {
			buf = make([]byte, in+n)
			copy(buf, old)
		}
		copy(buf[in:], data[:n])
		mustBatch(b.Set(chunkKey(f, ci), buf, nil))
		data = data[n:]
		off += uint64(n)
	}
	return nil
}

// getChunk returns a copy of chunk ci of f (nil if there is none).
func (m *MDT) getChunk(f fid.FID, ci uint64) ([]byte, error) {
	v, closer, err := m.db.Get(chunkKey(f, ci))
	if err == pebble.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIO, err)
	}
	out := append([]byte(nil), v...)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIO, err)
	}
	return out, nil
}

// truncateData adds to t the removal of f's content past size (a file
// shrinking from old to size). Growing needs nothing: missing bytes read
// as zeros.
func (t *txn) truncateData(f fid.FID, old, size uint64) error {
	if size >= old {
		return nil
	}
	first := (size + ChunkSize - 1) / ChunkSize // first chunk wholly past size
	_, hi := chunkRange(f)
	it, err := t.m.db.NewIter(&pebble.IterOptions{LowerBound: chunkKey(f, first), UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	for it.First(); it.Valid(); it.Next() {
		t.del(append([]byte(nil), it.Key()...))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	if rem := size % ChunkSize; rem != 0 {
		ci := size / ChunkSize
		c, err := t.m.getChunk(f, ci)
		if err != nil {
			return err
		}
		if uint64(len(c)) > rem {
			t.set(chunkKey(f, ci), c[:rem])
		}
	}
	return nil
}

// ReadFile returns up to n bytes at off through handle h, which must be
// open for reading (EBADF otherwise). It returns fewer bytes only at the end
// of the file, and none at or past it. Reads record nothing.
func (m *MDT) ReadFile(ctx context.Context, c Cred, h uint64, off uint64, n int) (_ []byte, err error) {
	name := "handle " + strconv.FormatUint(h, 10)
	if _, err := m.begin(ctx, c); err != nil {
		return nil, pathErr("read", name, err)
	}
	if n < 0 || n > MaxIO {
		return nil, pathErr("read", name, fmt.Errorf("%w: read of %d bytes (max %d)", ErrInvalid, n, MaxIO))
	}
	m.omu.Lock()
	hd, ok := m.omu.handles[h]
	m.omu.Unlock()
	if !ok || hd.flags&changelog.OpenRead == 0 {
		return nil, pathErr("read", name, ErrBadHandle)
	}
	// One snapshot: size and chunks from the same committed state.
	m.mu.RLock()
	snap := m.db.NewSnapshot()
	m.mu.RUnlock()
	defer func() {
		if cerr := snap.Close(); cerr != nil && err == nil {
			err = pathErr("read", name, fmt.Errorf("%w: %w", ErrIO, cerr))
		}
	}()
	v, closer, err := snap.Get(inodeKey(hd.key.fid))
	if err != nil {
		return nil, pathErr("read", name, storeErr(err))
	}
	ino, err := decodeInode(hd.key.fid, v)
	if cerr := closer.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%w: %w", ErrIO, cerr)
	}
	if err != nil {
		return nil, pathErr("read", name, err)
	}
	if off >= ino.Size || n == 0 {
		return []byte{}, nil
	}
	end := min(ino.Size, off+uint64(n))
	out := make([]byte, end-off)
	_, hi := chunkRange(hd.key.fid)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: chunkKey(hd.key.fid, off/ChunkSize), UpperBound: hi})
	if err != nil {
		return nil, pathErr("read", name, fmt.Errorf("%w: %w", ErrIO, err))
	}
	for it.First(); it.Valid(); it.Next() {
		base := chunkIndexOf(it.Key()) * ChunkSize
		if base >= end {
			break
		}
		val := it.Value()
		cs, ce := base, base+uint64(len(val))
		lo, hi := max(cs, off), min(ce, end)
		if lo < hi {
			copy(out[lo-off:hi-off], val[lo-cs:hi-cs])
		}
	}
	if err := it.Close(); err != nil {
		return nil, pathErr("read", name, fmt.Errorf("%w: %w", ErrIO, err))
	}
	return out, nil
}

// closeTimes adds to t the MTIME record a handle that wrote data
// owes at its close: the times a Lustre client sends with its close go
// through setattr's record rules (MTIME, else CTIME, by the effective
// mask; none for an object that already had a record in this epoch).
func (t *txn) closeTimes(ino *inode) error {
	parent, err := t.m.firstParent(ino.FID)
	if err != nil {
		return err
	}
	mt := time.Unix(0, ino.Mtime)
	t.setattr(parent, ino, SetattrArgs{Mtime: &mt})
	return nil
}

// Statfs is the MDT's capacity as statfs(2) reports it.
type Statfs struct {
	BlockSize                    uint32
	Blocks, BlocksFree, BlocksAv uint64
	Files, FilesFree             uint64
	NameMax                      uint32
}

// Statfs reports the capacity of the file system holding the MDT's store.
func (m *MDT) Statfs(ctx context.Context, c Cred) (Statfs, error) {
	if _, err := m.begin(ctx, c); err != nil {
		return Statfs{}, pathErr("statfs", m.dev, err)
	}
	du, err := m.opts.FS.GetDiskUsage(m.dir)
	if err != nil {
		return Statfs{}, pathErr("statfs", m.dev, fmt.Errorf("%w: %w", ErrIO, err))
	}
	const bs = 4096
	out := Statfs{BlockSize: bs, Blocks: du.TotalBytes / bs, BlocksFree: (du.TotalBytes - du.UsedBytes) / bs,
		BlocksAv: du.AvailBytes / bs, NameMax: MaxName}
	// Inode counts only exist for a store on a real file system.
	var st unix.Statfs_t
	if unix.Statfs(m.dir, &st) == nil {
		out.Files, out.FilesFree = st.Files, st.Ffree
	}
	return out, nil
}

// ReaddirPage lists up to limit entries of directory p whose names sort
// after after (byte order; "" starts at the beginning) and reports whether
// more follow. It reads only the page from the store, so listing a
// directory of N entries in pages costs O(N) overall. It needs read
// permission on p.
func (m *MDT) ReaddirPage(ctx context.Context, c Cred, p, after string, limit int) (_ []DirEntry, _ bool, err error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return nil, false, pathErr("readdir", p, err)
	}
	if limit <= 0 {
		return nil, false, pathErr("readdir", p, fmt.Errorf("%w: page of %d entries", ErrInvalid, limit))
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.resolve(&cl.id, p, resolveOpts{existing: true})
	if err != nil {
		return nil, false, pathErr("readdir", p, err)
	}
	if r.obj.Type != TypeDir {
		return nil, false, pathErr("readdir", p, ErrNotDir)
	}
	if !permitted(&cl.id, r.obj, mayRead) {
		return nil, false, pathErr("readdir", p, ErrPermission)
	}
	lo, hi := direntRange(r.obj.FID)
	if after != "" {
		lo = append(direntKey(r.obj.FID, after), 0) // the next key after it
	}
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, pathErr("readdir", p, fmt.Errorf("%w: %w", ErrIO, err))
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = pathErr("readdir", p, fmt.Errorf("%w: %w", ErrIO, cerr))
		}
	}()
	var out []DirEntry
	for it.First(); it.Valid(); it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		f, t, err := decodeDirent(it.Value())
		if err != nil {
			return nil, false, pathErr("readdir", p, err)
		}
		out = append(out, DirEntry{Name: direntName(it.Key()), FID: f, Type: t})
	}
	if err := it.Error(); err != nil {
		return nil, false, pathErr("readdir", p, fmt.Errorf("%w: %w", ErrIO, err))
	}
	return out, false, nil
}
