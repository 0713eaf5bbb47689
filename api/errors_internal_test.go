package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/mdt"
	"github.com/fidlog/fidlog/nodemap"
)

func TestToStatus(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", err)) }
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
		errno  syscall.Errno
	}{
		{&changelog.EvictedError{User: "cl2-x", Reason: "idle"}, codes.FailedPrecondition, ReasonUserEvicted, syscall.ENOENT},
		{wrap(&changelog.EvictedError{User: "cl2-x"}), codes.FailedPrecondition, ReasonUserEvicted, syscall.ENOENT},
		{&changelog.UserError{User: "cl9", Err: changelog.ErrUnknownUser}, codes.NotFound, "ENOENT", syscall.ENOENT},
		{&changelog.UserError{User: "x", Err: changelog.ErrUserExists}, codes.AlreadyExists, "EEXIST", syscall.EEXIST},
		{&changelog.UserError{User: "x", Err: changelog.ErrNameTooLong}, codes.InvalidArgument, "ENAMETOOLONG", syscall.ENAMETOOLONG},
		{&changelog.MaskError{Mask: "x", Token: "x"}, codes.InvalidArgument, "EINVAL", syscall.EINVAL},
		{&changelog.RangeError{End: 9, Current: 3}, codes.InvalidArgument, "EINVAL", syscall.EINVAL},
		{&changelog.NoSpaceError{}, codes.ResourceExhausted, "ENOSPC", syscall.ENOSPC},
		{changelog.ErrTooManyUsers, codes.ResourceExhausted, "EOVERFLOW", syscall.EOVERFLOW},
		{wrap(&mdt.PathError{Op: "stat", Path: "a", Err: mdt.ErrNotFound}), codes.NotFound, "ENOENT", syscall.ENOENT},
		{&mdt.PathError{Op: "rmdir", Path: "a", Err: mdt.ErrNotEmpty}, codes.FailedPrecondition, "ENOTEMPTY", syscall.ENOTEMPTY},
		{&mdt.PathError{Op: "x", Path: "a", Err: mdt.ErrNotDir}, codes.FailedPrecondition, "ENOTDIR", syscall.ENOTDIR},
		{&mdt.PathError{Op: "x", Path: "a", Err: mdt.ErrIsDir}, codes.FailedPrecondition, "EISDIR", syscall.EISDIR},
		{&mdt.PathError{Op: "x", Path: "a", Err: mdt.ErrPermission}, codes.PermissionDenied, "EACCES", syscall.EACCES},
		{&mdt.PathError{Op: "x", Path: "a", Err: mdt.ErrNotPermitted}, codes.PermissionDenied, "EPERM", syscall.EPERM},
		{&mdt.PathError{Op: "x", Path: "a", Err: mdt.ErrNoData}, codes.NotFound, "ENODATA", syscall.ENODATA},
		{&mdt.PathError{Op: "x", Path: "a", Err: mdt.ErrRange}, codes.OutOfRange, "ERANGE", syscall.ERANGE},
		{fmt.Errorf("%w: %w", mdt.ErrNoSpace, changelog.ErrNoSpace), codes.ResourceExhausted, "ENOSPC", syscall.ENOSPC},
		{fmt.Errorf("%w: disk", mdt.ErrIO), codes.Internal, "EIO", syscall.EIO},
		{errors.New("something unexpected"), codes.Internal, "EIO", syscall.EIO},
		{mdt.ErrClosed, codes.Unavailable, "ESHUTDOWN", syscall.ESHUTDOWN},
		{ErrDraining, codes.Unavailable, "ESHUTDOWN", syscall.ESHUTDOWN},
		{context.Canceled, codes.Canceled, "ECANCELED", syscall.ECANCELED},
		{wrap(context.DeadlineExceeded), codes.DeadlineExceeded, "ETIMEDOUT", syscall.ETIMEDOUT},
		{&nodemap.OverlapError{}, codes.AlreadyExists, "EEXIST", syscall.EEXIST},
		{&nodemap.NodemapError{Name: "x", Err: nodemap.ErrNotFound}, codes.NotFound, "ENOENT", syscall.ENOENT},
		{&nodemap.PropertyError{Property: "p", Err: nodemap.ErrUnknownProperty}, codes.InvalidArgument, "EINVAL", syscall.EINVAL},
		{&nodemap.PropertyError{Property: "p", Err: nodemap.ErrNotPermitted}, codes.PermissionDenied, "EPERM", syscall.EPERM},
		{argError("bad %s", "x"), codes.InvalidArgument, "EINVAL", syscall.EINVAL},
		{fmt.Errorf("%w 'x'", ErrUnknownDevice), codes.NotFound, "ENOENT", syscall.ENOENT},
		{fmt.Errorf("%w: caller", ErrPermission), codes.PermissionDenied, "EPERM", syscall.EPERM},
		{&mdt.PathError{Op: "rmdir", Path: "/", Err: mdt.ErrBusy}, codes.FailedPrecondition, "EBUSY", syscall.EBUSY},
		{nodemap.ErrOverlap, codes.AlreadyExists, "EEXIST", syscall.EEXIST},
		{&changelog.BehindError{}, codes.NotFound, "ENOENT", syscall.ENOENT},
	} {
		err := toStatus(tc.err)
		st, _ := status.FromError(err)
		if st.Code() != tc.code || st.Message() != tc.err.Error() {
			t.Errorf("%v: code %v message %q, want %v", tc.err, st.Code(), st.Message(), tc.code)
		}
		var ei *errdetails.ErrorInfo
		for _, d := range st.Details() {
			ei, _ = d.(*errdetails.ErrorInfo)
		}
		if ei == nil || ei.GetDomain() != ErrorDomain || ei.GetReason() != tc.reason || ei.GetMetadata()["errno"] != strconv.Itoa(int(tc.errno)) {
			t.Errorf("%v: ErrorInfo %v, want %s errno %d", tc.err, ei, tc.reason, tc.errno)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
	se := status.Error(codes.Aborted, "x")
	if toStatus(se) != se {
		t.Error("a status error is not passed through")
	}
	ev := toStatus(&changelog.EvictedError{User: "cl3-r", Reason: "capacity", Index: 7, Unprocessed: 9})
	st, _ := status.FromError(ev)
	md := st.Details()[0].(*errdetails.ErrorInfo).GetMetadata()
	if md["user"] != "cl3-r" || md["gc"] != "capacity" || md["index"] != "7" || md["unprocessed"] != "9" {
		t.Errorf("eviction metadata %v", md)
	}
}

func TestEscapeInvalidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"plain 'café'":       "plain 'café'",
		"open 'caf\xe9\xff'": `open 'caf\xe9\xff'`,
	} {
		if got := escapeInvalidUTF8(in); got != want {
			t.Errorf("escapeInvalidUTF8(%q) = %q, want %q", in, got, want)
		}
	}
	st, _ := status.FromError(toStatus(&mdt.PathError{Op: "getxattr", Path: "caf\xe9", Err: mdt.ErrNoData}))
	if len(st.Details()) != 1 || !strings.Contains(st.Message(), `caf\xe9`) {
		t.Fatalf("status of a non-UTF-8 path lost its details: %v", st.Proto())
	}
}
