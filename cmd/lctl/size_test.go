package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/cmd/internal/clitest"
	"github.com/fidlog/fidlog/mdt"
)

// TestChangelogSizeGrows is sanity 254: changelog_size grows after
// operations, on a server that has not flushed its records to tables yet
// (it read 0 until Pebble's first flush).
func TestChangelogSizeGrows(t *testing.T) {
	s := clitest.StartServer(t)
	size := func() uint64 {
		t.Helper()
		var out, errb bytes.Buffer
		if code := runBuf([]string{"--server", s.Target, "get_param", "-n", "mdd." + s.Device + ".changelog_size"}, &out, &errb); code != 0 {
			t.Fatalf("lctl get_param changelog_size: exit %d: %s", code, errb.String())
		}
		n, err := strconv.ParseUint(strings.TrimSpace(out.String()), 10, 64)
		if err != nil {
			t.Fatalf("changelog_size %q: %v", out.String(), err)
		}
		return n
	}
	var out, errb bytes.Buffer
	if code := runBuf([]string{"--server", s.Target, "--device", s.Device, "changelog_register"}, &out, &errb); code != 0 {
		t.Fatalf("changelog_register: exit %d: %s", code, errb.String())
	}
	before := size()
	for i := range 100 {
		if _, err := s.MDT().Create(context.Background(), mdt.Cred{}, fmt.Sprint("f", i), 0o644, true); err != nil {
			t.Fatal(err)
		}
	}
	after := size()
	if after <= before || after < 100*50 {
		t.Fatalf("changelog_size %d before 100 creates, %d after: it must grow with the records", before, after)
	}
}
