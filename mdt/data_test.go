package mdt

import (
	"bytes"
	"fmt"
	"slices"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/changelog"
)

// TestDataRoundTrip writes across chunk boundaries, with holes, appends
// and truncates, and reads back what a local file would hold.
func TestDataRoundTrip(t *testing.T) {
	e := newEnv(t)
	m := e.m
	h, _, err := m.Open(ctx, root, "f", changelog.OpenCreate|changelog.OpenRead|changelog.OpenWrite, 0o644)
	ok(t, err)
	var want []byte
	put := func(off uint64, data []byte) {
		t.Helper()
		a, err := m.WriteFile(ctx, root, h, off, data)
		ok(t, err)
		if end := int(off) + len(data); end > len(want) {
			want = append(want, make([]byte, end-len(want))...)
		}
		copy(want[off:], data)
		if a.Size != uint64(len(want)) {
			t.Fatalf("size %d after write, want %d", a.Size, len(want))
		}
	}
	check := func() {
		t.Helper()
		got, err := m.ReadFile(ctx, root, h, 0, MaxIO)
		ok(t, err)
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, differ from the %d written", len(got), len(want))
		}
		part, err := m.ReadFile(ctx, root, h, ChunkSize-3, 7)
		ok(t, err)
		if w := want[min(len(want), ChunkSize-3):min(len(want), ChunkSize+4)]; !bytes.Equal(part, w) {
			t.Fatalf("partial read %q, want %q", part, w)
		}
	}
	put(0, []byte("hello"))
	put(ChunkSize-2, bytes.Repeat([]byte("x"), 5))    // straddles chunks 0 and 1
	put(3*ChunkSize+10, bytes.Repeat([]byte("y"), 3)) // hole in chunk 2
	check()
	size := uint64(ChunkSize + 1)
	_, err = m.Setattr(ctx, root, "f", SetattrArgs{Size: &size})
	ok(t, err)
	want = want[:size]
	check()
	size = 2 * ChunkSize // grows: zeros, not the old bytes
	_, err = m.Setattr(ctx, root, "f", SetattrArgs{Size: &size})
	ok(t, err)
	want = append(want, make([]byte, int(size)-len(want))...)
	check()
	ok(t, m.CloseFile(ctx, root, h))

	// APPEND writes at the end whatever the offset; a read-only handle
	// cannot write and a write-only handle cannot read (EBADF).
	ha, _, err := m.Open(ctx, root, "f", changelog.OpenWrite|changelog.OpenAppend, 0)
	ok(t, err)
	a, err := m.WriteFile(ctx, root, ha, 0, []byte("tail"))
	ok(t, err)
	if a.Size != size+4 {
		t.Fatalf("append: size %d, want %d", a.Size, size+4)
	}
	_, err = m.ReadFile(ctx, root, ha, 0, 10)
	wantErrno(t, err, syscall.EBADF)
	ok(t, m.CloseFile(ctx, root, ha))
	hr, _, err := m.Open(ctx, root, "f", changelog.OpenRead, 0)
	ok(t, err)
	_, err = m.WriteFile(ctx, root, hr, 0, []byte("no"))
	wantErrno(t, err, syscall.EBADF)
	got, err := m.ReadFile(ctx, root, hr, size, 100)
	ok(t, err)
	if string(got) != "tail" {
		t.Fatalf("appended bytes read back %q", got)
	}
	ok(t, m.CloseFile(ctx, root, hr))
}

// TestDataUnlinkedOpen: an open unlinked file stays readable until its
// last close, which removes its content; records are UNLNK (last link)
// then CLOSE.
func TestDataUnlinkedOpen(t *testing.T) {
	e := newEnv(t)
	m := e.m
	e.register("")
	h, a, err := m.Open(ctx, root, "f", changelog.OpenCreate|changelog.OpenRead|changelog.OpenWrite, 0o644)
	ok(t, err)
	_, err = m.WriteFile(ctx, root, h, 0, bytes.Repeat([]byte("z"), 3*ChunkSize))
	ok(t, err)
	start := e.current()
	ok(t, m.Unlink(ctx, root, "f"))
	got, err := m.ReadFile(ctx, root, h, ChunkSize, 4)
	ok(t, err)
	if string(got) != "zzzz" {
		t.Fatalf("read of unlinked open file: %q", got)
	}
	ok(t, m.CloseFile(ctx, root, h))
	if ty := e.types(start + 1); !slices.Equal(ty, []string{"UNLNK", "CLOSE"}) {
		t.Fatalf("records %v, want UNLNK CLOSE", ty)
	}
	if r := e.records(start + 1)[0]; r.Flags&0x1 == 0 {
		t.Fatalf("UNLNK of the last link without flag 0x1: %s", r.Line())
	}
	assertNoKeysOf(t, m, a.FID)
}

// TestDataCloseMtime: the close of a handle that wrote records MTIME
// before CLOSE, unless the object already had a record in this epoch.
func TestDataCloseMtime(t *testing.T) {
	e := newEnv(t)
	m := e.m
	_, err := m.Create(ctx, root, "f", 0o644, false)
	ok(t, err)
	e.register("") // a new epoch: CREAT was before it
	start := e.current()
	h, _, err := m.Open(ctx, user(0), "f", changelog.OpenWrite, 0)
	ok(t, err)
	_, err = m.WriteFile(ctx, root, h, 0, []byte("data"))
	ok(t, err)
	ok(t, m.CloseFile(ctx, root, h))
	if ty := e.types(start + 1); !slices.Equal(ty, []string{"MTIME", "CLOSE"}) {
		t.Fatalf("records %v, want MTIME CLOSE", ty)
	}
	// A second write+close: MTIME is deduplicated, CLOSE is not.
	start = e.current()
	h, _, err = m.Open(ctx, root, "f", changelog.OpenWrite, 0)
	ok(t, err)
	_, err = m.WriteFile(ctx, root, h, 4, []byte("more"))
	ok(t, err)
	ok(t, m.CloseFile(ctx, root, h))
	if ty := e.types(start + 1); !slices.Equal(ty, []string{"CLOSE"}) {
		t.Fatalf("records %v, want CLOSE", ty)
	}
}

// TestReaddirPage pages through a directory with a cursor that survives
// entries added and removed between pages.
func TestReaddirPage(t *testing.T) {
	e := newEnv(t)
	m := e.m
	_, err := m.Mkdir(ctx, root, "d", 0o755)
	ok(t, err)
	for i := range 10 {
		_, err := m.Create(ctx, root, fmt.Sprintf("d/%02d\xff", i), 0o644, false)
		ok(t, err)
	}
	var names []string
	after := ""
	for {
		ents, more, err := m.ReaddirPage(ctx, root, "d", after, 3)
		ok(t, err)
		for _, en := range ents {
			names = append(names, en.Name)
		}
		if len(names) == 3 {
			ok(t, m.Unlink(ctx, root, "d/00\xff")) // already listed
			_, err := m.Create(ctx, root, "d/99", 0o644, false)
			ok(t, err) // sorts after the cursor: listed
		}
		if !more {
			break
		}
		after = ents[len(ents)-1].Name
	}
	if len(names) != 11 || names[0] != "00\xff" || names[10] != "99" || !slices.IsSorted(names) {
		t.Fatalf("pages gave %q", names)
	}
	_, _, err = m.ReaddirPage(ctx, root, "d", "", 0)
	wantErrno(t, err, syscall.EINVAL)
}
