package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// event is one item on its way to the sinks: a record, the MDT it came
// from and the paths the exporter resolved for it ("" when unknown); or,
// when the sources follow the hash chain, one of the chain's signed
// checkpoints or its anchor (then rec is nil).
type event struct {
	dev    string // "lustre-MDT0000"
	rec    *changelog.Record
	path   string // full path of the target ("/d/f")
	spath  string // full path of a rename's source
	ck     *changelog.Checkpoint
	anchor *changelog.Anchor
	// raw is the record as the log stores it, as the server sent it (a
	// chain follow's; nil otherwise): the ndjson line carries it as it is
	// instead of encoding rec again.
	raw []byte
}

// isRecord reports whether e is a record (not a checkpoint or an anchor).
func (e *event) isRecord() bool { return e.rec != nil }

// fsName returns the file system part of a device name ("lustre").
func fsName(dev string) string {
	if i := strings.LastIndexByte(dev, '-'); i > 0 {
		return dev[:i]
	}
	return dev
}

// targetName returns the target part of a device name ("MDT0000").
func targetName(dev string) string {
	if i := strings.LastIndexByte(dev, '-'); i >= 0 {
		return dev[i+1:]
	}
	return dev
}

// format renders events as one line each (without the newline) and reads
// back which record a line holds.
type format struct {
	name string
	ext  string // file name extension, with the dot
	// appendLine appends e's line, without a newline, to b.
	appendLine func(b []byte, e *event) []byte
	// parse returns the device and index a line written by appendLine
	// holds; errChainLine for a checkpoint or anchor line.
	parse func(line []byte) (dev string, idx changelog.Index, err error)
	// appendChain, nil for formats that cannot carry the evidence of the
	// hash chain, appends a checkpoint's or an anchor's line.
	appendChain func(b []byte, e *event) []byte
}

// appendEvent appends e's line to b; ok is false when f cannot carry it
// (a checkpoint or an anchor in a format without appendChain).
func (f *format) appendEvent(b []byte, e *event) (_ []byte, ok bool) {
	switch {
	case e.isRecord():
		return f.appendLine(b, e), true
	case f.appendChain != nil:
		return f.appendChain(b, e), true
	}
	return b, false
}

// line renders e in f, nil when f cannot carry it.
func (f *format) line(e *event) []byte {
	b, _ := f.appendEvent(nil, e)
	return b
}

// lineSizeHint is about an ndjson line of a CREAT with its path (~550
// bytes): lines reserves this much a line up front.
const lineSizeHint = 576

// lineBuffers are the buffers format.lines renders a delivery into, kept
// from one delivery to the next when no sink holds on to its lines.
type lineBuffers struct {
	buf   []byte
	lines [][]byte
	ends  []int
}

// lines renders evs in f, line i for evs[i] (nil when f cannot carry it),
// into one buffer: no allocation for a delivery when lb's buffers from
// an earlier one are large enough (rendering each line from nil grew it
// five or six times, and a fresh buffer for each delivery cost zeroing and
// page faults), one otherwise. Each line is capped at its end, so
// appending to one never writes over the next. The lines are valid until
// lb is used again.
func (f *format) lines(evs []*event, lb *lineBuffers) [][]byte {
	n := len(evs)
	lb.lines = slices.Grow(lb.lines[:0], n)[:n]
	lb.ends = slices.Grow(lb.ends[:0], n)[:n]
	buf := lb.buf[:0]
	if cap(buf) < n*lineSizeHint {
		// Twice what this delivery needs: a new buffer (zeroed, faulted
		// in) for each larger delivery cost 14 % of the exporter's CPU
		// while it started.
		buf = make([]byte, 0, 2*n*lineSizeHint)
	}
	ends := lb.ends
	for i, e := range evs {
		var ok bool
		if buf, ok = f.appendEvent(buf, e); !ok {
			ends[i] = -1
			continue
		}
		ends[i] = len(buf)
	}
	lb.buf = buf
	out := lb.lines
	start := 0
	for i, end := range ends {
		if end < 0 {
			out[i] = nil
			continue
		}
		out[i] = buf[start:end:end]
		start = end
	}
	return out
}

// formats are the known formats by name.
var formats = map[string]*format{
	"ndjson":     {name: "ndjson", ext: ".ndjson", appendLine: appendNDJSON, parse: parseJSONLine, appendChain: appendChainNDJSON},
	"scale-json": {name: "scale-json", ext: ".json", appendLine: appendScaleJSON, parse: parseScaleLine},
	"csv":        {name: "csv", ext: ".csv", appendLine: appendCSV, parse: parseCSVLine},
	"lustre":     {name: "lustre", ext: ".log", appendLine: appendLustre, parse: parseLustreLine},
}

// formatNames lists the formats for messages.
const formatNames = "ndjson, scale-json, csv, lustre"

// errBadLine: a line a format cannot read back.
var errBadLine = errors.New("export: line not written by this format")

// errChainLine: an ndjson line that is a checkpoint or an anchor, not a
// record.
var errChainLine = errors.New("export: checkpoint or anchor line")

// rfc3339Fixed is RFC 3339 in UTC with all nine digits of nanoseconds, so
// that times sort as strings and have one width.
const rfc3339Fixed = "2006-01-02T15:04:05.000000000Z07:00"

// ndjsonSchema is the schemaVersion of every ndjson line.
const ndjsonSchema = changelog.ExportSchema

// appendNDJSON writes e's line with changelog.AppendExportJSON: the
// record's fields, hash and stored bytes (which lfs changelog_verify
// checks; the bytes received when the source has them), and the device
// and paths of the export.
func appendNDJSON(b []byte, e *event) []byte {
	return changelog.AppendExportJSON(b, e.rec, changelog.ExportFields{Device: e.dev, Path: e.path, SourcePath: e.spath, Raw: e.raw})
}

func parseJSONLine(line []byte) (string, changelog.Index, error) {
	var v struct {
		Device     string          `json:"device"`
		Index      uint64          `json:"index"`
		Checkpoint json.RawMessage `json:"checkpoint"`
		Anchor     json.RawMessage `json:"anchor"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.Device == "" {
		return "", 0, errBadLine
	}
	if v.Checkpoint != nil || v.Anchor != nil {
		return v.Device, 0, errChainLine
	}
	if v.Index == 0 {
		return "", 0, errBadLine
	}
	return v.Device, changelog.Index(v.Index), nil
}

// parseChainLine reads an ndjson checkpoint or anchor line: its device and
// the checkpoint's sequence number (0 for an anchor).
func parseChainLine(line []byte) (dev string, seq uint64, err error) {
	var v struct {
		Device     string `json:"device"`
		Checkpoint *struct {
			Seq uint64 `json:"seq"`
		} `json:"checkpoint"`
		Anchor *changelog.AnchorJSON `json:"anchor"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.Device == "" || (v.Checkpoint == nil) == (v.Anchor == nil) {
		return "", 0, errBadLine
	}
	if v.Checkpoint != nil {
		return v.Device, v.Checkpoint.Seq, nil
	}
	return v.Device, 0, nil
}

// appendChainNDJSON renders a checkpoint or an anchor as a line of its
// own, which no record line can be taken for (records have "index" at the
// top level):
//
//	{"device":"D","checkpoint":{...changelog.CheckpointJSON, with raw...}}
//	{"device":"D","anchor":{"index":N,"hash":"..."}}
//
// changelog.Verifier.JSONLine checks them (lfs changelog_verify --input).
func appendChainNDJSON(b []byte, e *event) []byte {
	b = append(b, `{"device":`...)
	b = changelog.AppendJSONString(b, e.dev)
	var out []byte
	var err error
	if e.ck != nil {
		b = append(b, `,"checkpoint":`...)
		out, err = json.Marshal(e.ck.JSON())
	} else {
		b = append(b, `,"anchor":`...)
		out, err = json.Marshal(changelog.AnchorJSON{Index: uint64(e.anchor.Index), Hash: e.anchor.Hash.String()})
	}
	if err != nil {
		panic(err) // plain strings and numbers
	}
	b = append(b, out...)
	return append(b, '}')
}

// objectFID is the object a record is about: its target, or a rename's
// source when the rename overwrote nothing (Lustre leaves t= zero then).
func objectFID(r *changelog.Record) fid.FID {
	if r.TFID.IsZero() && !r.SFID.IsZero() {
		return r.SFID
	}
	return r.TFID
}

// scaleRecord is the scale-json format: the attribute names of IBM Spectrum
// Scale's file audit logging, plus recordIndex and recordType (fidlog's).
type scaleRecord struct {
	LWEJSON       string  `json:"LWE_JSON"`
	Path          string  `json:"path"`
	PathB64       string  `json:"path_b64,omitempty"`
	OldPath       string  `json:"oldPath,omitempty"`
	OldPathB64    string  `json:"oldPath_b64,omitempty"`
	ClusterName   string  `json:"clusterName"`
	NodeName      string  `json:"nodeName"`
	NFSClientIP   *string `json:"nfsClientIp"`
	FSName        string  `json:"fsName"`
	Event         string  `json:"event"`
	Inode         string  `json:"inode"`
	OpenFlags     string  `json:"openFlags"`
	EventTime     string  `json:"eventTime"`
	ClientUserID  string  `json:"clientUserId"`
	ClientGroupID string  `json:"clientGroupId"`
	ProcessID     string  `json:"processId"`
	Xattrs        *string `json:"xattrs"`
	SubEvent      string  `json:"subEvent"`
	RecordIndex   uint64  `json:"recordIndex"`
	RecordType    string  `json:"recordType"`
}

// scaleLWE is the LWE_JSON version written.
const scaleLWE = "0.0.2"

// scaleEvent maps a record type to a Spectrum Scale event name; types it
// has no event for keep their Lustre name.
func scaleEvent(t changelog.Type) string {
	switch t {
	case changelog.CLCreate, changelog.CLMkdir, changelog.CLSoftlink, changelog.CLMknod, changelog.CLHardlink:
		return "CREATE"
	case changelog.CLUnlink:
		return "UNLINK"
	case changelog.CLRmdir:
		return "RMDIR"
	case changelog.CLRename:
		return "RENAME"
	case changelog.CLOpen, changelog.CLDeniedOpen:
		return "OPEN"
	case changelog.CLClose:
		return "CLOSE"
	case changelog.CLXattr, changelog.CLGetxattr:
		return "XATTRCHANGE"
	case changelog.CLSetattr, changelog.CLTrunc, changelog.CLMtime, changelog.CLCtime, changelog.CLAtime, changelog.CLLayout:
		return "GPFSATTRCHANGE"
	}
	return t.String()
}

func appendScaleJSON(b []byte, e *event) []byte {
	r := e.rec
	s := scaleRecord{
		LWEJSON:     scaleLWE,
		Path:        e.path,
		ClusterName: fsName(e.dev),
		NodeName:    e.dev,
		FSName:      fsName(e.dev),
		Event:       scaleEvent(r.Type),
		Inode:       objectFID(r).String(),
		OpenFlags:   strconv.FormatUint(uint64(r.OpenFlags), 10),
		EventTime:   r.Time.UTC().Format("2006-01-02_15:04:05.000000000-0700"),
		ProcessID:   r.JobID,
		SubEvent:    "NONE",
		RecordIndex: uint64(r.Index),
		RecordType:  r.Type.String(),
	}
	if s.Path == "" && r.Name != "" {
		s.Path = r.Name
	}
	if !r.SFID.IsZero() {
		s.OldPath = e.spath
		if s.OldPath == "" {
			s.OldPath = r.SName
		}
	}
	s.PathB64, s.OldPathB64 = changelog.NameB64(s.Path), changelog.NameB64(s.OldPath)
	if r.ExtraFlags&changelog.ExtraNID != 0 && r.NID != "" {
		nid := r.NID
		s.NFSClientIP = &nid
	}
	if r.ExtraFlags&changelog.ExtraUIDGID != 0 {
		s.ClientUserID = strconv.FormatUint(r.UID, 10)
		s.ClientGroupID = strconv.FormatUint(r.GID, 10)
	}
	if r.ExtraFlags&changelog.ExtraXattr != 0 && r.XattrName != "" {
		x := r.XattrName
		s.Xattrs = &x
	}
	out, err := json.Marshal(&s)
	if err != nil {
		panic(err)
	}
	return append(b, out...)
}

func parseScaleLine(line []byte) (string, changelog.Index, error) {
	var v struct {
		NodeName    string `json:"nodeName"`
		RecordIndex uint64 `json:"recordIndex"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.NodeName == "" || v.RecordIndex == 0 {
		return "", 0, errBadLine
	}
	return v.NodeName, changelog.Index(v.RecordIndex), nil
}

// appendCSV renders Qumulo's audit field order:
//
//	client_ip,"user_id",protocol,operation,status,file_id,"path","secondary_path"
//
// followed by fidlog's time,device,index. Quoted fields double their quotes;
// control characters in names are escaped as \xNN so a line stays a line.
func appendCSV(b []byte, e *event) []byte {
	r := e.rec
	if r.ExtraFlags&changelog.ExtraNID != 0 {
		b = appendCSVField(b, r.NID, false)
	}
	b = append(b, ',')
	user := ""
	if r.ExtraFlags&changelog.ExtraUIDGID != 0 {
		user = strconv.FormatUint(r.UID, 10)
	}
	b = appendCSVField(b, user, true)
	b = append(b, ",lustre,"...)
	b = append(b, r.Type.String()...)
	b = append(b, ",ok,"...)
	b = append(b, objectFID(r).String()...)
	b = append(b, ',')
	path, spath := e.path, e.spath
	if path == "" {
		path = r.Name
	}
	if spath == "" {
		spath = r.SName
	}
	b = appendCSVField(b, path, true)
	b = append(b, ',')
	b = appendCSVField(b, spath, true)
	b = append(b, ',')
	b = r.Time.UTC().AppendFormat(b, rfc3339Fixed)
	b = append(b, ',')
	b = appendCSVField(b, e.dev, false)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(r.Index), 10)
	return b
}

func appendCSVField(b []byte, s string, quote bool) []byte {
	if !quote && strings.ContainsAny(s, ",\"\r\n") {
		quote = true
	}
	if quote {
		b = append(b, '"')
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			b = append(b, '"', '"')
		case c < 0x20 || c == 0x7f:
			b = fmt.Appendf(b, "\\x%02x", c)
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			_, n := utf8.DecodeRuneInString(s[i:])
			b = append(b, s[i:i+n]...)
			i += n
			continue
		}
		i++
	}
	if quote {
		b = append(b, '"')
	}
	return b
}

func parseCSVLine(line []byte) (string, changelog.Index, error) {
	rd := csv.NewReader(bytes.NewReader(line))
	rd.FieldsPerRecord = 11
	rec, err := rd.Read()
	if err != nil {
		return "", 0, errBadLine
	}
	idx, err := strconv.ParseUint(rec[10], 10, 64)
	if err != nil || rec[9] == "" || idx == 0 {
		return "", 0, errBadLine
	}
	return rec[9], changelog.Index(idx), nil
}

// appendLustre renders the device, a space and the lfs changelog line,
// with control characters in names escaped as \xNN.
func appendLustre(b []byte, e *event) []byte {
	b = append(b, e.dev...)
	b = append(b, ' ')
	start := len(b)
	b = e.rec.AppendLine(b)
	for i := start; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == 0x7f {
			esc := fmt.Appendf(nil, "\\x%02x", c)
			b = append(b[:i], append(esc, b[i+1:]...)...)
			i += len(esc) - 1
		}
	}
	return b
}

func parseLustreLine(line []byte) (string, changelog.Index, error) {
	f := bytes.Fields(line)
	if len(f) < 3 {
		return "", 0, errBadLine
	}
	idx, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil || idx == 0 {
		return "", 0, errBadLine
	}
	return string(f[0]), changelog.Index(idx), nil
}
