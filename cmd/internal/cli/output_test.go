package cli

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"
)

// failAfter accepts n bytes, then fails every write with ENOSPC, as a
// full disk does.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return len(p), nil
	}
	k := f.n
	f.n = 0
	return k, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}
}

func TestOutputDone(t *testing.T) {
	for _, tc := range []struct {
		name       string
		w          io.Writer
		code, want int
		stderr     string
	}{
		{"ok", &bytes.Buffer{}, 0, 0, ""},
		{"ok keeps the command's status", &bytes.Buffer{}, 2, 2, ""},
		{"lost output is never status 0", &failAfter{n: 3}, 0, int(syscall.ENOSPC), "lfs: write error: No space left on device\n"},
		{"EIO of the command becomes the write's errno", &failAfter{}, EIO, int(syscall.ENOSPC), "lfs: write error: No space left on device\n"},
		{"the command's own failure stays", &failAfter{}, ENOENT, ENOENT, "lfs: write error: No space left on device\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOutput(tc.w)
			io.WriteString(o, "hello\n")
			if _, err := io.WriteString(o, "again\n"); err == nil && tc.stderr != "" {
				t.Error("a write after a failed one succeeded")
			}
			var errb bytes.Buffer
			if got := o.Done("lfs", &errb, tc.code); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
			if errb.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", errb.String(), tc.stderr)
			}
		})
	}
}
