package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBallast: the ballast is allocated when twice its size is free,
// deleted at a start that finds less than its size free (with the
// operator told what to do) or with size 0, and low reports less than
// twice its size free.
func TestBallast(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	path := filepath.Join(dir, ballastName)

	b := newBallast(dir, 1<<20, log)
	b.atStart()
	if st, err := os.Stat(path); err != nil || st.Size() != 1<<20 {
		t.Fatalf("ballast after a start with room: %v %v\n%s", st, err, logs.String())
	}
	if b.low() {
		t.Fatal("low with plenty of room")
	}
	free, err := b.free()
	if err != nil {
		t.Fatal(err)
	}

	// A ballast larger than what is free: the disk is "full".
	big := newBallast(dir, free+1<<30, log)
	if !big.low() {
		t.Fatal("not low with less than twice the ballast free")
	}
	big.atStart()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ballast kept at a start with less than its size free: %v", err)
	}
	if !strings.Contains(logs.String(), "disk_full_ballast_removed") || !strings.Contains(logs.String(), "changelog_users") {
		t.Fatalf("no removal notice naming what to do:\n%s", logs.String())
	}
	big.ensure() // twice its size is not free: not allocated
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ballast allocated without twice its size free: %v", err)
	}

	b.ensure()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ballast not allocated again with room: %v", err)
	}
	none := newBallast(dir, 0, log)
	none.atStart()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("--ballast-size 0 keeps the ballast: %v", err)
	}
	if none.low() {
		t.Fatal("low without a ballast")
	}
}

// TestBallastFailures: a ballast that cannot be allocated is said once,
// not at every minute's retry; writeZeros allocates where fallocate is
// missing.
func TestBallastFailures(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	b := newBallast(filepath.Join(dir, "missing"), 1<<20, slog.New(slog.NewTextHandler(&logs, nil)))
	b.ensure()
	b.ensure()
	b.ensure()
	if n := strings.Count(logs.String(), "ballast_create_failed"); n != 1 {
		t.Fatalf("%d failure lines for three failed attempts, want 1:\n%s", n, logs.String())
	}

	f, err := os.Create(filepath.Join(dir, "z"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const n = 3<<20 + 5
	if err := writeZeros(f, n); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || len(got) != n || !bytes.Equal(got, make([]byte, n)) {
		t.Fatalf("writeZeros: %d bytes (%v), want %d zeros", len(got), err, n)
	}
}
