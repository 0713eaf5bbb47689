package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps imports pointing one way (cmd -> api -> mdt ->
// {changelog/store -> changelog, nodemap} -> fid): domain packages never
// import gRPC or the generated API, fid and nodemap use the standard
// library only, changelog never imports mdt, and the record format
// (changelog) imports no storage.
func TestLayering(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	const mod = "github.com/fidlog/fidlog/"
	for _, pkg := range []string{"changelog", "changelog/store", "mdt", "nodemap", "fid"} {
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
		{pkg: mod + "changelog", forbidden: []string{"google.golang.org/grpc", mod + "proto", mod + "mdt", mod + "api", mod + "nodemap", "github.com/cockroachdb/", mod + "changelog/store"}},
		{pkg: mod + "changelog/store", forbidden: []string{"google.golang.org/grpc", mod + "proto", mod + "mdt", mod + "api", mod + "nodemap"}},
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

// TestClientsLinkNoStorage keeps the consumer side light: the Go client
// library and the client commands link the record format (changelog) but
// neither Pebble nor the server side (api, mdt, changelog/store). A
// consumer that imports api/client pulls in gRPC, the generated API and
// changelog, nothing more of this module.
func TestClientsLinkNoStorage(t *testing.T) {
	const mod = "github.com/fidlog/fidlog/"
	for _, pkg := range []string{"api/client", "cmd/lfs", "cmd/lctl", "cmd/mdc", "cmd/fidlog-export", "changelog"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list -deps %s listed nothing", pkg)
		}
		for _, d := range deps {
			for _, f := range []string{"github.com/cockroachdb/", "github.com/DataDog/zstd", mod + "changelog/store", mod + "mdt"} {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s links %s; client code must not link storage or the server", pkg, d)
				}
			}
			if d == mod+"api" {
				t.Errorf("%s links %s (the server); clients need only the generated API and changelog", pkg, d)
			}
		}
	}
}

// TestCommandsDecodeErrorsThroughClient: the commands learn the errno,
// reason and message of a failed call from api/client only, so there is
// one decoding of the server's errors (ErrnoOf, IsEvicted, Message), not a
// copy per command.
func TestCommandsDecodeErrorsThroughClient(t *testing.T) {
	const mod = "github.com/fidlog/fidlog/"
	for _, pkg := range []string{"cmd/internal/cli", "cmd/lfs", "cmd/lctl", "cmd/mdc"} {
		out, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, imp := range strings.Fields(string(out)) {
			switch imp {
			case "google.golang.org/grpc/status", "google.golang.org/grpc/codes", "google.golang.org/genproto/googleapis/rpc/errdetails":
				t.Errorf("%s imports %s; decode errors with api/client", pkg, imp)
			}
		}
	}
}
