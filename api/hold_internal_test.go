package api

import (
	"testing"

	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// readOnlyMethods are the NamespaceService RPCs that commit nothing to the
// log on success (a refusal's DENY record aside).
var readOnlyMethods = map[string]bool{
	"Stat": true, "Readdir": true, "Read": true, "StatFid": true, "Statfs": true,
	"Getxattr": true, "Listxattr": true, "Fid2Path": true, "Path2Fid": true,
}

// TestWriteMethodsComplete: every NamespaceService RPC is either announced
// as a writer (writeMethods) or listed as read-only here, so an RPC added
// to the service, or one left out of writeMethods (OpenFid was: the
// mount's opens were never announced), fails until it is classified.
func TestWriteMethodsComplete(t *testing.T) {
	desc := mdtv1.NamespaceService_ServiceDesc
	var n int
	for _, m := range desc.Methods {
		full := "/" + desc.ServiceName + "/" + m.MethodName
		switch w, r := writeMethods[full], readOnlyMethods[m.MethodName]; {
		case w && r:
			t.Errorf("%s is both a write and a read-only RPC", full)
		case !w && !r:
			t.Errorf("%s is neither announced as a writer nor listed as read-only", full)
		case w:
			n++
		}
	}
	if n != len(writeMethods) {
		t.Errorf("writeMethods has %d entries, %d of them NamespaceService unary RPCs", len(writeMethods), n)
	}
}
