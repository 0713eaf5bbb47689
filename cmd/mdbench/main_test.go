package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/mdt"
)

// TestTableQuick runs the whole table at a tiny size: every measure must
// produce its row, none may fail, and the JSON must be a valid array of
// rows. Figures are not checked (no timed assertions).
func TestTableQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every measure")
	}
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "table.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"table", "--quick", "--json", jsonPath, "--tmpdir", dir,
		"--records", "20000", "--small-records", "1000", "--phase", "150ms", "--warmup", "20ms",
		"--reps", "1", "--conc", "1,8", "--cap", "500", "--reclaim-timeout", "1s"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, m := range []string{"| T1 durable", "| T1b ", "| T1c ", "| CPU µs per create", "| T2 ", "| T2c ", "| T3 catch-up", "| T3 follow", "| T4 purge: clear", "| T4 purge: live", "| T5 ", "| T6 ", "| T7 "} {
		if !strings.Contains(out, m) {
			t.Errorf("table has no %q row:\n%s", m, out)
		}
	}
	if !strings.Contains(out, "| measure | config | baseline | service | ratio median [min–max] | target | result |") {
		t.Errorf("table header missing:\n%s", out)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rows []row
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatalf("JSON: %v\n%s", err, data)
	}
	// 2 concurrencies x (T1, T1b, T1c, CPU, T2, T2c) + T3 x2 + T4 x2 + T5 + T6 + T7.
	if len(rows) != 19 {
		t.Errorf("JSON has %d rows, want 19", len(rows))
	}
	for _, r := range rows {
		if strings.HasPrefix(r.Measure, "CPU µs") {
			for _, layer := range []string{"raw", "mdt", "grpc", "noop"} {
				if r.Extra[layer] <= 0 {
					t.Errorf("%s (%s): no CPU figure for %s: %v", r.Measure, r.Config, layer, r.Extra)
				}
			}
		}
		if r.Result == "error" || r.Error != "" {
			t.Errorf("%s (%s): %s", r.Measure, r.Config, r.Error)
		}
		if r.Run == nil || r.Run.Machine.NProc == 0 || r.Run.Machine.Go == "" {
			t.Errorf("%s: no machine description", r.Measure)
		}
		switch r.Result {
		case "pass", "miss", "info":
		default:
			t.Errorf("%s: result %q", r.Measure, r.Result)
		}
	}
}

// TestLoad runs every mix of load for a moment against an in-process
// server on loopback TCP.
func TestLoad(t *testing.T) {
	m, err := mdt.Open(t.TempDir(), &mdt.Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv, err := api.New(m, api.Options{Logger: discard, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()

	for _, mix := range loadMixes {
		t.Run(mix, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			dur := 200 * time.Millisecond
			if mix == opMixed {
				dur = time.Second
			}
			code := run([]string{"load", "--server", lis.Addr().String(), "--clients", "3", "--duration", dur.String(),
				"--mix", mix, "--dir", "bench", "--files", "50"}, &stdout, &stderr)
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), "ops/s") || !strings.Contains(stdout.String(), "total") {
				t.Errorf("output:\n%s", stdout.String())
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"load", "--server", lis.Addr().String(), "--clients", "2", "--duration", "100ms", "--output", "json"}, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var rep loadReport
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("%v\n%s", err, stdout.String())
		}
		if rep.Total.Ops == 0 || rep.Total.Errors != 0 {
			t.Errorf("total %+v", rep.Total)
		}
	})
}

// TestUsage checks exit statuses of command-line mistakes.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"nope"}, exitUsage},
		{[]string{"load", "--server", "unix:/nonexistent/mdtd.sock"}, exitError},
		{[]string{"load", "--server", "127.0.0.1:1", "--mix", "bogus"}, exitUsage},
		{[]string{"load", "--server", "127.0.0.1:1", "--clients", "0"}, exitUsage},
		{[]string{"table", "--quick", "--full"}, exitUsage},
		{[]string{"table", "--bogus"}, exitUsage},
		{[]string{"table", "--reps", "0"}, exitUsage},
	} {
		t.Setenv("MDT_SERVER", "")
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("%q: exit %d, want %d (%s)", tc.args, code, tc.code, stderr.String())
		}
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []struct {
		q    float64
		want time.Duration
	}{{.5, 500 * time.Microsecond}, {.99, 990 * time.Microsecond}} {
		got := h.quantile(q.q)
		if got < q.want*9/10 || got > q.want*11/10 {
			t.Errorf("quantile(%v) = %v, want about %v", q.q, got, q.want)
		}
	}
	for v := uint64(0); v < 1<<20; v = v*3/2 + 1 {
		if i := histIndex(v); histIndex(histValue(i)) != i {
			t.Errorf("bucket %d of %d: value %d maps to %d", i, v, histValue(i), histIndex(histValue(i)))
		}
	}
}

// TestTableMount runs T8 at a tiny size: where the FUSE mount can run
// (root, /dev/fuse, tar) both rows must have figures from every phase;
// elsewhere both rows must say SKIPPED with the reason, loudly.
func TestTableMount(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts and builds mdc")
	}
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "table.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"table", "--only", "T8", "--tar-files", "30", "--reps", "2", "--json", jsonPath, "--tmpdir", dir}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rows []row
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatalf("JSON: %v\n%s", err, data)
	}
	if len(rows) != 3 || !strings.HasPrefix(rows[0].Measure, "T8 ") || !strings.HasPrefix(rows[1].Measure, "T8m ") || !strings.HasPrefix(rows[2].Measure, "T8b ") {
		t.Fatalf("rows: %+v", rows)
	}
	canMount := os.Geteuid() == 0
	if _, err := os.Stat("/dev/fuse"); err != nil {
		canMount = false
	}
	if _, err := exec.LookPath("tar"); err != nil {
		canMount = false
	}
	for _, r := range rows {
		if !canMount {
			if r.Result != "skipped" || !strings.Contains(stdout.String(), "| SKIPPED: ") {
				t.Errorf("%s: result %q without root, /dev/fuse or tar\n%s", r.Measure, r.Result, stdout.String())
			}
			t.Logf("SKIP (loud): T8 cannot mount here: %s", r.Service)
			continue
		}
		if r.Result != "pass" && r.Result != "miss" && !(r.Result == "info" && strings.HasPrefix(r.Measure, "T8m ")) {
			t.Errorf("%s: result %q: %s", r.Measure, r.Result, r.Error)
		}
		if r.Reps != 2 || r.BaselineValue <= 0 || r.ServiceValue <= 0 || r.Ratio <= 0 {
			t.Errorf("%s: no figures: %+v", r.Measure, r)
		}
		if r.Extra["baseline_rpcs_per_file"] < 3 || r.Extra["service_rpcs_per_file"] < 3 {
			t.Errorf("%s: fewer than open+write+close per file: %v", r.Measure, r.Extra)
		}
	}
	// T8's baseline makes tar's operations: Open, Write, three Setattr
	// (times, owner, mode) and Close per file.
	if canMount && (rows[0].Extra["baseline_rpcs_per_file"] < 6 || !strings.Contains(rows[0].Baseline, "Setattr 3.")) {
		t.Errorf("T8 baseline does not make tar's operations: %s", rows[0].Baseline)
	}
}

// TestT8Writes: the direct client splits each file's data where GNU tar
// does, at the archive's 10 KiB record boundaries.
func TestT8Writes(t *testing.T) {
	files := t8Files(200)
	off, split := 512, 0
	for _, f := range files {
		sum := 0
		for _, n := range f.writes {
			sum += n
		}
		if sum != len(f.data) {
			t.Fatalf("%s: writes %v sum to %d, data is %d bytes", f.name, f.writes, sum, len(f.data))
		}
		start := off + 512
		if crosses := start/tarRecord != (start+len(f.data)-1)/tarRecord; crosses != (len(f.writes) == 2) || len(f.writes) > 2 {
			t.Fatalf("%s at %d (%d bytes): writes %v", f.name, start, len(f.data), f.writes)
		}
		if len(f.writes) == 2 {
			split++
			if (start+f.writes[0])%tarRecord != 0 {
				t.Fatalf("%s: first write ends at %d, not a record boundary", f.name, start+f.writes[0])
			}
		}
		off += 512 + (len(f.data)+511)/512*512
	}
	if split == 0 {
		t.Fatal("no file crosses a record boundary")
	}
}
