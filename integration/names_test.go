package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestNonUTF8NamesJSON: a Latin-1 name (byte 0xE9, not valid UTF-8) is
// printed as its raw bytes by lfs changelog, as Lustre prints names, and
// comes back byte for byte from lfs changelog --output json through
// name_b64 / source_name_b64, while a valid UTF-8 name has no _b64 field.
func TestNonUTF8NamesJSON(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := c.Ctx(context.Background())
	if _, err := c.CL.Register(ctx, &changelogv1.RegisterRequest{Device: device}); err != nil {
		t.Fatal(err)
	}
	dir, old, name := "caf\xe9", "\xe9t\xe9", "r\xe9sum\xe9"
	if _, err := c.NS.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(dir), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte(dir + "/" + old), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NS.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte(dir + "/" + old), DstPath: []byte(dir + "/" + name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NS.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("plain"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	text := MustRun(t, s, "lfs", "changelog", device)
	if !strings.Contains(text, " "+dir+"\n") || !strings.Contains(text, " "+name+" s=") || !strings.Contains(text, " "+old+"\n") {
		t.Fatalf("lfs changelog does not print the raw name bytes:\n%q", text)
	}
	got := map[string]string{}
	for _, l := range changelogLines(MustRun(t, s, "lfs", "changelog", "--output", "json", device)) {
		var v changelog.JSONRecord
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		n, err := changelog.JSONName(v.Name, v.NameB64)
		if err != nil {
			t.Fatal(err)
		}
		sn, err := changelog.JSONName(v.SrcName, v.SrcNameB64)
		if err != nil {
			t.Fatal(err)
		}
		got[v.Type+" "+n] = sn
		if v.Name == "plain" && strings.Contains(l, "_b64") {
			t.Errorf("valid UTF-8 name with a _b64 field: %s", l)
		}
	}
	for k, w := range map[string]string{"MKDIR " + dir: "", "CREAT " + old: "", "RENME " + name: old, "MKDIR plain": ""} {
		if sn, ok := got[k]; !ok || sn != w {
			t.Errorf("json: %q with source name %q (present %v), want %q; all %q", k, sn, ok, w, got)
		}
	}
}
