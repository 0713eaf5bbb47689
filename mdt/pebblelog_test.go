package mdt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a goroutine-safe log sink (Pebble logs from its own
// goroutines).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPebbleLogOneMsgKey checks that Pebble's own lines reach slog as
// events "pebble" with their text in attributes: one msg key per line,
// the job number split out.
func TestPebbleLogOneMsgKey(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := Open(t.TempDir(), &Options{FSName: "lustre", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Mkdir(context.Background(), Cred{}, "d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.DB().Flush(); err != nil { // Pebble logs the flush job
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	pebbleLines, jobs := 0, 0
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		line := sc.Bytes()
		if n := bytes.Count(line, []byte(`"msg":`)); n != 1 {
			t.Errorf("%d msg keys in %s", n, line)
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("not JSON: %s: %v", line, err)
		}
		if rec["msg"] != "pebble" {
			continue
		}
		pebbleLines++
		text, _ := rec["text"].(string)
		if text == "" || strings.HasPrefix(text, "[JOB") {
			t.Errorf("pebble line without its text split out: %s", line)
		}
		if _, ok := rec["job"].(float64); ok {
			jobs++
		}
	}
	if pebbleLines == 0 || jobs == 0 {
		t.Fatalf("%d pebble lines, %d of them with a job (the flush), in:\n%s", pebbleLines, jobs, buf.String())
	}
}

func TestPebbleAttrs(t *testing.T) {
	for _, tc := range []struct {
		format string
		args   []any
		want   string
	}{
		{"[JOB %d] flushed %d memtables", []any{12, 1}, "[job 12 text flushed 1 memtables]"},
		{"Found %d WALs", []any{0}, "[text Found 0 WALs]"},
		{"[JOB x] odd", nil, "[text [JOB x] odd]"},
	} {
		if got := fmt.Sprint(pebbleAttrs(tc.format, tc.args)); got != tc.want {
			t.Errorf("pebbleAttrs(%q) = %s, want %s", tc.format, got, tc.want)
		}
	}
}
