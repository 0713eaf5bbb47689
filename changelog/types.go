package changelog

import (
	"fmt"
	"strings"
)

// Type is a changelog record type, numbered as Lustre's enum changelog_rec_type.
type Type uint8

// Record types. The numbers are part of the on-disk and wire format.
const (
	CLMark       Type = 0  // MARK: internal marker (never written, see doc.go)
	CLCreate     Type = 1  // CREAT: regular file created
	CLMkdir      Type = 2  // MKDIR: directory created
	CLHardlink   Type = 3  // HLINK: hard link added
	CLSoftlink   Type = 4  // SLINK: symlink created
	CLMknod      Type = 5  // MKNOD: other node created
	CLUnlink     Type = 6  // UNLNK: name removed
	CLRmdir      Type = 7  // RMDIR: directory removed
	CLRename     Type = 8  // RENME: rename, with source fields
	CLExt        Type = 9  // RNMTO: old second half of rename, never emitted
	CLOpen       Type = 10 // OPEN: open (audit)
	CLClose      Type = 11 // CLOSE: close
	CLLayout     Type = 12 // LYOUT: layout changed
	CLTrunc      Type = 13 // TRUNC: size changed by setattr
	CLSetattr    Type = 14 // SATTR: other attribute change
	CLXattr      Type = 15 // XATTR: xattr set or removed
	CLHSM        Type = 16 // HSM: HSM event
	CLMtime      Type = 17 // MTIME: mtime changed
	CLCtime      Type = 18 // CTIME: ctime changed
	CLAtime      Type = 19 // ATIME: atime changed
	CLMigrate    Type = 20 // MIGRT: migrated to another MDT
	CLFLRW       Type = 21 // FLRW: mirrored file first written
	CLResync     Type = 22 // RESYNC: mirrored file resynced
	CLGetxattr   Type = 23 // GXATR: xattr read (audit)
	CLDeniedOpen Type = 24 // NOPEN: open denied (audit)
	// CLDenied is fidlog's own type, after Lustre's last: a namespace
	// operation refused for permission (EACCES or EPERM), with the
	// operation and the errno in its flags (DenyFlags). Not in DefMask,
	// nor in ALL (Lustre's 25 types): a consumer asks for it by name.
	CLDenied Type = 25 // DENY: operation refused for permission (audit)

	// NumLustreTypes is the number of Lustre's record types (CL_LAST).
	NumLustreTypes = 25
	// NumTypes is the number of record types, fidlog's DENY included.
	NumTypes = 26
)

var typeNames = [NumTypes]string{
	"MARK", "CREAT", "MKDIR", "HLINK", "SLINK", "MKNOD", "UNLNK", "RMDIR",
	"RENME", "RNMTO", "OPEN", "CLOSE", "LYOUT", "TRUNC", "SATTR", "XATTR",
	"HSM", "MTIME", "CTIME", "ATIME", "MIGRT", "FLRW", "RESYNC", "GXATR",
	"NOPEN", "DENY",
}

// String returns the name lfs changelog prints for t ("CREAT", "RENME", ...).
func (t Type) String() string {
	if int(t) < NumTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("TYPE%d", uint8(t))
}

// Valid reports whether t is one of the defined types (Lustre's 25 and DENY).
func (t Type) Valid() bool { return int(t) < NumTypes }

// Label returns the "%02d%-5s" form used in lfs changelog lines: "01CREAT",
// "10OPEN ", "22RESYNC".
func (t Type) Label() string { return fmt.Sprintf("%02d%-5s", uint8(t), t.String()) }

// TypeFromName looks a type up by its printed name, case-insensitively.
func TypeFromName(name string) (Type, bool) {
	for i, n := range typeNames {
		if strings.EqualFold(n, name) {
			return Type(i), true
		}
	}
	return 0, false
}

// Mask is a set of record types: bit N is type N.
type Mask uint32

// Mask constants from lustre_idl.h.
const (
	// MinMask holds the types that cannot be masked: MARK.
	MinMask Mask = 1 << CLMark
	// AllMask holds Lustre's 25 types (CHANGELOG_ALLMASK): the mask word
	// ALL. fidlog's DENY is outside it and is asked for by name.
	AllMask Mask = 1<<NumLustreTypes - 1
	// DefMask is AllMask without ATIME, OPEN, GXATR and NOPEN.
	DefMask Mask = AllMask &^ (1<<CLAtime | 1<<CLOpen | 1<<CLGetxattr | 1<<CLDeniedOpen)
)

// MaskOf returns the mask holding exactly the given types.
func MaskOf(types ...Type) Mask {
	var m Mask
	for _, t := range types {
		m |= 1 << t
	}
	return m
}

// Has reports whether t is in m.
func (m Mask) Has(t Type) bool { return t.Valid() && m&(1<<t) != 0 }

// Types returns the types in m in type-number order.
func (m Mask) Types() []Type {
	var ts []Type
	for i := 0; i < NumTypes; i++ {
		if m&(1<<i) != 0 {
			ts = append(ts, Type(i))
		}
	}
	return ts
}

// Names returns the type names in m joined by sep, in type-number order.
func (m Mask) Names(sep string) string {
	var b strings.Builder
	for i, t := range m.Types() {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(t.String())
	}
	return b.String()
}

// ParamString returns the changelog_mask parameter form: every set type name
// followed by one space ("MARK CREAT MKDIR "), without the final newline.
func (m Mask) ParamString() string {
	var b strings.Builder
	for _, t := range m.Types() {
		b.WriteString(t.String())
		b.WriteByte(' ')
	}
	return b.String()
}

// String returns the comma-separated names, as changelog_users prints them.
func (m Mask) String() string { return m.Names(",") }

// ParseMask parses a mask string with Lustre's cfs_str2mask grammar.
//
// Tokens are type names (case-insensitive, whole name), ALL, NONE or DEFAULT,
// separated by whitespace or commas; '+' and '-' apply to the one token that
// follows them. If the first token carries an operator the result starts
// from relative (a relative mask); otherwise it starts from MinMask (an
// absolute mask). Any unknown token, an operator with nothing after it, or
// a string with no token at all is an error naming the bad part; on error
// the returned mask is zero and the caller must change nothing.
//
// Deliberate difference from Lustre: DEFAULT is recognised wherever it
// appears, not only as the last token (Lustre compares it against the whole
// rest of the string, so "DEFAULT,CREAT" is rejected there).
func ParseMask(s string, relative Mask) (Mask, error) {
	m := MinMask
	first := true
	i := 0
	isSep := func(c byte) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == ','
	}
	for {
		for i < len(s) && isSep(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		var op byte
		if s[i] == '+' || s[i] == '-' {
			op = s[i]
			i++
			if first {
				m = relative
			}
			for i < len(s) && isSep(s[i]) && s[i] != ',' {
				i++
			}
		}
		j := i
		for j < len(s) && !isSep(s[j]) && s[j] != '+' && s[j] != '-' {
			j++
		}
		tok := s[i:j]
		if tok == "" {
			if op != 0 {
				return 0, &MaskError{Mask: s, Token: string(op)}
			}
			return 0, &MaskError{Mask: s, Token: s[i:]}
		}
		switch {
		case strings.EqualFold(tok, "ALL"):
			if op == '-' {
				m = MinMask
			} else {
				m = AllMask
			}
		case strings.EqualFold(tok, "NONE"):
			if op != '-' {
				m = MinMask
			}
		case strings.EqualFold(tok, "DEFAULT"):
			switch op {
			case '-':
				m = m&^DefMask | MinMask
			case '+':
				m |= DefMask
			default:
				m = DefMask
			}
		default:
			t, ok := TypeFromName(tok)
			if !ok {
				return 0, &MaskError{Mask: s, Token: tok}
			}
			if op == '-' {
				m &^= 1 << t
			} else {
				m |= 1 << t
			}
		}
		first = false
		i = j
	}
	if first {
		return 0, &MaskError{Mask: s}
	}
	return m, nil
}
