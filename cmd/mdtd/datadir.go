package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dataDir is the data directory as a start found it: what it has to undo
// if the start fails before serving.
type dataDir struct {
	path string
	// created is the topmost directory this start created ("" if dir
	// existed).
	created string
	// wasEmpty: dir existed and held nothing.
	wasEmpty bool
}

// prepareDataDir creates dir (mode 0700, with missing parents) and
// remembers what it made.
func prepareDataDir(dir string) (*dataDir, error) {
	d := &dataDir{path: dir}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for p := abs; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("data directory '%s': %w", dir, err)
		}
		d.created = p
		if p == filepath.Dir(p) {
			break
		}
	}
	if d.created == "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("data directory '%s': %w", dir, err)
		}
		d.wasEmpty = len(ents) == 0
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory '%s': %w", dir, err)
	}
	return d, nil
}

// undo removes what a failed start left: the directories it created, or
// the contents of a directory that was empty.
func (d *dataDir) undo() {
	switch {
	case d.created != "":
		_ = os.RemoveAll(d.created)
	case d.wasEmpty:
		ents, _ := os.ReadDir(d.path)
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(d.path, e.Name()))
		}
	}
}

// HeldError reports a data directory another process holds (Pebble's
// LOCK file is locked).
type HeldError struct {
	Dir string
	PID int // 0: unknown
}

func (e *HeldError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data directory '%s' is in use by another mdtd (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("data directory '%s' is in use by another process", e.Dir)
}

// lockHolder asks who holds the POSIX record lock Pebble takes on
// <dir>/LOCK. It returns nil if nobody does (or the file is not there).
func lockHolder(dir string) *HeldError {
	f, err := os.Open(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // opened read-only to ask about the lock
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
		return nil
	}
	return &HeldError{Dir: dir, PID: int(lk.Pid)}
}
