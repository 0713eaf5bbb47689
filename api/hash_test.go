package api_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestDecodedRecordsCarryTheirOwnHash: every decoded record of a batch
// carries its own chain hash, the one of its raw form. The server decodes
// a batch into one reused Record; a message that pointed into it would
// carry the last record's hash for all, and race with the next decode.
func TestDecodedRecordsCarryTheirOwnHash(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "", "")
	for i := range 5 {
		if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("f%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(raw bool) []*changelogv1.ReadResponse {
		st, err := c.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: device, Raw: raw})
		if err != nil {
			t.Fatal(err)
		}
		var out []*changelogv1.ReadResponse
		for {
			m, err := st.Recv()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	want := map[uint64][]byte{}
	for _, m := range read(true) {
		for _, raw := range m.GetRawRecords() {
			r, err := changelog.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			want[uint64(r.Index)] = append([]byte(nil), r.Hash[:]...)
		}
	}
	n := 0
	for _, m := range read(false) {
		for _, r := range m.GetRecords() {
			n++
			if w := want[r.GetIndex()]; !bytes.Equal(r.GetHash(), w) {
				t.Errorf("record %d: hash %x, raw record's %x", r.GetIndex(), r.GetHash(), w)
			}
		}
	}
	if n < 5 || len(want) != n {
		t.Fatalf("%d decoded records, %d raw", n, len(want))
	}
}
