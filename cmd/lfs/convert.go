package main

import (
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
)

func fidFromPB(f *commonv1.Fid) fid.FID {
	return fid.FID{Seq: f.GetSeq(), Oid: f.GetOid(), Ver: f.GetVer()}
}

func fidToPB(f fid.FID) *commonv1.Fid {
	return &commonv1.Fid{Seq: f.Seq, Oid: f.Oid, Ver: f.Ver}
}

// recordFromPB converts a structured record (a server that does not send
// raw records) to the changelog package's form, which renders the line.
func recordFromPB(p *changelogv1.Record) *changelog.Record {
	return &changelog.Record{
		Index:      changelog.Index(p.GetIndex()),
		Type:       changelog.Type(p.GetType()),
		Flags:      uint16(p.GetFlags()),
		Time:       time.Unix(0, p.GetTimeNs()).UTC(),
		TFID:       fidFromPB(p.GetTfid()),
		PFID:       fidFromPB(p.GetPfid()),
		Name:       string(p.GetName()),
		SFID:       fidFromPB(p.GetSfid()),
		SPFID:      fidFromPB(p.GetSpfid()),
		SName:      string(p.GetSname()),
		JobID:      p.GetJobid(),
		ExtraFlags: p.GetExtraFlags(),
		UID:        p.GetUid(),
		GID:        p.GetGid(),
		NID:        p.GetNid(),
		OpenFlags:  p.GetOpenFlags(),
		XattrName:  p.GetXattrName(),
		Hash:       changelog.Hash(append(p.GetHash(), make([]byte, changelog.HashSize)...)[:changelog.HashSize]),
	}
}
