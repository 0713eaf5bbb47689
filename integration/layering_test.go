package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps imports pointing one way (cmd -> api -> mdt ->
// {changelog, nodemap} -> fid): domain packages never import gRPC or the
// generated API, fid and nodemap use the standard library only, and
// changelog never imports mdt.
func TestLayering(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	const mod = "github.com/fidlog/fidlog/"
	for _, pkg := range []string{"changelog", "mdt", "nodemap", "fid"} {
		out, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", mod+pkg).Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "prometheus") {
			t.Errorf("%s imports prometheus directly; domain code reports through event callbacks", pkg)
		}
	}
	for _, tc := range []struct {
		pkg       string
		forbidden []string
		onlyStd   bool
	}{
		{pkg: mod + "fid", onlyStd: true},
		{pkg: mod + "nodemap", onlyStd: true},
		{pkg: mod + "changelog", forbidden: []string{"google.golang.org/grpc", mod + "proto", mod + "mdt", mod + "api", mod + "nodemap"}},
		{pkg: mod + "mdt", forbidden: []string{"google.golang.org/grpc", mod + "proto", mod + "api"}},
	} {
		for _, d := range deps(tc.pkg) {
			if d == tc.pkg {
				continue
			}
			if tc.onlyStd {
				t.Errorf("%s imports %s; it must use the standard library only", tc.pkg, d)
			}
			for _, f := range tc.forbidden {
				// (prometheus comes in through pebble; domain code itself
				// reports through event callbacks, see below)
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", tc.pkg, d)
				}
			}
		}
	}
}
