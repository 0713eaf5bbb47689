// Package syncfs wraps a Pebble vfs.FS so that every sync of a file (WAL,
// sstable, manifest, directory) is reported: how many fsyncs a commit path
// really pays for, and how long they take. mdtd turns the reports into
// metrics; mdbench counts fsyncs per operation.
package syncfs

import (
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// New returns fs with every Sync, SyncData and SyncTo of the files it opens
// reported to observe, with the sync's duration.
func New(fs vfs.FS, observe func(time.Duration)) vfs.FS {
	return &syncFS{FS: fs, observe: observe}
}

type syncFS struct {
	vfs.FS
	observe func(time.Duration)
}

func (fs *syncFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil || f == nil {
		return f, err
	}
	return &syncFile{File: f, observe: fs.observe}, nil
}

func (fs *syncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, c))
}

func (fs *syncFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.Open(name, opts...))
}

func (fs *syncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs *syncFS) OpenDir(name string) (vfs.File, error) { return fs.wrap(fs.FS.OpenDir(name)) }

func (fs *syncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, c))
}

// Unwrap returns the wrapped FS.
func (fs *syncFS) Unwrap() vfs.FS { return fs.FS }

type syncFile struct {
	vfs.File
	observe func(time.Duration)
}

func (f *syncFile) done(start time.Time) { f.observe(time.Since(start)) }

func (f *syncFile) Sync() error {
	defer f.done(time.Now())
	return f.File.Sync()
}

func (f *syncFile) SyncData() error {
	defer f.done(time.Now())
	return f.File.SyncData()
}

func (f *syncFile) SyncTo(length int64) (bool, error) {
	defer f.done(time.Now())
	return f.File.SyncTo(length)
}
