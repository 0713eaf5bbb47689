package cli

import (
	"fmt"
	"io"
)

// Output is a command's standard output that remembers its first write
// error: output lost to a full disk or a failing file never ends with
// status 0 (a script's "lfs changelog > f && lfs changelog_clear ..." must
// not clear what it could not save). A closed pipe still ends the process
// with SIGPIPE, as the writes reach the same file.
type Output struct {
	w   io.Writer
	err error
}

// NewOutput wraps w.
func NewOutput(w io.Writer) *Output { return &Output{w: w} }

// Write writes to the wrapped writer; after a failed write every write
// fails with the same error.
func (o *Output) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}

// Done ends a command that exited with code: after a failed write it
// prints "<name>: write error: <strerror>" on stderr and returns the
// write's errno, unless the command failed for a reason of its own (a
// status other than 0 and EIO, which commands return for a failed write).
func (o *Output) Done(name string, stderr io.Writer, code int) int {
	if o.err == nil {
		return code
	}
	n := SysErrno(o.err)
	fmt.Fprintf(stderr, "%s: write error: %s\n", name, Strerror(n))
	if code == 0 || code == EIO {
		return n
	}
	return code
}
