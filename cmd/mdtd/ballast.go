package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The emergency ballast. When the data directory's file system fills (a
// consumer that never clears, other files), the WAL write fails and mdtd
// exits (74); to start again Pebble needs room to flush the log it
// recovers, and the operator needs a running mdtd to deregister or clear
// the consumer that holds the records. So mdtd keeps a file of
// --ballast-size bytes allocated in the data directory and deletes it at a
// start that finds less free space than that, as CockroachDB's
// EMERGENCY_BALLAST does; it allocates it again once twice its size is
// free.
const ballastName = "EMERGENCY_BALLAST"

// ballastCheckInterval is how often a serving mdtd tries to allocate a
// missing ballast.
const ballastCheckInterval = time.Minute

// DefaultBallastSize is --ballast-size's default (bytes): room for the
// recovered 32 MiB memtable's flush and a new WAL.
const DefaultBallastSize = 128 << 20

// ballast is the ballast of one data directory.
type ballast struct {
	path string
	size int64 // 0: none kept
	log  *slog.Logger
	// failed: allocating it failed once (logged then; later failures of
	// the minute's retries are logged at debug level only).
	failed bool
}

func newBallast(dir string, size int64, log *slog.Logger) *ballast {
	return &ballast{path: filepath.Join(dir, ballastName), size: size, log: log}
}

// free returns the bytes available to mdtd on the ballast's file system.
func (b *ballast) free() (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(b.path), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// low reports less than twice the ballast's size free: the changelog's
// space GC then evicts the consumer that lags most if the records are
// what fills the disk (mdt.Options.ChangelogDiskLow). Always false
// without a ballast.
func (b *ballast) low() bool {
	if b.size == 0 {
		return false
	}
	free, err := b.free()
	return err == nil && free < 2*b.size
}

// atStart deletes the ballast if less than its size is free (or no
// ballast is wanted), else makes sure it exists.
func (b *ballast) atStart() {
	fi, err := os.Stat(b.path)
	exists := err == nil
	if exists && b.size == 0 {
		if err := os.Remove(b.path); err == nil {
			b.log.Info("ballast_removed", "path", b.path, "reason", "--ballast-size 0")
		}
		return
	}
	if exists {
		free, err := b.free()
		if err == nil && free < b.size {
			if err := os.Remove(b.path); err != nil {
				b.log.Error("ballast_remove_failed", "path", b.path, "err", err)
				return
			}
			b.log.Warn("disk_full_ballast_removed", "path", b.path, "freed", fi.Size(), "free_before", free,
				"action", "the disk was nearly full: the ballast was deleted so that mdtd can start; find the changelog consumer that holds the records (lctl get_param mdd.*.changelog_users) and clear or deregister it, or free space; the ballast comes back once twice its size is free")
			return
		}
	}
	b.ensure()
}

// ensure allocates a missing ballast if twice its size is free.
func (b *ballast) ensure() {
	if b.size == 0 {
		return
	}
	if _, err := os.Stat(b.path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return
	}
	free, err := b.free()
	if err != nil {
		b.createFailed(err)
		return
	}
	if free < 2*b.size {
		return
	}
	tmp := b.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		b.createFailed(err)
		return
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, b.size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		// A file system without fallocate: blocks written are blocks
		// allocated too.
		err = writeZeros(f, b.size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, b.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		b.createFailed(err)
		return
	}
	b.failed = false
	b.log.Info("ballast_created", "path", b.path, "bytes", b.size)
}

// createFailed logs a failed allocation: a warning the first time, then
// at debug level, so that the minute's retries do not fill the log.
func (b *ballast) createFailed(err error) {
	lvl := slog.LevelWarn
	if b.failed {
		lvl = slog.LevelDebug
	}
	b.failed = true
	b.log.Log(context.Background(), lvl, "ballast_create_failed", "path", b.path, "err", err)
}

// writeZeros writes n zero bytes to f from its start.
func writeZeros(f *os.File, n int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), n-off)], off); err != nil {
			return err
		}
	}
	return nil
}

// keep allocates the ballast again, while ctx lasts, once it can.
func (b *ballast) keep(ctx context.Context) {
	if b.size == 0 {
		return
	}
	t := time.NewTicker(ballastCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.ensure()
		}
	}
}

// parseSize parses a size in bytes with an optional binary suffix (K, M,
// G, T; KiB, MiB, ... accepted too).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	up := strings.ToUpper(t)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}} {
		if strings.HasSuffix(up, u.suf) {
			mult, t = u.m, t[:len(t)-len(u.suf)]
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size '%s': want bytes, optionally with K, M, G or T (binary), e.g. 128M; 0 for none", s)
	}
	return n * mult, nil
}
