package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGrpcurlList checks the services are discoverable by a stock tool
// through reflection. It runs only when grpcurl is on PATH, e.g. after
//
//	GOBIN=$(mktemp -d) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest
//
// (grpcurl is deliberately not a dependency in go.mod).
func TestGrpcurlList(t *testing.T) {
	bin, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl not on PATH")
	}
	e := newEnv(t)
	out, err := exec.CommandContext(ctxT(t), bin, "-plaintext", e.tcp, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	for _, want := range []string{"lustre.changelog.v1.ChangelogService", "lustre.mdt.v1.NamespaceService",
		"lustre.params.v1.ParamsService", "lustre.nodemap.v1.NodemapService", "grpc.health.v1.Health"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("grpcurl list lacks %s:\n%s", want, out)
		}
	}
	out, err = exec.CommandContext(ctxT(t), bin, "-plaintext", "-d", `{"device":"`+device+`"}`, e.tcp, "lustre.changelog.v1.ChangelogService/GetState").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "firstIndex") {
		t.Fatalf("grpcurl GetState: %v\n%s", err, out)
	}
}
