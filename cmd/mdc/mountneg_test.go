package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/fidlog/fidlog/api/client"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// fakeLister answers Readdir with names (in pages of max_entries, more
// while any are left, or always more when endless) and counts the calls.
type fakeLister struct {
	mdtv1.NamespaceServiceClient
	names   []string
	endless bool
	calls   int
}

func (f *fakeLister) Readdir(_ context.Context, r *mdtv1.ReaddirRequest, _ ...grpc.CallOption) (*mdtv1.ReaddirResponse, error) {
	f.calls++
	if f.endless {
		return &mdtv1.ReaddirResponse{Entries: []*mdtv1.DirEntry{{Name: []byte(fmt.Sprint("e", f.calls))}}, More: true}, nil
	}
	var out mdtv1.ReaddirResponse
	for _, k := range f.names {
		if k > string(r.GetStartAfter()) && len(out.Entries) < int(r.GetMaxEntries()) {
			out.Entries = append(out.Entries, &mdtv1.DirEntry{Name: []byte(k)})
		}
	}
	out.More = len(out.Entries) > 0 && string(out.Entries[len(out.Entries)-1].GetName()) != f.names[len(f.names)-1]
	return &out, nil
}

// TestNameMissing: the mount answers that a name is missing only when it
// knows the directory's names (it made the directory, or listed it) and
// that the server let this caller search it, both within --attr-timeout;
// a name it added, another caller, a chmod or rename (the epoch), an
// unknown outcome and the timeout each send the lookup to the server,
// and a directory too large to list is not listed again before the
// timeout.
func TestNameMissing(t *testing.T) {
	ctx := context.Background()
	root := caller{id: client.Identity{UID: 0, GID: 0}}
	user := caller{id: client.Identity{UID: 1000, GID: 1000, Groups: []uint32{10}}}
	userOtherGroups := caller{id: client.Identity{UID: 1000, GID: 1000, Groups: []uint32{11}}}

	off := &node{m: &mountFS{}}
	off.namesEmpty()
	off.allowSearch(root)
	if off.nameMissing(ctx, root, "x") {
		t.Fatal("--attr-timeout 0: a missing name was answered")
	}

	f := &fakeLister{names: []string{"a", "b"}}
	n := &node{m: &mountFS{ns: f, attrTimeout: time.Hour}}
	n.namesEmpty()
	if n.nameMissing(ctx, root, "x") {
		t.Fatal("answered for a caller the server has not let search the directory")
	}
	n.allowSearch(root)
	n.allowSearch(user)
	if !n.nameMissing(ctx, root, "x") || !n.nameMissing(ctx, user, "x") {
		t.Fatal("a new directory's missing name was not answered")
	}
	if n.nameMissing(ctx, userOtherGroups, "x") {
		t.Fatal("answered for the same uid with other groups")
	}
	n.nameAdded("x")
	if n.nameMissing(ctx, root, "x") {
		t.Fatal("a name this mount added was answered missing")
	}
	n.m.searchChanged()
	if n.nameMissing(ctx, root, "y") {
		t.Fatal("answered after a chmod or rename of a directory (epoch)")
	}
	n.allowSearch(root)
	if f.calls != 0 {
		t.Fatalf("%d listings of a directory whose names the mount knew", f.calls)
	}
	n.namesUncertain()
	if !n.nameMissing(ctx, root, "y") || f.calls != 1 {
		t.Fatalf("after an unknown outcome: missing=%v after %d listings, want true after 1", n.nameMissing(ctx, root, "y"), f.calls)
	}
	if n.nameMissing(ctx, root, "a") || n.nameMissing(ctx, root, "x") {
		t.Fatal("a listed name, or one added before, was answered missing")
	}

	// A directory the mount did not make is listed once, page by page.
	var many []string
	for i := range readdirPage + 10 {
		many = append(many, fmt.Sprintf("n%05d", i))
	}
	f2 := &fakeLister{names: many}
	n2 := &node{m: &mountFS{ns: f2, attrTimeout: time.Hour}}
	n2.allowSearch(root)
	if !n2.nameMissing(ctx, root, "zz") || n2.nameMissing(ctx, root, many[readdirPage+5]) || f2.calls != 2 {
		t.Fatalf("listing of %d names: %d calls, want 2", len(many), f2.calls)
	}

	// Too large: not answered, and not listed again before the timeout.
	f3 := &fakeLister{endless: true}
	n3 := &node{m: &mountFS{ns: f3, attrTimeout: time.Hour}}
	n3.allowSearch(root)
	if n3.nameMissing(ctx, root, "x") || n3.nameMissing(ctx, root, "x") || f3.calls != dirNamesPages {
		t.Fatalf("a directory of more than %d pages: %d listing calls, want %d, and no answer", dirNamesPages, f3.calls, dirNamesPages)
	}

	// A directory this mount made that grew past maxKnownNames: its
	// names are forgotten, so its lookups go to the server.
	n5 := &node{m: &mountFS{ns: &fakeLister{endless: true}, attrTimeout: time.Hour}}
	n5.namesEmpty()
	n5.allowSearch(root)
	for i := range maxKnownNames {
		n5.nameAdded(fmt.Sprint("f", i))
	}
	if !n5.nameMissing(ctx, root, "x") {
		t.Fatal("not answered with maxKnownNames names known")
	}
	n5.nameAdded("one-more")
	if n5.nameMissing(ctx, root, "x") || n5.names.known != nil {
		t.Fatalf("answered, or %d names kept, past maxKnownNames", len(n5.names.known))
	}

	// Both what the mount knows expire after --attr-timeout.
	const ttl = 50 * time.Millisecond
	n4 := &node{m: &mountFS{ns: &fakeLister{names: []string{"a"}}, attrTimeout: ttl}}
	n4.namesEmpty()
	n4.allowSearch(root)
	if !n4.nameMissing(ctx, root, "x") {
		t.Fatal("not answered within the timeout")
	}
	time.Sleep(ttl + 20*time.Millisecond)
	if n4.nameMissing(ctx, root, "x") {
		t.Fatal("answered after --attr-timeout")
	}
}
