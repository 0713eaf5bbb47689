package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func writeTestFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mdtdRun runs mdtd in-process with args (a cancelled context: nothing
// that starts keeps running) and returns exit code, stdout and stderr.
func mdtdRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code := runContext(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// settings returns print-config's settings without the comments.
func settings(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		v, _, _ := strings.Cut(l, " #")
		b.WriteString(v + "\n")
	}
	return b.String()
}

// TestConfigPrecedence: flags over MDTD_* over the --config file over the
// defaults, as --print-config shows them, and its output is a config file
// that gives the same settings.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeTestFile(t, filepath.Join(dir, "mdtd.toml"), `
data = "/srv/mdt0"
log_level = "debug"   # underscores work too
index = 3
insecure = true
heartbeat = "2s"
`)
	t.Setenv("MDTD_LOG_LEVEL", "warn")
	t.Setenv("MDTD_FSNAME", "testfs")
	code, out, errb := mdtdRun(t, "--config", file, "--index", "5", "--print-config")
	if code != exitOK || errb != "" {
		t.Fatalf("exit %d: %s", code, errb)
	}
	for _, want := range []string{
		"# config file: " + file + "\n",
		`data = "/srv/mdt0" # file` + "\n",
		`fsname = "testfs" # env MDTD_FSNAME` + "\n",
		`heartbeat = "2s" # file` + "\n",
		"index = 5 # flag\n",
		"insecure = true # file\n",
		`log-level = "warn" # env MDTD_LOG_LEVEL` + "\n",
		`log-format = "text" # default` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("print-config lacks %q:\n%s", want, out)
		}
	}
	// Every flag is a setting, except --config and --print-config.
	root, _ := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	n := 0
	for _, l := range strings.Split(settings(out), "\n") {
		if name, _, ok := strings.Cut(l, " = "); ok {
			n++
			if root.Flags().Lookup(name) == nil {
				t.Errorf("print-config shows %q, not a flag", name)
			}
		}
	}
	flags := 0
	root.Flags().VisitAll(func(*pflag.Flag) { flags++ })
	if n != flags-2 { // --config, --print-config
		t.Errorf("print-config shows %d settings, mdtd has %d flags besides --config and --print-config", n, flags-2)
	}

	// The output is a config file with the same settings.
	os.Unsetenv("MDTD_LOG_LEVEL")
	os.Unsetenv("MDTD_FSNAME")
	again := writeTestFile(t, filepath.Join(dir, "again.toml"), out)
	code, out2, errb := mdtdRun(t, "--config", again, "--print-config")
	if code != exitOK || settings(out2) != settings(out) {
		t.Fatalf("round trip: exit %d %s\n%s\nvs\n%s", code, errb, out2, out)
	}

	// MDTD_CONFIG names the file when --config does not.
	t.Setenv("MDTD_CONFIG", file)
	if _, out, _ := mdtdRun(t, "--print-config"); !strings.Contains(out, `data = "/srv/mdt0" # file`) {
		t.Errorf("MDTD_CONFIG ignored:\n%s", out)
	}
}

// TestConfigErrors: a bad key, value or variable is named, exit 2, and
// nothing starts (no data directory).
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, tc := range []struct {
		file, env, want string
	}{
		{file: "bogus = 1\n", want: "mdtd: config FILE: unknown key 'bogus'\n"},
		{file: "config = \"x\"\n", want: "mdtd: config FILE: unknown key 'config'\n"},
		{file: "log-level = \"info\"\nlog_level = \"debug\"\n", want: "mdtd: config FILE: key 'log_level' given twice\n"},
		{file: "index = \"x\"\n", want: "mdtd: config FILE: invalid index 'x': "},
		{file: "index = 1.5\n", want: "mdtd: config FILE: key 'index': want a string, integer or boolean, got float64\n"},
		{file: "index = \n", want: "mdtd: config FILE: toml: "},
		{env: "MDTD_HEARTBEAT=soon", want: "mdtd: invalid MDTD_HEARTBEAT 'soon': "},
	} {
		file := writeTestFile(t, filepath.Join(dir, "c.toml"), tc.file)
		if tc.env != "" {
			k, v, _ := strings.Cut(tc.env, "=")
			t.Setenv(k, v)
		}
		code, _, errb := mdtdRun(t, "--config", file, "--data", data, "--socket", filepath.Join(dir, "s.sock"))
		want := strings.ReplaceAll(tc.want, "FILE", file)
		if code != exitUsage || !strings.HasPrefix(errb, want) || !strings.HasSuffix(errb, "Run 'mdtd --help' for usage.\n") {
			t.Errorf("%q %s: exit %d, stderr %q; want 2 and %q", tc.file, tc.env, code, errb, want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("data directory made despite a bad setting")
		}
		if tc.env != "" {
			k, _, _ := strings.Cut(tc.env, "=")
			os.Unsetenv(k)
		}
	}
	if code, _, errb := mdtdRun(t, "--config", filepath.Join(dir, "missing.toml")); code != exitUsage || !strings.Contains(errb, "missing.toml: no such file") {
		t.Errorf("missing file: %d %q", code, errb)
	}
}

// TestConfigServes: settings from a file and the environment are the
// ones the server runs with.
func TestConfigServes(t *testing.T) {
	dir := shortTemp(t)
	file := writeTestFile(t, filepath.Join(dir, "mdtd.toml"), `
data = "`+filepath.Join(dir, "data")+`"
socket = "`+filepath.Join(dir, "s.sock")+`"
fsname = "cfgfs"
`)
	t.Setenv("MDTD_METRICS", "127.0.0.1:0")
	t.Setenv("MDTD_INDEX", "2")
	_, m, _ := start(t, "--config", file)
	if m[1] != "cfgfs-MDT0002" || m[3] != filepath.Join(dir, "s.sock") || m[4] == "" {
		t.Fatalf("serving line %q", m[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "LOCK")); err != nil {
		t.Fatal(err)
	}
}

// TestDistConfig: the sample config shipped for the systemd unit is
// accepted as it is.
func TestDistConfig(t *testing.T) {
	root, _ := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	vals, err := readConfigFile(root.Flags(), "../../dist/mdtd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if vals["data"] == "" || !regexp.MustCompile(`^/var/lib/fidlog/`).MatchString(vals["data"]) {
		t.Errorf("dist/mdtd.toml data = %q", vals["data"])
	}
}
