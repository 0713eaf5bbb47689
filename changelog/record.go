package changelog

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fidlog/fidlog/fid"
)

// Index is a changelog record number. The first record ever is 1; indices
// grow by one per record and never go back.
type Index uint64

// Per-record flag bits (low 12 bits of cr_flags).
const (
	// FlagUnlinkLast (CLF_UNLINK_LAST) on UNLNK/RMDIR: the object lost its
	// last link.
	FlagUnlinkLast uint16 = 0x1
	// FlagUnlinkHSMExists (CLF_UNLINK_HSM_EXISTS): last link and an HSM copy exists.
	FlagUnlinkHSMExists uint16 = 0x2
	// FlagRenameLast (CLF_RENAME_LAST) on RENME: the overwritten target lost its last link.
	FlagRenameLast uint16 = 0x1
	// FlagRenameLastExists (CLF_RENAME_LAST_EXISTS): overwritten target had an HSM archive.
	FlagRenameLastExists uint16 = 0x2
	// FlagRenameExchange (fidlog's own; Lustre has no renameat2
	// RENAME_EXCHANGE) on RENME: the entries were swapped, so t= was not
	// removed but now has sp=/sname (and s= has p=/name).
	FlagRenameExchange uint16 = 0x4
	// FlagMask (CLF_FLAGMASK) selects the per-type flags.
	FlagMask uint16 = 0x0FFF
)

// Extra flags (enum changelog_rec_extra_flags), printed as ef=.
const (
	ExtraUIDGID uint64 = 0x1  // CLFE_UIDGID: u=uid:gid present
	ExtraNID    uint64 = 0x2  // CLFE_NID: nid= present
	ExtraOpen   uint64 = 0x4  // CLFE_OPEN: open mode present
	ExtraXattr  uint64 = 0x8  // CLFE_XATTR: xattr name present
	ExtraNIDBE  uint64 = 0x10 // CLFE_NID_BE: NID in the large big-endian form
)

// Open flag bits as the MDS sees them (low 12 bits go into record flags).
const (
	OpenRead   uint32 = 0x1   // FMODE_READ
	OpenWrite  uint32 = 0x2   // FMODE_WRITE
	OpenExec   uint32 = 0x4   // MDS_FMODE_EXEC
	OpenCreate uint32 = 0x40  // O_CREAT
	OpenExcl   uint32 = 0x80  // O_EXCL
	OpenTrunc  uint32 = 0x200 // O_TRUNC
	OpenAppend uint32 = 0x400 // O_APPEND
)

// MaxJobID is the longest jobid a record keeps (31 characters + NUL in Lustre).
const MaxJobID = 31

// MaxName is the longest entry name a record keeps (NAME_MAX).
const MaxName = 255

// Record is one changelog record.
type Record struct {
	Index Index
	Type  Type
	// Flags are the per-type flags (low 12 bits).
	Flags uint16
	// Time is when the record was written; stored with nanosecond precision.
	Time time.Time
	// TFID is the target object; PFID its parent directory (zero if none).
	TFID, PFID fid.FID
	// Name is the entry name (the new name for renames).
	Name string
	// SFID, SPFID and SName describe a rename's source; SFID is zero for
	// records that are not renames.
	SFID, SPFID fid.FID
	SName       string
	// JobID is the client's job identifier, empty when not sent.
	JobID string
	// ExtraFlags says which of the fields below are present (Extra*).
	ExtraFlags uint64
	UID, GID   uint64
	NID        string
	// OpenFlags are the MDS open flags of OPEN/NOPEN/CLOSE records.
	OpenFlags uint32
	// XattrName is the xattr name of XATTR and GXATR records.
	XattrName string
	// Hash is the record's chain hash (chain.go); zero for a record
	// written before the chain existed. It is not part of the Lustre line
	// unless asked for (AppendLineHash).
	Hash Hash
}

// IsRename reports whether r carries the rename extension.
func (r *Record) IsRename() bool {
	return r.Type == CLRename || r.Type == CLExt || r.Type == CLMigrate || !r.SFID.IsZero()
}

// ModeString returns the 3-letter open mode lfs prints after m=: "--x" for
// exec opens, otherwise r for read and w for write, truncate or append.
func ModeString(flags uint32) string {
	if flags&OpenExec != 0 {
		return "--x"
	}
	b := []byte("---")
	if flags&OpenRead != 0 {
		b[0] = 'r'
	}
	if flags&(OpenWrite|OpenTrunc|OpenAppend) != 0 {
		b[1] = 'w'
	}
	return string(b)
}

// AppendLine appends the record as lfs changelog prints it, without the
// trailing newline:
//
//	<index> <NN><TYPE> <HH:MM:SS.nnnnnnnnn> <YYYY.MM.DD> 0x<flags> t=<FID>[ j=..][ ef=0x..[ u=..][ nid=..][ m=..][ x=..]][ p=..][ name][ s=.. sp=.. sname]
func (r *Record) AppendLine(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(r.Index), 10)
	b = append(b, ' ')
	b = append(b, r.Type.Label()...)
	b = append(b, ' ')
	b = r.Time.UTC().AppendFormat(b, "15:04:05.000000000 2006.01.02")
	b = append(b, " 0x"...)
	b = strconv.AppendUint(b, uint64(r.Flags&FlagMask), 16)
	b = append(b, " t="...)
	b = append(b, r.TFID.String()...)
	if r.JobID != "" {
		b = append(b, " j="...)
		b = append(b, r.JobID...)
	}
	b = append(b, " ef=0x"...)
	b = strconv.AppendUint(b, r.ExtraFlags, 16)
	if r.ExtraFlags&ExtraUIDGID != 0 {
		b = append(b, " u="...)
		b = strconv.AppendUint(b, r.UID, 10)
		b = append(b, ':')
		b = strconv.AppendUint(b, r.GID, 10)
	}
	if r.ExtraFlags&ExtraNID != 0 {
		b = append(b, " nid="...)
		b = append(b, r.NID...)
	}
	if r.ExtraFlags&ExtraOpen != 0 {
		if m := ModeString(r.OpenFlags); m != "---" {
			b = append(b, " m="...)
			b = append(b, m...)
		}
	}
	if r.ExtraFlags&ExtraXattr != 0 && r.XattrName != "" {
		b = append(b, " x="...)
		b = append(b, r.XattrName...)
	}
	if !r.PFID.IsZero() {
		b = append(b, " p="...)
		b = append(b, r.PFID.String()...)
	}
	if r.Name != "" {
		b = append(b, ' ')
		b = append(b, r.Name...)
	}
	if !r.SFID.IsZero() {
		b = append(b, " s="...)
		b = append(b, r.SFID.String()...)
		b = append(b, " sp="...)
		b = append(b, r.SPFID.String()...)
		b = append(b, ' ')
		b = append(b, r.SName...)
	}
	return b
}

// AppendLineHash appends the lfs changelog line with the chain hash as an
// extra trailing field, " h=<64 hex digits>" ("h=-" for a record without
// a hash).
func (r *Record) AppendLineHash(b []byte) []byte {
	b = r.AppendLine(b)
	b = append(b, " h="...)
	if r.Hash.IsZero() {
		return append(b, '-')
	}
	return hex.AppendEncode(b, r.Hash[:])
}

// Line returns the lfs changelog line for r, without a newline.
func (r *Record) Line() string { return string(r.AppendLine(nil)) }

// JSONRecord is the JSON view of a record: one object per record, named
// fields, for log pipelines (NDJSON). Absent fields are omitted.
//
// Names are bytes (any but '/' and NUL) and JSON strings are UTF-8, so a
// name that is not valid UTF-8 is written twice: name (or source_name) as
// encoding/json writes it, each invalid byte as U+FFFD, for people, and
// name_b64 (source_name_b64) holding the exact bytes in standard base64,
// for programs (JSONName reads the pair back). A valid UTF-8 name has no
// _b64 field, so its line is unchanged.
type JSONRecord struct {
	Index      uint64  `json:"index"`
	Type       string  `json:"type"`
	TypeNum    uint8   `json:"type_num"`
	Flags      string  `json:"flags"`
	Time       string  `json:"time"`
	TimeNS     int64   `json:"time_ns"`
	Target     string  `json:"target"`
	Parent     string  `json:"parent,omitempty"`
	Name       string  `json:"name,omitempty"`
	NameB64    string  `json:"name_b64,omitempty"`
	Source     string  `json:"source,omitempty"`
	SrcParent  string  `json:"source_parent,omitempty"`
	SrcName    string  `json:"source_name,omitempty"`
	SrcNameB64 string  `json:"source_name_b64,omitempty"`
	JobID      string  `json:"jobid,omitempty"`
	ExtraFlags string  `json:"extra_flags"`
	UID        *uint64 `json:"uid,omitempty"`
	GID        *uint64 `json:"gid,omitempty"`
	NID        string  `json:"nid,omitempty"`
	Mode       string  `json:"mode,omitempty"`
	OpenFlags  string  `json:"open_flags,omitempty"`
	Xattr      string  `json:"xattr,omitempty"`
	// Hash is the chain hash in hex (chained records only).
	Hash string `json:"hash,omitempty"`
	// Raw is the stored encoding in standard base64, set only when asked
	// for (JSONRaw): with it an exported line can be verified offline.
	Raw string `json:"raw,omitempty"`
	// DeniedOp and Errno unpack a DENY record's flags.
	DeniedOp string `json:"denied_op,omitempty"`
	Errno    uint16 `json:"errno,omitempty"`
}

// DenyFlags packs the flags of a DENY record as HSM records carry an error
// and an event: the errno in bits 0-6 and the type of the refused
// operation (MKDIR, UNLNK, SATTR, ...) in bits 7-11. A mkdir refused with
// EACCES is 0x10d.
func DenyFlags(op Type, errno uint16) uint16 {
	return (uint16(op)&0x1f)<<7 | errno&0x7f
}

// Denied unpacks the flags of a DENY record: the refused operation and the
// errno.
func (r *Record) Denied() (op Type, errno uint16) {
	f := r.Flags & FlagMask
	return Type(f >> 7), f & 0x7f
}

// JSON returns the JSON view of r.
func (r *Record) JSON() JSONRecord {
	j := JSONRecord{
		Index:      uint64(r.Index),
		Type:       r.Type.String(),
		TypeNum:    uint8(r.Type),
		Flags:      fmt.Sprintf("0x%x", r.Flags&FlagMask),
		Time:       r.Time.UTC().Format(time.RFC3339Nano),
		TimeNS:     r.Time.UnixNano(),
		Target:     r.TFID.String(),
		Name:       r.Name,
		NameB64:    NameB64(r.Name),
		JobID:      r.JobID,
		ExtraFlags: fmt.Sprintf("0x%x", r.ExtraFlags),
	}
	if !r.PFID.IsZero() {
		j.Parent = r.PFID.String()
	}
	if !r.SFID.IsZero() {
		j.Source, j.SrcParent, j.SrcName = r.SFID.String(), r.SPFID.String(), r.SName
		j.SrcNameB64 = NameB64(r.SName)
	}
	if r.ExtraFlags&ExtraUIDGID != 0 {
		uid, gid := r.UID, r.GID
		j.UID, j.GID = &uid, &gid
	}
	if r.ExtraFlags&ExtraNID != 0 {
		j.NID = r.NID
	}
	if r.ExtraFlags&ExtraOpen != 0 {
		j.Mode = ModeString(r.OpenFlags)
		j.OpenFlags = fmt.Sprintf("0x%x", r.OpenFlags)
	}
	if r.ExtraFlags&ExtraXattr != 0 {
		j.Xattr = r.XattrName
	}
	if r.Type == CLDenied {
		op, errno := r.Denied()
		j.DeniedOp, j.Errno = op.String(), errno
	}
	if !r.Hash.IsZero() {
		j.Hash = r.Hash.String()
	}
	return j
}

// NameB64 returns the _b64 companion of a name (or path) in the JSON
// views: "" for valid UTF-8, which JSON carries as it is, else the exact
// bytes in standard base64.
func NameB64(name string) string {
	if utf8.ValidString(name) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(name))
}

// JSONName returns the exact bytes of a name from its two JSON fields
// (name and name_b64): the base64 when present, else the string.
func JSONName(name, b64 string) (string, error) {
	if b64 == "" {
		return name, nil
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("changelog: bad base64 name %q: %w", b64, err)
	}
	return string(b), nil
}

// JSONRaw returns the JSON view of r with raw, r's stored encoding, in
// the raw field: the form an offline verifier checks (VerifyJSONLine).
func (r *Record) JSONRaw(raw []byte) JSONRecord {
	j := r.JSON()
	j.Raw = base64.StdEncoding.EncodeToString(raw)
	return j
}

// MarshalJSON renders the JSON view.
func (r *Record) MarshalJSON() ([]byte, error) { return json.Marshal(r.JSON()) }
