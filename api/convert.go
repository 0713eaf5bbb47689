package api

import (
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	"github.com/fidlog/fidlog/mdt"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// fidToPB converts a FID.
func fidToPB(f fid.FID) *commonv1.Fid {
	return &commonv1.Fid{Seq: f.Seq, Oid: f.Oid, Ver: f.Ver}
}

// fidFromPB converts a required FID; a missing one is ErrInvalid.
func fidFromPB(f *commonv1.Fid, field string) (fid.FID, error) {
	if f == nil {
		return fid.FID{}, argError("missing %s", field)
	}
	return fid.FID{Seq: f.GetSeq(), Oid: f.GetOid(), Ver: f.GetVer()}, nil
}

// optFidToPB converts an optional FID: nil for the zero FID.
func optFidToPB(f fid.FID) *commonv1.Fid {
	if f.IsZero() {
		return nil
	}
	return fidToPB(f)
}

var fileTypeToPB = [...]commonv1.ObjectType{
	mdt.TypeReg:  commonv1.ObjectType_OBJECT_TYPE_REG,
	mdt.TypeDir:  commonv1.ObjectType_OBJECT_TYPE_DIR,
	mdt.TypeLnk:  commonv1.ObjectType_OBJECT_TYPE_LNK,
	mdt.TypeChr:  commonv1.ObjectType_OBJECT_TYPE_CHR,
	mdt.TypeBlk:  commonv1.ObjectType_OBJECT_TYPE_BLK,
	mdt.TypeFifo: commonv1.ObjectType_OBJECT_TYPE_FIFO,
	mdt.TypeSock: commonv1.ObjectType_OBJECT_TYPE_SOCK,
}

// typeToPB converts a file type.
func typeToPB(t mdt.FileType) commonv1.ObjectType {
	if int(t) < len(fileTypeToPB) {
		return fileTypeToPB[t]
	}
	return commonv1.ObjectType_OBJECT_TYPE_UNSPECIFIED
}

// POSIX file type bits of MknodRequest.mode.
const (
	sIFMT   = 0170000
	sIFSOCK = 0140000
	sIFLNK  = 0120000
	sIFREG  = 0100000
	sIFBLK  = 0060000
	sIFDIR  = 0040000
	sIFCHR  = 0020000
	sIFIFO  = 0010000
)

// mknodTypeFromPB splits a full POSIX mode into type and permission bits.
func mknodTypeFromPB(mode uint32) (mdt.FileType, uint32, error) {
	perm := mode & 07777
	switch mode & sIFMT {
	case 0, sIFREG:
		return mdt.TypeReg, perm, nil
	case sIFCHR:
		return mdt.TypeChr, perm, nil
	case sIFBLK:
		return mdt.TypeBlk, perm, nil
	case sIFIFO:
		return mdt.TypeFifo, perm, nil
	case sIFSOCK:
		return mdt.TypeSock, perm, nil
	case sIFDIR, sIFLNK:
		return 0, 0, argError("mknod mode %#o: use Mkdir or Symlink for this type", mode)
	}
	return 0, 0, argError("mknod mode %#o: unknown file type bits", mode)
}

func nsToTime(ns int64) time.Time { return time.Unix(0, ns) }

func timeToNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// attrToPB converts attributes.
func attrToPB(a mdt.Attr) *commonv1.Attr {
	return &commonv1.Attr{
		Fid: fidToPB(a.FID), Type: typeToPB(a.Type), Mode: a.Mode & 07777,
		Uid: a.UID, Gid: a.GID, Size: a.Size, Nlink: a.Nlink,
		AtimeNs: timeToNS(a.Atime), MtimeNs: timeToNS(a.Mtime), CtimeNs: timeToNS(a.Ctime),
		Rdev: a.Rdev, SymlinkTarget: []byte(a.Target),
	}
}

// dirEntryToPB converts a directory entry.
func dirEntryToPB(e mdt.DirEntry) *mdtv1.DirEntry {
	return &mdtv1.DirEntry{Name: []byte(e.Name), Fid: fidToPB(e.FID), Type: typeToPB(e.Type)}
}

// setattrFromPB converts the fields to change.
func setattrFromPB(r *mdtv1.SetattrRequest) mdt.SetattrArgs {
	var s mdt.SetattrArgs
	s.Mode, s.UID, s.GID, s.Size = r.Mode, r.Uid, r.Gid, r.Size
	tm := func(p *int64) *time.Time {
		if p == nil {
			return nil
		}
		t := nsToTime(*p)
		return &t
	}
	s.Atime, s.Mtime, s.Ctime = tm(r.AtimeNs), tm(r.MtimeNs), tm(r.CtimeNs)
	return s
}

// recordToPB converts a changelog record to its structured form.
func recordToPB(r *changelog.Record) *changelogv1.Record {
	out := &changelogv1.Record{
		Index: uint64(r.Index), Type: uint32(r.Type), TypeName: r.Type.String(),
		Flags: uint32(r.Flags), TimeNs: timeToNS(r.Time),
		Tfid: fidToPB(r.TFID), Pfid: optFidToPB(r.PFID), Name: []byte(r.Name),
		Jobid: r.JobID, ExtraFlags: r.ExtraFlags,
	}
	if !r.SFID.IsZero() {
		out.Sfid, out.Spfid, out.Sname = fidToPB(r.SFID), fidToPB(r.SPFID), []byte(r.SName)
	}
	if r.ExtraFlags&changelog.ExtraUIDGID != 0 {
		out.Uid, out.Gid = r.UID, r.GID
	}
	if r.ExtraFlags&(changelog.ExtraNID|changelog.ExtraNIDBE) != 0 {
		out.Nid = r.NID
	}
	if r.ExtraFlags&changelog.ExtraOpen != 0 {
		out.OpenFlags = r.OpenFlags
	}
	if r.ExtraFlags&changelog.ExtraXattr != 0 {
		out.XattrName = r.XattrName
	}
	if !r.Hash.IsZero() {
		// A copy: r may be a Record the caller reuses for the next
		// record while this message waits to be sent.
		out.Hash = append([]byte(nil), r.Hash[:]...)
	}
	return out
}

// userToPB converts a changelog user.
func userToPB(u changelog.User, now time.Time) *changelogv1.User {
	return &changelogv1.User{
		Id: u.ID, DisplayName: u.DisplayName(), Name: u.Name, Index: uint64(u.Index),
		IdleSeconds: uint64(max(now.Sub(u.Time)/time.Second, 0)),
		MaskNames:   maskNames(u.Mask), Mask: uint32(u.Mask),
	}
}

// maskNames lists the type names in m, in type order; nil for 0.
func maskNames(m changelog.Mask) []string {
	var out []string
	for _, t := range m.Types() {
		out = append(out, t.String())
	}
	return out
}
