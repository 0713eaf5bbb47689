package fid_test

import (
	"bytes"
	"cmp"
	"math"
	"testing"

	"github.com/fidlog/fidlog/fid"
	"pgregory.net/rapid"
)

// genFID draws any FID, biased towards small and boundary fields.
func genFID() *rapid.Generator[fid.FID] {
	return rapid.Custom(func(t *rapid.T) fid.FID {
		return fid.FID{
			Seq: rapid.OneOf(rapid.Uint64(), rapid.SampledFrom([]uint64{0, 1, fid.SeqRoot, fid.SeqNormal, math.MaxUint64})).Draw(t, "seq"),
			Oid: rapid.Uint32().Draw(t, "oid"),
			Ver: rapid.Uint32().Draw(t, "ver"),
		}
	})
}

// compareFID orders FIDs by (Seq, Oid, Ver).
func compareFID(a, b fid.FID) int {
	if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Oid, b.Oid); c != 0 {
		return c
	}
	return cmp.Compare(a.Ver, b.Ver)
}

func TestString(t *testing.T) {
	tests := []struct {
		name string
		f    fid.FID
		want string
	}{
		{"zero", fid.Zero, "[0:0x0:0x0]"},
		{"zero seq", fid.FID{Oid: 5, Ver: 0xa}, "[0:0x5:0xa]"},
		{"root", fid.Root, "[0x200000007:0x1:0x0]"},
		{"dot lustre", fid.DotLustre, "[0x200000002:0x1:0x0]"},
		{"dot lustre fid", fid.DotLustreFid, "[0x200000002:0x2:0x0]"},
		{"typical", fid.FID{Seq: 0x200000401, Oid: 0x10}, "[0x200000401:0x10:0x0]"},
		{"typical 2", fid.FID{Seq: 0x200000403, Oid: 0x11f}, "[0x200000403:0x11f:0x0]"},
		{"seq 1", fid.FID{Seq: 1, Oid: 1, Ver: 1}, "[0x1:0x1:0x1]"},
		{"max", fid.FID{Seq: math.MaxUint64, Oid: math.MaxUint32, Ver: math.MaxUint32}, "[0xffffffffffffffff:0xffffffff:0xffffffff]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKeyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFID().Draw(t, "f")
		k := f.Key()
		if got := f.AppendKey([]byte("x")); !bytes.Equal(got[1:], k[:]) || got[0] != 'x' {
			t.Fatalf("AppendKey = %x, want x%x", got, k)
		}
		got, err := fid.FromKey(k[:])
		if err != nil {
			t.Fatalf("FromKey(%x): %v", k, err)
		}
		if got != f {
			t.Fatalf("FromKey(Key(%v)) = %v", f, got)
		}
	})
}

func TestKeyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := genFID().Draw(t, "a")
		b := genFID().Draw(t, "b")
		ka, kb := a.Key(), b.Key()
		if got, want := bytes.Compare(ka[:], kb[:]), compareFID(a, b); got != want {
			t.Fatalf("bytes.Compare(key %v, key %v) = %d, want %d", a, b, got, want)
		}
	})
}

func TestFromKeyBadLength(t *testing.T) {
	for _, n := range []int{0, 1, fid.KeySize - 1, fid.KeySize + 1} {
		if _, err := fid.FromKey(make([]byte, n)); err == nil {
			t.Errorf("FromKey(%d bytes) succeeded, want error", n)
		}
	}
}
