package store

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fidlog/fidlog/changelog"
)

// Checkpoints (see doc.go): the checkpointer goroutine signs (current
// index, chain head) every CheckpointRecords records or CheckpointInterval,
// outside the log's lock, and stores the checkpoint in its own keyspace at
// position current+1, the record it precedes in a stream. Positions are in
// the records' index space, so a purge deletes the checkpoints before the
// new first record with one more DeleteRange in the same batch.

// ErrNoSigningKey: the log has no signing key (checkpoints are off).
var ErrNoSigningKey = errors.New("changelog: no checkpoint signing key")

type ckState struct {
	Seq    uint64          `json:"seq"`
	Index  changelog.Index `json:"index"`
	Signer string          `json:"signer"`
}

// loadKey loads the signing key: Options.SigningKey, or the key file,
// created on first start (mode 0600). A rotation interrupted between its
// checkpoint and the key file's replacement is finished here.
func (l *Log) loadKey() error {
	if l.opts.NoChain {
		return nil
	}
	var st ckState
	if _, err := l.getJSON(l.keys.meta("checkpoint"), &st); err != nil {
		return err
	}
	l.mu.ckSeq, l.mu.ckIndex = st.Seq, st.Index
	l.ckDurable.Store(st.Seq)
	if l.opts.SigningKey != nil {
		l.key = l.opts.SigningKey
		l.hasKey.Store(true)
		return nil
	}
	path := l.opts.KeyFile
	if path == "" {
		return nil
	}
	if next, err := readKeyFile(path + ".new"); err == nil {
		if changelog.FormatPublicKey(next.Public().(ed25519.PublicKey)) == st.Signer {
			if err := os.Rename(path+".new", path); err != nil {
				return err
			}
			if err := syncDir(filepath.Dir(path)); err != nil {
				return err
			}
			l.opts.Logger.Info("changelog_key_rotation_finished", "device", l.opts.Device)
		} else if err := os.Remove(path + ".new"); err != nil {
			return err
		}
	}
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, key, err = ed25519.GenerateKey(rand.Reader)
		if err == nil {
			err = writeKeyFile(path, key)
		}
		if err == nil {
			l.opts.Logger.Info("changelog_key_created", "device", l.opts.Device, "file", path,
				"pubkey", changelog.FormatPublicKey(key.Public().(ed25519.PublicKey)))
		}
	}
	if err != nil {
		return fmt.Errorf("changelog signing key %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		l.opts.Logger.Warn("changelog_key_file_mode", "file", path, "mode", fi.Mode().Perm().String())
	}
	if pub := changelog.FormatPublicKey(key.Public().(ed25519.PublicKey)); st.Signer != "" && st.Signer != pub {
		// Replaced out of band: later checkpoints will not verify
		// against the old key, which is what a verifier should see.
		l.opts.Logger.Warn("changelog_key_replaced", "device", l.opts.Device, "was", st.Signer, "now", pub)
	}
	l.key = key
	l.hasKey.Store(true)
	return nil
}

func readKeyFile(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY file")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an ed25519 key")
	}
	return ek, nil
}

// writeKeyFile creates path (mode 0600, never over an existing file) with
// key as PKCS#8 PEM, and syncs it and its directory.
func writeKeyFile(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// PublicKey returns the checkpoint signing key's public half, nil when
// checkpoints are off.
func (l *Log) PublicKey() ed25519.PublicKey {
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	if l.key == nil {
		return nil
	}
	return l.key.Public().(ed25519.PublicKey)
}

// CheckpointIndex returns the index the last checkpoint covers (0: none).
func (l *Log) CheckpointIndex() changelog.Index {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.ckIndex
}

// Checkpoint writes a periodic checkpoint now if records were added since
// the last one, and makes it durable. It returns the checkpoint, or nil if
// there was nothing new to sign.
func (l *Log) Checkpoint() (*changelog.Checkpoint, error) {
	return l.checkpoint(changelog.CheckpointPeriodic, nil, nil)
}

// RotateKey replaces the signing key: a rotation checkpoint signed by the
// old key names the new one, then the new key replaces the key file. A
// crash between the two is finished at the next Open. It returns the new
// public key.
func (l *Log) RotateKey() (ed25519.PublicKey, error) {
	if l.opts.KeyFile == "" || l.PublicKey() == nil {
		return nil, ErrNoSigningKey
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmp := l.opts.KeyFile + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: removing a stale new key: %v", changelog.ErrIO, err)
	}
	if err := writeKeyFile(tmp, key); err != nil {
		return nil, fmt.Errorf("%w: writing the new key: %v", changelog.ErrIO, err)
	}
	if _, err := l.checkpoint(changelog.CheckpointRotation, pub, func() error {
		if err := os.Rename(tmp, l.opts.KeyFile); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(l.opts.KeyFile)); err != nil {
			return err
		}
		l.key = key
		return nil
	}); err != nil {
		return nil, err
	}
	l.opts.Logger.Info("changelog_key_rotated", "device", l.opts.Device, "pubkey", changelog.FormatPublicKey(pub))
	return pub, nil
}

// checkpoint signs and stores one checkpoint. ckMu serialises checkpoints;
// the log's lock is held only to read the head and to commit, never while
// signing or syncing. after runs once the checkpoint is durable.
func (l *Log) checkpoint(kind changelog.CheckpointKind, next ed25519.PublicKey, after func() error) (*changelog.Checkpoint, error) {
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	if l.key == nil {
		return nil, ErrNoSigningKey
	}
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	c := &changelog.Checkpoint{Seq: l.mu.ckSeq + 1, Index: l.mu.current, Hash: l.mu.head,
		Time: l.opts.Clock(), Kind: kind, Device: l.opts.Device, Next: next}
	fresh := l.mu.current != l.mu.ckIndex || l.mu.ckSeq == 0
	l.mu.Unlock()
	if kind == changelog.CheckpointPeriodic && !fresh {
		return nil, nil
	}
	c.Sign(l.key)
	signer := changelog.FormatPublicKey(c.Signer)
	if next != nil {
		signer = changelog.FormatPublicKey(next)
	}

	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	c.Position = l.mu.current + 1
	b := l.db.NewBatch()
	defer closeBatch(b)
	err := b.Set(l.keys.checkpoint(c.Position, c.Seq), c.AppendEncode(nil), nil)
	if err == nil {
		err = l.putJSON(b, l.keys.meta("checkpoint"), ckState{Seq: c.Seq, Index: c.Index, Signer: signer})
	}
	var seq uint64
	if err == nil {
		seq, err = l.commitLocked(b)
	}
	if err == nil {
		l.mu.ckSeq, l.mu.ckIndex = c.Seq, c.Index
		if f := l.opts.Events.Checkpointed; f != nil {
			f(c)
		}
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := l.syncTo(seq); err != nil {
		return nil, err
	}
	l.ckDurable.Store(c.Seq)
	if after != nil {
		if err := after(); err != nil {
			return nil, fmt.Errorf("%w: %v", changelog.ErrIO, err)
		}
	}
	return c, nil
}

// kickCheckpointLocked wakes the checkpointer once CheckpointRecords
// records were added since the last checkpoint. Called by Apply.
func (l *Log) kickCheckpointLocked() {
	n := l.mu.settings.CheckpointRecords
	if n == 0 || !l.hasKey.Load() || uint64(l.mu.current-l.mu.ckIndex) < n {
		return
	}
	select {
	case l.ckKick <- struct{}{}:
	default:
	}
}

// checkpointLoop writes a checkpoint when kicked (N records) or every
// CheckpointInterval while records are added.
func (l *Log) checkpointLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		l.mu.Lock()
		iv := l.mu.settings.CheckpointInterval
		l.mu.Unlock()
		if iv <= 0 {
			iv = time.Hour
		}
		t.Reset(iv)
		select {
		case <-l.stop:
			return
		case <-l.ckKick:
		case <-t.C:
			l.mu.Lock()
			off := l.mu.settings.CheckpointInterval <= 0
			l.mu.Unlock()
			if off {
				continue
			}
		}
		if _, err := l.Checkpoint(); err != nil && !errors.Is(err, changelog.ErrClosed) {
			l.opts.Logger.Error("changelog_checkpoint_failed", "device", l.opts.Device, "err", err)
		}
	}
}

// ckIter delivers the checkpoints positioned in [start, end] in order.
type ckIter struct {
	l      *Log
	it     *pebble.Iterator
	valid  bool
	maxSeq uint64 // if not 0, stop before a checkpoint with a higher seq
}

func (l *Log) newCkIter(it *pebble.Iterator, start, end changelog.Index) *ckIter {
	it.SetBounds(l.keys.checkpoint(start, 0), l.keys.checkpoint(end+1, 0))
	return &ckIter{l: l, it: it, valid: it.First()}
}

// upTo delivers the checkpoints positioned at or before idx.
func (c *ckIter) upTo(idx changelog.Index, fn func(Entry) error) error {
	for c.valid {
		pos := c.l.keys.checkpointPosition(c.it.Key())
		if pos > idx {
			return nil
		}
		if k := c.it.Key(); c.maxSeq != 0 && binary.BigEndian.Uint64(k[len(k)-8:]) > c.maxSeq {
			return nil
		}
		if err := fn(Entry{Kind: changelog.ItemCheckpoint, Index: pos, Raw: c.it.Value()}); err != nil {
			return err
		}
		c.valid = c.it.Next()
	}
	return c.it.Error()
}

// DurableCheckpoint returns the sequence number of the last durable
// checkpoint (0: none yet).
func (l *Log) DurableCheckpoint() uint64 { return l.ckDurable.Load() }

// CheckpointsAt calls fn with the durable checkpoints positioned at pos
// (just before record pos), in sequence order; with anchor, first with the
// chain's anchor before pos (the hash of record pos-1, or of the last
// purged record). A follow stream idle at the log's end (pos = durable+1)
// sends them before the record they precede exists, so that a quiet log's
// last records are signed downstream too.
func (l *Log) CheckpointsAt(pos changelog.Index, anchor bool, fn func(Entry) error) (err error) {
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	first := l.mu.purged + 1
	a := changelog.Anchor{Index: l.mu.purged, Hash: l.mu.anchor}
	// Under the lock, so that no purge falls between the anchor and the
	// iterator's view.
	it, err := l.db.NewIter(nil)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if anchor {
		if pos > first {
			it.SetBounds(l.keys.record(pos-1), l.keys.record(pos))
			if !it.First() {
				return errors.Join(changelog.ErrCorrupt, fmt.Errorf("record %d is missing", pos-1))
			}
			h, _ := changelog.StoredHash(it.Value())
			a = changelog.Anchor{Index: pos - 1, Hash: h}
		}
		if err := fn(Entry{Kind: changelog.ItemAnchor, Index: a.Index, Raw: changelog.AppendAnchor(nil, a)}); err != nil {
			return err
		}
	}
	cks := l.newCkIter(it, pos, pos)
	cks.maxSeq = l.ckDurable.Load()
	if err := cks.upTo(pos, fn); err != nil && !errors.Is(err, errStop) {
		return err
	}
	return nil
}
