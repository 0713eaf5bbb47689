package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/mdt"
)

var discard = slog.New(slog.DiscardHandler)

// rootCred is the identity of in-process benchmark clients.
var rootCred = mdt.Cred{UID: 0, GID: 0, JobID: "mdbench", NID: "127.0.0.1@tcp"}

// clientDir and fileName name the per-client directories and files; the
// raw baseline copies the key and value sizes these produce.
func clientDir(c int) string { return "c" + pad(uint64(c), 4) }

func filePath(c int, n uint64) string { return clientDir(c) + "/f" + pad(n, 10) }

func pad(v uint64, w int) string {
	s := strconv.FormatUint(v, 10)
	for len(s) < w {
		s = "0" + s
	}
	return s
}

// mdtEnv is an MDT on a fresh directory with its fsyncs counted.
type mdtEnv struct {
	dir     string
	m       *mdt.MDT
	syncs   atomic.Int64
	evicted atomic.Int64
	lsm     string // LSM shape, kept when a purge did not reclaim space
}

type mdtConfig struct {
	changelogOn bool
	settings    *store.Settings
	// noChain writes records without the hash chain (and so without
	// signed checkpoints): the baseline of T2c. Otherwise the MDT runs as
	// mdtd does, with the chain and a checkpoint key in its directory.
	noChain bool
}

func openMDT(dir string, cfg mdtConfig) (*mdtEnv, error) {
	e := &mdtEnv{dir: dir}
	m, err := mdt.Open(dir, &mdt.Options{
		FS:                countingFS(vfs.Default, &e.syncs),
		Logger:            discard,
		ChangelogDefaults: cfg.settings,
		ChangelogNoChain:  cfg.noChain,
		ChangelogKeyFile:  keyFile(dir, cfg.noChain),
		ChangelogEvents: store.EventListener{
			UserEvicted: func(changelog.User, string, uint64) { e.evicted.Add(1) },
		},
	})
	if err != nil {
		return nil, err
	}
	e.m = m
	if cfg.changelogOn && len(m.Log().Users()) == 0 {
		if _, err := m.Log().Register(store.RegisterOptions{Name: "reader"}); err != nil {
			m.Close()
			return nil, err
		}
	}
	return e, nil
}

// keyFile is the checkpoint key of an MDT in dir, as mdtd keeps it; none
// without the chain.
func keyFile(dir string, noChain bool) string {
	if noChain {
		return ""
	}
	return filepath.Join(dir, "changelog.key")
}

// mkdirs creates the directories of clients 0..n-1.
func (e *mdtEnv) mkdirs(ctx context.Context, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for c := range n {
		wg.Go(func() {
			if _, err := e.m.Mkdir(ctx, rootCred, clientDir(c), 0o755); err != nil {
				errs[c] = err
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *mdtEnv) close() error {
	err := e.m.Close()
	if rerr := os.RemoveAll(e.dir); err == nil {
		err = rerr
	}
	return err
}

// createOp is one exclusive create through the metadata server.
func (e *mdtEnv) createOp(ctx context.Context, c int, n uint64) error {
	_, err := e.m.Create(ctx, rootCred, filePath(c, n), 0o644, true)
	return err
}

// batchShape is what one create commits: the keys and values of its
// batch (namespace entries, inodes, link, record), captured from a real
// MDT. The raw baseline commits batches of the same sizes and values.
type batchShape struct {
	kvs   []kv
	bytes int
	// opts are the Pebble options the MDT uses, for the raw baseline.
	opts *pebble.Options
}

type kv struct{ k, v []byte }

// captureShape opens a scratch MDT with one changelog user, creates one
// file and diffs the DB: every key that is new or changed is part of the
// create's batch.
func captureShape(dir string) (*batchShape, error) {
	var opts *pebble.Options
	m, err := mdt.Open(dir, &mdt.Options{
		Logger: discard,
		PebbleOptions: func(o *pebble.Options) {
			opts = o.Clone()
		},
	})
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer m.Close()
	ctx := context.Background()
	if _, err := m.Log().Register(store.RegisterOptions{}); err != nil {
		return nil, err
	}
	if _, err := m.Mkdir(ctx, rootCred, clientDir(0), 0o755); err != nil {
		return nil, err
	}
	// One create first so that rare one-off writes (FID sequence) are
	// not part of the shape.
	if err := (&mdtEnv{m: m}).createOp(ctx, 0, 0); err != nil {
		return nil, err
	}
	before, err := snapshot(m.DB())
	if err != nil {
		return nil, err
	}
	if err := (&mdtEnv{m: m}).createOp(ctx, 0, 1); err != nil {
		return nil, err
	}
	after, err := snapshot(m.DB())
	if err != nil {
		return nil, err
	}
	s := &batchShape{opts: opts}
	for _, p := range after {
		old, ok := lookupKV(before, p.k)
		if ok && bytes.Equal(old, p.v) {
			continue
		}
		s.kvs = append(s.kvs, p)
		s.bytes += len(p.k) + len(p.v)
	}
	if len(s.kvs) == 0 || opts == nil {
		return nil, fmt.Errorf("capturing the batch of a create: nothing changed")
	}
	hasRecord := false
	for _, p := range s.kvs {
		if len(p.k) >= 2 && p.k[0] == 'c' && p.k[1] == 'r' {
			hasRecord = true
		}
	}
	if !hasRecord {
		return nil, fmt.Errorf("capturing the batch of a create: no changelog record among %d keys", len(s.kvs))
	}
	return s, nil
}

func snapshot(db *pebble.DB) ([]kv, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	var out []kv
	for it.First(); it.Valid(); it.Next() {
		out = append(out, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	return out, it.Close()
}

func lookupKV(kvs []kv, k []byte) ([]byte, bool) {
	for _, p := range kvs {
		if bytes.Equal(p.k, k) {
			return p.v, true
		}
	}
	return nil, false
}

// rawEnv is a plain Pebble DB with the MDT's options.
type rawEnv struct {
	dir   string
	db    *pebble.DB
	shape *batchShape
	syncs atomic.Int64
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func openRaw(dir string, shape *batchShape) (*rawEnv, error) {
	e := &rawEnv{dir: dir, shape: shape}
	o := shape.opts.Clone()
	o.FS = countingFS(vfs.Default, &e.syncs)
	o.Logger = quietLogger{}
	o.EventListener = nil
	db, err := pebble.Open(dir, o)
	if err != nil {
		return nil, err
	}
	e.db = db
	return e, nil
}

// commitOp commits one synced batch of the create's shape with keys made
// unique per (client, n).
func (e *rawEnv) commitOp(_ context.Context, c int, n uint64) error {
	b := e.db.NewBatch()
	defer b.Close()
	for i, p := range e.shape.kvs {
		k := make([]byte, max(len(p.k), 10))
		copy(k, p.k)
		binary.BigEndian.PutUint64(k[len(k)-8:], uint64(i)<<56|uint64(c)<<40|n)
		if err := b.Set(k, p.v, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

func (e *rawEnv) close() error {
	err := e.db.Close()
	if rerr := os.RemoveAll(e.dir); err == nil {
		err = rerr
	}
	return err
}
