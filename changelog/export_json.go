package changelog

import (
	"encoding/base64"
	"encoding/hex"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fidlog/fidlog/fid"
)

// ExportFields are what an exporter adds to a record's JSON line: the
// device it came from and the paths it resolved at export time ("" when
// unknown); the chain does not cover them.
type ExportFields struct {
	Device           string
	Path, SourcePath string
	// Raw, if not nil, is the record as the log stores it, the bytes r
	// was decoded from (a chain follow's raw record): the line carries
	// them as they are instead of r encoded again. They must be r's.
	Raw []byte
}

// ExportSchema is the schemaVersion of an export line.
const ExportSchema = exportSchema

// rfc3339Fixed is RFC 3339 in UTC with all nine digits of nanoseconds, so
// that times sort as strings and have one width.
const rfc3339Fixed = "2006-01-02T15:04:05.000000000Z07:00"

// AppendExportJSON appends r's NDJSON export line (no newline), as
// fidlog-export's ndjson format writes it: schemaVersion, time (nine
// digits), device, then the fields of the JSON view (JSONRecord; type_num,
// time_ns and extra_flags left out, which repeat other fields) with the
// paths after their names, then hash and raw (the stored encoding), with
// which Verifier.JSONLine checks every field of the line. Written by hand,
// the same bytes as encoding/json without HTML escaping (a property test
// holds it to that), several times faster.
//
// It grows b once for the whole line (appending from nil grew it six times
// for a typical CREAT) and encodes raw on the stack, unless e.Raw gives
// the stored bytes.
func AppendExportJSON(b []byte, r *Record, e ExportFields) []byte {
	stored := len(e.Raw)
	if e.Raw == nil {
		stored = maxEncodedSize(r)
	}
	b = slices.Grow(b, exportLineSize+base64.StdEncoding.EncodedLen(stored)+
		len(e.Device)+len(e.Path)+len(e.SourcePath)+len(r.NID)+len(r.XattrName)+
		2*(len(r.Name)+len(r.SName))+len(r.JobID))
	b = append(b, `{"schemaVersion":"`+ExportSchema+`","time":"`...)
	b = AppendTimeFixed(b, r.Time)
	b = append(b, `","device":`...)
	b = AppendJSONString(b, e.Device)
	b = append(b, `,"index":`...)
	b = strconv.AppendUint(b, uint64(r.Index), 10)
	b = append(b, `,"type":"`...)
	b = append(b, r.Type.String()...)
	b = append(b, `","flags":"0x`...)
	b = strconv.AppendUint(b, uint64(r.Flags&FlagMask), 16)
	b = append(b, '"')
	b = appendFIDField(b, "target", r.TFID)
	if !r.PFID.IsZero() {
		b = appendFIDField(b, "parent", r.PFID)
	}
	b = appendJSONField(b, "name", r.Name)
	b = appendB64Field(b, "name_b64", r.Name)
	b = appendJSONField(b, "path", e.Path)
	b = appendB64Field(b, "path_b64", e.Path)
	if !r.SFID.IsZero() {
		b = appendFIDField(b, "source", r.SFID)
		b = appendFIDField(b, "source_parent", r.SPFID)
		b = appendJSONField(b, "source_name", r.SName)
		b = appendB64Field(b, "source_name_b64", r.SName)
		b = appendJSONField(b, "source_path", e.SourcePath)
		b = appendB64Field(b, "source_path_b64", e.SourcePath)
	}
	if r.ExtraFlags&ExtraUIDGID != 0 {
		b = append(b, `,"uid":`...)
		b = strconv.AppendUint(b, r.UID, 10)
		b = append(b, `,"gid":`...)
		b = strconv.AppendUint(b, r.GID, 10)
	}
	if r.ExtraFlags&ExtraNID != 0 {
		b = appendJSONField(b, "nid", r.NID)
	}
	b = appendJSONField(b, "jobid", r.JobID)
	if r.ExtraFlags&ExtraOpen != 0 {
		b = append(b, `,"mode":"`...)
		b = append(b, ModeString(r.OpenFlags)...)
		b = append(b, `","open_flags":"0x`...)
		b = strconv.AppendUint(b, uint64(r.OpenFlags), 16)
		b = append(b, '"')
	}
	if r.ExtraFlags&ExtraXattr != 0 {
		b = appendJSONField(b, "xattr", r.XattrName)
	}
	if r.Type == CLDenied {
		op, errno := r.Denied()
		b = append(b, `,"denied_op":"`...)
		b = append(b, op.String()...)
		b = append(b, '"')
		if errno != 0 {
			b = append(b, `,"errno":`...)
			b = strconv.AppendUint(b, uint64(errno), 10)
		}
	}
	// The chain hash and the record as the log stores it: with them the
	// line verifies offline (lfs changelog_verify --input).
	if !r.Hash.IsZero() {
		b = append(b, `,"hash":"`...)
		b = hex.AppendEncode(b, r.Hash[:])
		b = append(b, '"')
	}
	b = append(b, `,"raw":"`...)
	if e.Raw != nil {
		b = base64.StdEncoding.AppendEncode(b, e.Raw)
		return append(b, '"', '}')
	}
	var scratch [512]byte
	raw := scratch[:0]
	if stored > len(scratch) {
		raw = make([]byte, 0, stored)
	}
	b = base64.StdEncoding.AppendEncode(b, AppendStored(raw, r))
	return append(b, '"', '}')
}

// exportLineSize is room for the fixed part of an export line (the keys,
// the time, the numbers, four FIDs, the mode, the hash) with some to
// spare: AppendExportJSON reserves it plus the strings and raw's base64,
// so a line is written without growing b again unless its strings need
// many escapes.
const exportLineSize = 640

// AppendTimeFixed appends t in RFC 3339 in UTC with all nine digits of
// nanoseconds ("2026-11-24T20:06:18.603400155Z"), the bytes of
// t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00"), written
// directly for the years 0000-9999 (AppendFormat for the others).
func AppendTimeFixed(b []byte, t time.Time) []byte {
	secs := t.Unix()
	days, sod := secs/86400, secs%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	// Days since 1970-01-01 to the proleptic Gregorian calendar (Howard
	// Hinnant's civil_from_days), with March as the first month so that
	// the leap day ends the year.
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11] from March
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if mp >= 10 {
		month = mp - 9
	}
	year := yoe + era*400
	if month <= 2 {
		year++
	}
	if year < 0 || year > 9999 {
		return t.UTC().AppendFormat(b, rfc3339Fixed)
	}
	ns := t.Nanosecond()
	var buf [30]byte // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
	buf[0] = byte('0' + year/1000)
	buf[1] = byte('0' + year/100%10)
	buf[2] = byte('0' + year/10%10)
	buf[3] = byte('0' + year%10)
	buf[4] = '-'
	put2(buf[5:], int(month))
	buf[7] = '-'
	put2(buf[8:], int(day))
	buf[10] = 'T'
	put2(buf[11:], int(sod/3600))
	buf[13] = ':'
	put2(buf[14:], int(sod/60%60))
	buf[16] = ':'
	put2(buf[17:], int(sod%60))
	buf[19] = '.'
	for i := 28; i >= 20; i-- {
		buf[i] = byte('0' + ns%10)
		ns /= 10
	}
	buf[29] = 'Z'
	return append(b, buf[:]...)
}

// put2 writes v (0-99) as two digits.
func put2(b []byte, v int) {
	b[0], b[1] = byte('0'+v/10), byte('0'+v%10)
}

// appendFIDField appends ,"key":"[seq:oid:ver]" (no escaping needed).
func appendFIDField(b []byte, key string, f fid.FID) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':', '"')
	b = appendFID(b, f)
	return append(b, '"')
}

// appendFID appends the bytes of f.AppendTo ("[0x200000400:0x2:0x0]",
// "[0:0x0:0x0]" for a zero sequence) with appendHex: strconv.AppendUint
// for the three numbers of each of a line's FIDs was a tenth of its
// rendering.
func appendFID(b []byte, f fid.FID) []byte {
	if f.Seq == 0 {
		b = append(b, '[', '0')
	} else {
		b = append(b, '[', '0', 'x')
		b = appendHex(b, f.Seq)
	}
	b = append(b, ':', '0', 'x')
	b = appendHex(b, uint64(f.Oid))
	b = append(b, ':', '0', 'x')
	b = appendHex(b, uint64(f.Ver))
	return append(b, ']')
}

// appendHex appends v in lowercase hexadecimal without leading zeros
// ("0" for 0), the bytes of strconv.AppendUint(b, v, 16).
func appendHex(b []byte, v uint64) []byte {
	n := max((bits.Len64(v)+3)/4, 1)
	var buf [16]byte
	for i := n - 1; i >= 0; i-- {
		buf[i] = hexDigits[v&0xf]
		v >>= 4
	}
	return append(b, buf[:n]...)
}

// appendJSONField appends ,"key":"value" unless value is empty
// (omitempty).
func appendJSONField(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return AppendJSONString(b, value)
}

// appendB64Field appends ,"key":"<base64 of value>" when value is not
// valid UTF-8 (NameB64): the exact bytes of a name or path that
// the JSON string beside it shows with U+FFFD.
func appendB64Field(b []byte, key, value string) []byte {
	if utf8.ValidString(value) {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':', '"')
	b = base64.StdEncoding.AppendEncode(b, []byte(value))
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string the way encoding/json does
// with HTML escaping off: \" \\ \n \r \t \b \f, other control
// characters and U+2028/U+2029 as \u00XX / \u202X, invalid UTF-8 as
// \ufffd.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	// Runs of bytes that need no escape (printable ASCII but for " and \,
	// valid UTF-8 but for U+2028/U+2029) are copied whole, not byte by
	// byte.
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf && c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if !(r == utf8.RuneError && n == 1) && r != '\u2028' && r != '\u2029' {
				i += n
				continue
			}
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else { // U+2028, U+2029
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
