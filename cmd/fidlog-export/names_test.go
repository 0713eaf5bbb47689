package main

import (
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestNonUTF8NamesReversible: names are bytes. A Latin-1 directory and
// file name (0xE9, not valid UTF-8) and a rename between such names go
// through the exporter; in ndjson and scale-json each name and path is
// recovered exactly from its _b64 companion (changelog.JSONName), the
// readable field beside it shows U+FFFD, the ndjson lines still verify
// offline, and csv carries the bytes as they are.
func TestNonUTF8NamesReversible(t *testing.T) {
	s := startMDT(t)
	c := s.client(t)
	base := shortTempDir(t)
	nd, sc, cs := filepath.Join(base, "nd"), filepath.Join(base, "sc"), filepath.Join(base, "cs")
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms",
		"--sink", "file://"+nd+"?format=ndjson", "--sink", "file://"+sc+"?format=scale-json", "--sink", "file://"+cs+"?format=csv")
	waitFor(t, 30*time.Second, "exporting", func() bool { return strings.Contains(x.Output(), "msg=exporting") })
	ctx := ctxT(t)
	dir, file, moved := "caf\xe9", "r\xe9sum\xe9", "\xff\xfeold"
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("/" + dir), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte("/" + dir + "/" + moved), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespace.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("/" + dir + "/" + moved), DstPath: []byte("/" + dir + "/" + file)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("/plain"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	want := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "all cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}

	// ndjson: every name and path back byte for byte.
	lines := dirLines(t, nd, ".ndjson")
	verifyExport(t, lines, want)
	got := map[string]string{}
	for _, l := range lines {
		var v struct {
			Type       string `json:"type"`
			Name       string `json:"name"`
			NameB64    string `json:"name_b64"`
			Path       string `json:"path"`
			PathB64    string `json:"path_b64"`
			SrcName    string `json:"source_name"`
			SrcNameB64 string `json:"source_name_b64"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		name, err := changelog.JSONName(v.Name, v.NameB64)
		if err != nil {
			t.Fatal(err)
		}
		sname, err := changelog.JSONName(v.SrcName, v.SrcNameB64)
		if err != nil {
			t.Fatal(err)
		}
		path, err := changelog.JSONName(v.Path, v.PathB64)
		if err != nil {
			t.Fatal(err)
		}
		got[v.Type+" "+name] = sname + "|" + path
		if v.Name == "plain" && (v.NameB64 != "" || strings.Contains(l, "_b64")) {
			t.Errorf("a valid UTF-8 name has a _b64 field: %s", l)
		}
		if v.NameB64 != "" && !strings.Contains(v.Name, "\ufffd") {
			t.Errorf("name beside name_b64 is %q, want U+FFFD for the invalid bytes: %s", v.Name, l)
		}
	}
	for k, w := range map[string]string{
		"MKDIR " + dir:   "|/" + dir,
		"CREAT " + moved: "|/" + dir + "/" + moved,
		"RENME " + file:  moved + "|/" + dir + "/" + file,
		"MKDIR plain":    "|/plain",
	} {
		if got[k] != w {
			t.Errorf("ndjson %q: source name|path %q, want %q (all: %q)", k, got[k], w, got)
		}
	}

	// scale-json: the paths back from path_b64 / oldPath_b64.
	var paths []string
	for _, l := range dirLines(t, sc, ".json") {
		var v struct {
			Path       string `json:"path"`
			PathB64    string `json:"path_b64"`
			OldPath    string `json:"oldPath"`
			OldPathB64 string `json:"oldPath_b64"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		p, err := changelog.JSONName(v.Path, v.PathB64)
		if err != nil {
			t.Fatal(err)
		}
		o, err := changelog.JSONName(v.OldPath, v.OldPathB64)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p+"<"+o)
	}
	if !contains(paths, "/"+dir+"/"+file+"<") && !contains(paths, "/"+dir+"/"+file+"</"+dir+"/"+moved) {
		t.Errorf("scale-json paths %q lack the renamed file /%s/%s", paths, dir, file)
	}
	if !contains(paths, "/"+dir+"<") {
		t.Errorf("scale-json paths %q lack /%s", paths, dir)
	}

	// csv: the bytes as they are (CSV has no string type to escape into).
	var csvPaths []string
	for _, l := range dirLines(t, cs, ".csv") {
		rec, err := csv.NewReader(strings.NewReader(l)).Read()
		if err != nil {
			t.Fatal(err)
		}
		csvPaths = append(csvPaths, rec[6])
	}
	if !contains(csvPaths, "/"+dir) || !contains(csvPaths, "/"+dir+"/"+file) {
		t.Errorf("csv paths %q lack /%s and /%s/%s", csvPaths, dir, dir, file)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
