package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// fileSink writes consolidated, rotated files into one directory:
// <prefix>-<UTC time>.<ext>, names that sort by time. Only the newest file
// is ever written; it is fsynced at each commit. Closed files are
// optionally gzipped (.<ext>.gz, written aside and renamed, so a .gz file
// is always whole). On open it truncates a half-written last line and
// reads the files back, newest first, to learn the last record of each
// device they hold; it then starts a new file.
type fileSink struct {
	chainOpt
	raw     string
	dir     string
	prefix  string
	fmt     *format
	rotate  time.Duration
	maxSize int64
	gzip    bool
	logger  *slog.Logger

	f         *os.File
	w         *bufio.Writer
	name      string // current file's base name
	lastName  string // newest name ever used in dir
	opened    time.Time
	size      int64 // bytes written to f, buffered included
	committed int64 // bytes of f known durable
	newFile   bool  // f was created since the last commit (dir needs a sync)

	gzq  chan string
	gzwg sync.WaitGroup

	ckHave     map[string]uint64 // last checkpoint of each device read back
	anchorHave map[string]bool   // devices whose anchor was read back
}

func (s *fileSink) heldChain() (map[string]uint64, map[string]bool) { return s.ckHave, s.anchorHave }

// Defaults of the file sink.
const (
	defaultRotate  = time.Hour
	defaultMaxSize = 256 << 20
)

func newFileSink(raw string, u *url.URL, q *query, env sinkEnv) (*fileSink, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, configErrorf("invalid sink '%s': file:// takes an absolute path (file:///dir), not host '%s'", raw, u.Host)
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) {
		return nil, configErrorf("invalid sink '%s': file:// needs an absolute directory (file:///var/log/fidlog)", raw)
	}
	s := &fileSink{
		raw:     raw,
		dir:     filepath.Clean(u.Path),
		prefix:  q.str("prefix", "fidlog"),
		rotate:  q.duration("rotate", defaultRotate),
		maxSize: q.size("size", defaultMaxSize),
		gzip:    q.bool("gzip", false),
		logger:  env.logger,
	}
	if s.prefix == "" || strings.ContainsAny(s.prefix, "/\x00") {
		q.errs = append(q.errs, fmt.Sprintf("prefix=%s is not a file name prefix", s.prefix))
	}
	if s.rotate == 0 {
		q.errs = append(q.errs, "rotate=0: give a rotation interval (like 15m)")
	}
	return s, nil
}

func (s *fileSink) label() string   { return "file://" + s.dir }
func (s *fileSink) format() *format { return s.fmt }

func (s *fileSink) setFormat(f *format) { s.fmt = f }

// files lists the sink's files in dir, oldest first.
func (s *fileSink) files() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, s.prefix+"-") {
			continue
		}
		if strings.HasSuffix(n, s.fmt.ext) || strings.HasSuffix(n, s.fmt.ext+".gz") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *fileSink) open(ctx context.Context, devs []string) (map[string]changelog.Index, error) {
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	// Leftovers of an interrupted gzip: the .tmp is partial, the source
	// whole; a finished .gz makes its source redundant.
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, s.prefix+"-") && strings.HasSuffix(n, ".gz.tmp") {
			_ = os.Remove(filepath.Join(s.dir, n))
		}
	}
	names, err := s.files()
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	var live []string
	for _, n := range names {
		if !strings.HasSuffix(n, ".gz") && set[n+".gz"] {
			_ = os.Remove(filepath.Join(s.dir, n))
			continue
		}
		live = append(live, n)
	}
	names = live
	if len(names) > 0 {
		s.lastName = strings.TrimSuffix(names[len(names)-1], ".gz")
		if newest := names[len(names)-1]; !strings.HasSuffix(newest, ".gz") {
			if err := truncatePartialLine(filepath.Join(s.dir, newest)); err != nil {
				return nil, fmt.Errorf("file sink: %w", err)
			}
		}
	}
	have := map[string]changelog.Index{}
	s.ckHave, s.anchorHave = map[string]uint64{}, map[string]bool{}
	want, wantCk := map[string]bool{}, map[string]bool{}
	for _, d := range devs {
		want[d], wantCk[d] = true, true
	}
	for i := len(names) - 1; i >= 0 && len(want) > 0; i-- {
		// Checkpoints that matter follow the last record held: they are in
		// the files read until it is found (newest first).
		found, cks, err := s.readBack(filepath.Join(s.dir, names[i]), s.anchorHave)
		if err != nil {
			return nil, fmt.Errorf("file sink: reading back %s: %w", names[i], err)
		}
		for d, idx := range found {
			if want[d] {
				have[d] = idx
				delete(want, d)
			}
		}
		for d, seq := range cks {
			if wantCk[d] {
				s.ckHave[d] = seq
				delete(wantCk, d)
			}
		}
	}
	s.gzq = make(chan string, 64)
	s.gzwg.Go(s.gzipLoop)
	if s.gzip {
		for _, n := range names {
			if !strings.HasSuffix(n, ".gz") {
				s.gzq <- n
			}
		}
	}
	return have, nil
}

// readBack returns the highest index of each device in file p, and the
// highest checkpoint sequence number; it sets anchors[dev] for the anchors
// it holds.
func (s *fileSink) readBack(p string, anchors map[string]bool) (map[string]changelog.Index, map[string]uint64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(p, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, err
		}
		defer zr.Close()
		r = zr
	}
	out := map[string]changelog.Index{}
	cks := map[string]uint64{}
	br := bufio.NewReaderSize(r, 256<<10)
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			n++
			l := bytes.TrimSuffix(line, []byte("\n"))
			dev, idx, perr := s.fmt.parse(l)
			if errors.Is(perr, errChainLine) {
				var seq uint64
				dev, seq, perr = parseChainLine(l)
				if seq == 0 {
					anchors[dev] = true
				} else {
					cks[dev] = max(cks[dev], seq)
				}
			}
			if perr != nil {
				return nil, nil, fmt.Errorf("line %d is not a %s line (a sink directory holds one format)", n, s.fmt.name)
			}
			if idx > 0 {
				out[dev] = max(out[dev], idx)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, cks, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// truncatePartialLine cuts p after its last newline and syncs it.
func truncatePartialLine(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	end := st.Size()
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end != st.Size() {
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	return f.Sync()
}

// fileTimeLayout is the time in file names: sortable, UTC.
const fileTimeLayout = "20060102T150405.000000000Z"

func (s *fileSink) startFile() error {
	now := time.Now().UTC()
	name := s.prefix + "-" + now.Format(fileTimeLayout) + s.fmt.ext
	for name <= s.lastName { // a clock that went back: keep names sorting
		now = now.Add(time.Millisecond)
		name = s.prefix + "-" + now.Format(fileTimeLayout) + s.fmt.ext
	}
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	s.f, s.name, s.lastName, s.opened = f, name, name, now
	s.size, s.committed, s.newFile = 0, 0, true
	if s.w == nil {
		s.w = bufio.NewWriterSize(f, 256<<10)
	} else {
		s.w.Reset(f)
	}
	return nil
}

func (s *fileSink) write(_ context.Context, _ *event, line []byte) error {
	if s.f == nil {
		if err := s.startFile(); err != nil {
			return err
		}
	}
	n, err := s.w.Write(line)
	s.size += int64(n)
	if err != nil {
		return err
	}
	err = s.w.WriteByte('\n')
	if err == nil {
		s.size++
	}
	return err
}

func (s *fileSink) commit(context.Context) error {
	if s.f == nil {
		return nil
	}
	if s.size != s.committed {
		if err := s.w.Flush(); err != nil {
			return err
		}
		if err := s.f.Sync(); err != nil {
			return err
		}
		s.committed = s.size
	}
	if s.newFile {
		if err := syncDir(s.dir); err != nil {
			return err
		}
		s.newFile = false
	}
	if s.size >= s.maxSize || time.Since(s.opened) >= s.rotate {
		return s.closeFile()
	}
	return nil
}

// closeFile closes the (committed) current file and queues it for gzip.
func (s *fileSink) closeFile() error {
	err := s.f.Close()
	s.f = nil
	if err == nil && s.gzip {
		s.gzq <- s.name
	}
	return err
}

func (s *fileSink) reset() {
	if s.f == nil {
		return
	}
	s.w.Reset(s.f)
	if err := s.f.Truncate(s.committed); err != nil {
		s.logger.Warn("file_sink_truncate_failed", "file", s.name, "err", err)
	}
	// Continue in a new file: the old one may be broken.
	_ = s.f.Close()
	s.f = nil
	if s.committed == 0 {
		_ = os.Remove(filepath.Join(s.dir, s.name))
	} else if s.gzip {
		s.gzq <- s.name
	}
}

func (s *fileSink) close() error {
	var err error
	if s.f != nil {
		err = s.closeFile()
	}
	if s.gzq != nil {
		close(s.gzq)
		s.gzwg.Wait()
		s.gzq = nil
	}
	return err
}

func (s *fileSink) gzipLoop() {
	for n := range s.gzq {
		if err := gzipFile(s.dir, n); err != nil {
			s.logger.Warn("file_sink_gzip_failed", "file", n, "err", err)
		}
	}
}

// gzipFile compresses dir/name into dir/name.gz (aside, then renamed and
// synced) and removes the original.
func gzipFile(dir, name string) error {
	src, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := filepath.Join(dir, name+".gz.tmp")
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(dst)
	zw.Name = name
	_, err = io.Copy(zw, src)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name+".gz"))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Remove(filepath.Join(dir, name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// keepsLines: write copies the line into the file's buffer.
func (s *fileSink) keepsLines() bool { return false }
