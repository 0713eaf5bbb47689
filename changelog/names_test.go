package changelog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fidlog/fidlog/fid"
)

// TestJSONNamesReversible: any name bytes come back exactly from the JSON
// view (name, or name_b64 when the bytes are not valid UTF-8; the same for
// source_name), a valid UTF-8 name has no _b64 field, and the verifiable
// line of such a record verifies.
func TestJSONNamesReversible(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bytesName := rapid.Map(rapid.SliceOfN(rapid.Byte(), 1, 40), func(b []byte) string { return string(b) })
		r := &Record{Index: 1, Type: CLRename, Time: time.Unix(1700000000, 5), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 2},
			PFID: fid.Root, Name: rapid.OneOf(bytesName, rapid.SampledFrom([]string{"caf\xe9", "café", "a\xffb"})).Draw(t, "name"),
			SFID: fid.FID{Seq: fid.SeqNormal, Oid: 3}, SPFID: fid.Root, SName: bytesName.Draw(t, "sname")}
		raw := EncodeChained(r)
		Seal(raw, Hash{})
		line, err := ItemJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		var v JSONRecord
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatal(err)
		}
		name, err := JSONName(v.Name, v.NameB64)
		if err != nil || name != r.Name {
			t.Fatalf("name %q back as %q (%v): %s", r.Name, name, err, line)
		}
		sname, err := JSONName(v.SrcName, v.SrcNameB64)
		if err != nil || sname != r.SName {
			t.Fatalf("source name %q back as %q (%v): %s", r.SName, sname, err, line)
		}
		if (v.NameB64 == "") != (NameB64(r.Name) == "") || (v.SrcNameB64 == "") != (NameB64(r.SName) == "") {
			t.Fatalf("_b64 fields for valid UTF-8 or missing for invalid: %s", line)
		}
		v2 := NewVerifier()
		if err := v2.JSONLine(line); err != nil {
			t.Fatalf("line does not verify: %v\n%s", err, line)
		}
	})
}

// TestJSONValidNameUnchanged: a valid UTF-8 name renders as before names
// could be invalid: no name_b64 field at all.
func TestJSONValidNameUnchanged(t *testing.T) {
	r := &Record{Index: 3, Type: CLCreate, Time: time.Unix(1700000000, 0), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 2}, PFID: fid.Root, Name: "résumé"}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"name":"résumé","extra_flags"`; !strings.Contains(string(b), want) || strings.Contains(string(b), "_b64") {
		t.Fatalf("JSON %s, want %s and no _b64 field", b, want)
	}
	r.Name = "r\xe9sum\xe9"
	b, err = json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"name":"r\ufffdsum\ufffd","name_b64":"culzdW3p"`; !strings.Contains(string(b), want) {
		t.Fatalf("JSON %s, want %s", b, want)
	}
}

// TestVerifierCatchesChangedNameB64: name_b64 is covered like every other
// field: changing it, or adding one to a valid UTF-8 name, is caught.
func TestVerifierCatchesChangedNameB64(t *testing.T) {
	for _, tc := range []struct{ name, from, to string }{
		{"caf\xe9", `"name_b64":"Y2Fm6Q=="`, `"name_b64":"Y2Fm6g=="`},
		{"cafe", `"name":"cafe"`, `"name":"cafe","name_b64":"Y2Fm6Q=="`},
	} {
		r := &Record{Index: 1, Type: CLCreate, Time: time.Unix(1700000000, 0), TFID: fid.FID{Seq: fid.SeqNormal, Oid: 2}, PFID: fid.Root, Name: tc.name}
		raw := EncodeChained(r)
		Seal(raw, Hash{})
		line, err := ItemJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(line, []byte(tc.from)) {
			t.Fatalf("line %s lacks %s", line, tc.from)
		}
		bad := bytes.Replace(line, []byte(tc.from), []byte(tc.to), 1)
		if err := NewVerifier().JSONLine(bad); err == nil || !strings.Contains(err.Error(), "name_b64") {
			t.Fatalf("changed line %s: verify says %v", bad, err)
		}
	}
}
