package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/cmd/internal/syncfs"
)

// countingFS counts the syncs of the files Pebble opens (WAL, sstables,
// manifest): the fsyncs a commit path pays for.
func countingFS(fs vfs.FS, syncs *atomic.Int64) vfs.FS {
	return syncfs.New(fs, func(time.Duration) { syncs.Add(1) })
}

// machine describes where the table was measured.
type machine struct {
	NProc   int    `json:"nproc"`
	CPU     string `json:"cpu"`
	Go      string `json:"go"`
	Kernel  string `json:"kernel"`
	Pebble  string `json:"pebble"`
	GRPC    string `json:"grpc"`
	TempFS  string `json:"temp_fs"`
	MemGiB  int    `json:"mem_gib"`
	GOGC    int    `json:"gogc"`
	Started string `json:"started"`
}

func describeMachine(dir string) machine {
	m := machine{NProc: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339)}
	m.GOGC = debug.SetGCPercent(100)
	debug.SetGCPercent(m.GOGC)
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/cockroachdb/pebble/v2":
				m.Pebble = d.Version
			case "google.golang.org/grpc":
				m.GRPC = d.Version
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil {
		m.TempFS = fsName(int64(st.Type))
	}
	if kb, ok := procStatus("/proc/meminfo", "MemTotal"); ok {
		m.MemGiB = int((kb + 1<<19) >> 20)
	}
	return m
}

func fsName(t int64) string {
	switch t {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs (fsync is free: figures are not durable-write figures)"
	case 0x794c7630:
		return "overlayfs"
	case 0x2FC12FC1:
		return "zfs"
	}
	return fmt.Sprintf("0x%x", t)
}

// procStatus returns a "Key:   N kB" value from a /proc status-like file.
func procStatus(path, key string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux >= 4.0).
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// fsyncProbe measures the latency of 4 KiB write + fdatasync on a file in dir.
func fsyncProbe(dir string, n int) (*hist, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	h := new(hist)
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i%256)*4096); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		h.add(time.Since(start))
	}
	return h, nil
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
