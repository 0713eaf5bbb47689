package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/cmd/internal/clitest"
	"github.com/fidlog/fidlog/fid"
)

// TestRunRefusesBadConfig: bad flags, targets, sink URLs and formats are
// refused before anything starts, with exit code 2 and a message naming
// the bad value.
func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	okSink := "file://" + dir + "?format=ndjson"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no mdt", []string{"--sink", okSink}, "no --mdt given"},
		{"no sink", []string{"--mdt", "unix:/x"}, "no --sink given"},
		{"bad target", []string{"--mdt", "mdt0", "--sink", okSink}, "invalid --mdt 'mdt0': expect unix:PATH or host:port"},
		{"unknown format", []string{"--mdt", "unix:/x", "--sink", "file://" + dir + "?format=xml"}, "unknown format 'xml' (ndjson, scale-json, csv, lustre)"},
		{"unknown scheme", []string{"--mdt", "unix:/x", "--sink", "kafka://127.0.0.1:9092"}, "unknown scheme 'kafka'"},
		{"no scheme", []string{"--mdt", "unix:/x", "--sink", dir}, "no scheme"},
		{"relative file", []string{"--mdt", "unix:/x", "--sink", "file://audit"}, "file:// takes an absolute path"},
		{"unknown parameter", []string{"--mdt", "unix:/x", "--sink", okSink + "&rotat=1h"}, "unknown parameter rotat"},
		{"bad rotate", []string{"--mdt", "unix:/x", "--sink", okSink + "&rotate=soon"}, "rotate=soon is not a duration"},
		{"bad size", []string{"--mdt", "unix:/x", "--sink", okSink + "&size=big"}, "size=big is not a size"},
		{"bad gzip", []string{"--mdt", "unix:/x", "--sink", okSink + "&gzip=maybe"}, "gzip=maybe is not true or false"},
		{"bad url", []string{"--mdt", "unix:/x", "--sink", "file://%zz"}, "invalid sink 'file://%zz'"},
		{"bad tls ca", []string{"--mdt", "127.0.0.1:1", "--sink", okSink, "--tls-ca", "/nonexistent/ca.crt"}, "invalid --tls-ca/--tls-cert/--tls-key"},
		{"tls cert without key", []string{"--mdt", "127.0.0.1:1", "--sink", okSink, "--tls-cert", "/nonexistent/c.crt"}, "go together"},
		{"twice the same mdt", []string{"--mdt", "unix:/x", "--mdt", "unix:/x", "--sink", okSink}, "--mdt 'unix:/x' given twice"},
		{"bad syslog facility", []string{"--mdt", "unix:/x", "--sink", "syslog+tcp://127.0.0.1:514?facility=mail2"}, "facility=mail2 is not a syslog facility"},
		{"syslog without port", []string{"--mdt", "unix:/x", "--sink", "syslog+udp://loghost"}, "syslog needs host:port"},
		{"nats bad stream", []string{"--mdt", "unix:/x", "--sink", "nats://127.0.0.1:4222?stream=a.b"}, "stream=a.b is not a stream name"},
		{"bad mask", []string{"--mdt", "unix:/x", "--sink", okSink, "--mask", "CREAT,BOGUS"}, "invalid --mask 'CREAT,BOGUS'"},
		{"bad batch", []string{"--mdt", "unix:/x", "--sink", okSink, "--batch", "0"}, "invalid --batch 0"},
		{"argument", []string{"--mdt", "unix:/x", "--sink", okSink, "extra"}, "unknown command"},
		{"bad flag", []string{"--nope"}, "unknown flag: --nope"},
		{"bad cpuprofile", []string{"--mdt", "unix:/x", "--sink", okSink, "--cpuprofile", dir + "/nonexistent/cpu.pprof"}, "invalid --cpuprofile '" + dir + "/nonexistent/cpu.pprof'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runContext(context.Background(), tc.args, &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.want)
			}
			if !strings.HasPrefix(stderr.String(), "fidlog-export: ") {
				t.Errorf("stderr %q does not start with the command name", stderr.String())
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused start created files: %v", ents)
	}
}

// TestFileSinkTruncatesHalfLine: on open, a half-written last line (a
// kill between two writes) is cut, and the last index per device is read
// back from the newest files, gzipped ones included.
func TestFileSinkTruncatesHalfLine(t *testing.T) {
	dir := t.TempDir()
	f := formats["lustre"]
	line := func(dev string, idx changelog.Index) string {
		r := &changelog.Record{Index: idx, Type: changelog.CLCreate, Time: time.Unix(1, 0), TFID: fid.FID{Seq: 0x200000400, Oid: uint32(idx)}}
		return string(f.appendLine(nil, &event{dev: dev, rec: r})) + "\n"
	}
	old := "fidlog-20260101T000000.000000000Z.log"
	if err := os.WriteFile(filepath.Join(dir, old), []byte(line("fs-MDT0001", 7)+line("fs-MDT0000", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := gzipFile(dir, old); err != nil {
		t.Fatal(err)
	}
	newest := filepath.Join(dir, "fidlog-20260101T000001.000000000Z.log")
	half := line("fs-MDT0000", 3)
	if err := os.WriteFile(newest, []byte(line("fs-MDT0000", 2)+half[:10]), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := parseSink("file://"+dir+"?format=lustre", sinkEnv{})
	if err != nil {
		t.Fatal(err)
	}
	have, err := s.open(context.Background(), []string{"fs-MDT0000", "fs-MDT0001", "fs-MDT0002"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if have["fs-MDT0000"] != 2 || have["fs-MDT0001"] != 7 || have["fs-MDT0002"] != 0 {
		t.Errorf("read back %v, want MDT0000 2, MDT0001 7, MDT0002 0", have)
	}
	b, _ := os.ReadFile(newest)
	if string(b) != line("fs-MDT0000", 2) {
		t.Errorf("newest file holds %q after open, want the half line cut", b)
	}
}

// TestFormats: each format renders a rename with every optional field
// exactly as the README shows it, reads its device and index back, and
// keeps names with quotes, commas and newlines on one line.
func TestFormats(t *testing.T) {
	r := &changelog.Record{
		Index: 6, Type: changelog.CLRename, Time: time.Date(2026, 11, 24, 20, 6, 18, 676901374, time.UTC),
		TFID: fid.FID{}, PFID: fid.FID{Seq: 0x200000400, Oid: 1}, Name: "c",
		SFID: fid.FID{Seq: 0x200000400, Oid: 2}, SPFID: fid.FID{Seq: 0x200000400, Oid: 1}, SName: "a",
		JobID: "mv.0", ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID | changelog.ExtraNIDBE,
		UID: 500, GID: 100, NID: "192.168.0.7@tcp",
	}
	r.Hash = changelog.Seal(changelog.EncodeChained(r), changelog.Hash{}) // the first record of a chain
	e := &event{dev: "lustre-MDT0000", rec: r, path: "/d/c", spath: "/d/a"}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range formats {
		got := string(f.appendLine(nil, e))
		if !strings.Contains(string(readme), "\n      "+got+"\n") {
			t.Errorf("%s: the README does not show this line:\n%s", name, got)
		}
		dev, idx, err := f.parse([]byte(got))
		if err != nil || dev != "lustre-MDT0000" || idx != 6 {
			t.Errorf("%s: parse = %s, %d, %v", name, dev, idx, err)
		}
		if _, _, err := f.parse([]byte("garbage")); err == nil {
			t.Errorf("%s: parse accepted garbage", name)
		}
	}
	r.Name, r.SName = "c, \"new\"", "a\nb"
	e.path, e.spath = "/d/c, \"new\"", "/d/a\nb"
	for name, want := range map[string]string{
		"csv":    `192.168.0.7@tcp,"500",lustre,RENME,ok,[0x200000400:0x2:0x0],"/d/c, ""new""","/d/a\x0ab",2026-11-24T20:06:18.676901374Z,lustre-MDT0000,6`,
		"lustre": `lustre-MDT0000 6 08RENME 20:06:18.676901374 2026.11.24 0x0 t=[0:0x0:0x0] j=mv.0 ef=0x13 u=500:100 nid=192.168.0.7@tcp p=[0x200000400:0x1:0x0] c, "new" s=[0x200000400:0x2:0x0] sp=[0x200000400:0x1:0x0] a\x0ab`,
	} {
		f := formats[name]
		got := string(f.appendLine(nil, e))
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
		if dev, idx, err := f.parse([]byte(got)); err != nil || dev != "lustre-MDT0000" || idx != 6 {
			t.Errorf("%s: parse = %s, %d, %v", name, dev, idx, err)
		}
	}
	for _, name := range []string{"ndjson", "scale-json"} {
		if got := formats[name].appendLine(nil, e); bytes.ContainsAny(got, "\n") {
			t.Errorf("%s: line contains a newline: %s", name, got)
		}
	}
}

// TestExamples: the help has an Examples: section.
func TestExamples(t *testing.T) {
	root, _ := newRootCmd(io.Discard, io.Discard)
	clitest.CheckExamples(t, root)
}

// TestManPages: docs/man/man8/fidlog-export.8 is the page the command makes
// (regenerate with FIDLOG_UPDATE_MAN=1 go test ./cmd/fidlog-export -run TestManPages).
func TestManPages(t *testing.T) {
	root, _ := newRootCmd(io.Discard, io.Discard)
	clitest.CheckManPages(t, root, "8")
}

// TestCPUProfile: --cpuprofile writes a CPU profile (gzipped protobuf, as
// runtime/pprof writes it) of the exporter's run, complete once it exits.
func TestCPUProfile(t *testing.T) {
	s := startMDT(t)
	dir := shortTempDir(t)
	prof := filepath.Join(dir, "cpu.pprof")
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--sink", "file://"+dir+"/audit?format=ndjson", "--cpuprofile", prof)
	waitFor(t, 30*time.Second, "exporting", func() bool { return strings.Contains(x.Output(), "msg=exporting") })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	f, err := os.Open(prof)
	if err != nil {
		t.Fatalf("no profile: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("profile %s is not gzipped: %v", prof, err)
	}
	if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
		t.Fatalf("profile %s: %d bytes, %v", prof, len(b), err)
	}
}
