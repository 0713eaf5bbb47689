package changelog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CheckpointKind says why a checkpoint was written.
type CheckpointKind uint8

// Checkpoint kinds.
const (
	// CheckpointPeriodic: every N records or T seconds.
	CheckpointPeriodic CheckpointKind = 1
	// CheckpointRotation: the signing key changes to Next; signed by the
	// old key, so trust passes from the old key to the new one.
	CheckpointRotation CheckpointKind = 2
)

// String returns "periodic" or "rotation".
func (k CheckpointKind) String() string {
	switch k {
	case CheckpointPeriodic:
		return "periodic"
	case CheckpointRotation:
		return "rotation"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// Checkpoint is a signed statement "the chain hash of record Index of
// Device is Hash", written every N records or T seconds. Checkpoints live
// beside the records (not in their index space, so Lustre consumers never
// see them) and are streamed in order with them: Position is the index of
// the record a checkpoint precedes in the stream.
type Checkpoint struct {
	// Position is the index of the first record written after the
	// checkpoint: a stream delivers the checkpoint just before it. Not
	// signed (it is where the checkpoint sits, not what it says).
	Position Index
	// Seq numbers checkpoints from 1 without gaps, so a verifier sees a
	// deleted checkpoint.
	Seq   uint64
	Index Index
	Hash  Hash
	Time  time.Time
	Kind  CheckpointKind
	// Device is the MDT ("lustre-MDT0000").
	Device string
	// Signer is the public key that signed; Next is the new key of a
	// rotation (nil otherwise).
	Signer ed25519.PublicKey
	Next   ed25519.PublicKey
	Sig    []byte
}

// checkpointTag starts a checkpoint's encoding.
const (
	checkpointTag     = 0x81
	checkpointVersion = 1
	// checkpointDomain prefixes the signed bytes, so a checkpoint signature
	// cannot be replayed as a signature of anything else.
	checkpointDomain = "fidlog changelog checkpoint\x00"
	maxDevice        = 64
)

// signedBytes is the part of the encoding that is signed:
//
//	version(1) seq(8) index(8) hash(32) time_ns(8) kind(1) signer(32)
//	next(32, zero if none) device_len(1) device
func (c *Checkpoint) signedBytes(dst []byte) []byte {
	dst = append(dst, checkpointVersion)
	dst = appendBE64(dst, c.Seq)
	dst = appendBE64(dst, uint64(c.Index))
	dst = append(dst, c.Hash[:]...)
	dst = appendBE64(dst, uint64(c.Time.UnixNano()))
	dst = append(dst, byte(c.Kind))
	dst = appendKey(dst, c.Signer)
	dst = appendKey(dst, c.Next)
	dst = append(dst, byte(len(c.Device)))
	return append(dst, c.Device...)
}

func appendKey(dst []byte, k ed25519.PublicKey) []byte {
	if len(k) == ed25519.PublicKeySize {
		return append(dst, k...)
	}
	return append(dst, make([]byte, ed25519.PublicKeySize)...)
}

func message(signed []byte) []byte {
	return append([]byte(checkpointDomain), signed...)
}

// Sign fills Signer and Sig with key's signature of c.
func (c *Checkpoint) Sign(key ed25519.PrivateKey) {
	c.Signer = key.Public().(ed25519.PublicKey)
	c.Sig = ed25519.Sign(key, message(c.signedBytes(nil)))
}

// SignatureValid reports whether Sig is Signer's signature of c.
func (c *Checkpoint) SignatureValid() bool {
	return len(c.Signer) == ed25519.PublicKeySize && len(c.Sig) == ed25519.SignatureSize &&
		ed25519.Verify(c.Signer, message(c.signedBytes(nil)), c.Sig)
}

// AppendEncode appends the stream encoding: tag(1) position(8) then the
// signed bytes, then the 64-byte signature.
func (c *Checkpoint) AppendEncode(dst []byte) []byte {
	dst = append(dst, checkpointTag)
	dst = appendBE64(dst, uint64(c.Position))
	dst = c.signedBytes(dst)
	return append(dst, c.Sig...)
}

// CheckpointSeq returns the sequence number of a checkpoint's stream
// encoding without decoding the rest (0 if b is too short to hold one).
func CheckpointSeq(b []byte) uint64 {
	if len(b) < 1+8+1+8 {
		return 0
	}
	return be64(b[10:])
}

// DecodeCheckpoint parses a checkpoint's stream encoding. It never panics;
// malformed input wraps ErrCorrupt. It does not check the signature.
func DecodeCheckpoint(b []byte) (*Checkpoint, error) {
	const fixed = 1 + 8 + 1 + 8 + 8 + HashSize + 8 + 1 + 32 + 32 + 1
	if len(b) < fixed+ed25519.SignatureSize || b[0] != checkpointTag {
		return nil, fmt.Errorf("%w: not a checkpoint (%d bytes)", ErrCorrupt, len(b))
	}
	if b[9] != checkpointVersion {
		return nil, fmt.Errorf("%w: unknown checkpoint version %d", ErrCorrupt, b[9])
	}
	c := &Checkpoint{Position: Index(be64(b[1:]))}
	p := b[10:]
	c.Seq = be64(p)
	c.Index = Index(be64(p[8:]))
	copy(c.Hash[:], p[16:])
	c.Time = time.Unix(0, int64(be64(p[48:])))
	c.Kind = CheckpointKind(p[56])
	c.Signer = ed25519.PublicKey(bytes.Clone(p[57:89]))
	if next := p[89:121]; !bytes.Equal(next, make([]byte, 32)) {
		c.Next = ed25519.PublicKey(bytes.Clone(next))
	}
	n := int(p[121])
	p = p[122:]
	if n > maxDevice || len(p) != n+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes with a %d-byte device", ErrCorrupt, len(b), n)
	}
	c.Device = string(p[:n])
	c.Sig = bytes.Clone(p[n:])
	if c.Kind != CheckpointPeriodic && c.Kind != CheckpointRotation {
		return nil, fmt.Errorf("%w: checkpoint kind %d", ErrCorrupt, c.Kind)
	}
	if (c.Kind == CheckpointRotation) != (c.Next != nil) {
		return nil, fmt.Errorf("%w: checkpoint %d: a rotation names the new key, nothing else does", ErrCorrupt, c.Seq)
	}
	return c, nil
}

// CheckpointJSON is the JSON view of a checkpoint; with Raw (the stream
// encoding) an exported line can be verified offline.
type CheckpointJSON struct {
	Position  uint64 `json:"position"`
	Seq       uint64 `json:"seq"`
	Index     uint64 `json:"index"`
	Hash      string `json:"hash"`
	Time      string `json:"time"`
	TimeNS    int64  `json:"time_ns"`
	Kind      string `json:"kind"`
	Device    string `json:"device"`
	Signer    string `json:"signer"`
	NextKey   string `json:"next_key,omitempty"`
	Signature string `json:"signature"`
	Raw       string `json:"raw,omitempty"`
}

// JSON returns the JSON view of c with its raw encoding.
func (c *Checkpoint) JSON() CheckpointJSON {
	j := CheckpointJSON{
		Position: uint64(c.Position), Seq: c.Seq, Index: uint64(c.Index), Hash: c.Hash.String(),
		Time: c.Time.UTC().Format(time.RFC3339Nano), TimeNS: c.Time.UnixNano(), Kind: c.Kind.String(),
		Device: c.Device, Signer: FormatPublicKey(c.Signer), Signature: base64.StdEncoding.EncodeToString(c.Sig),
		Raw: base64.StdEncoding.EncodeToString(c.AppendEncode(nil)),
	}
	if c.Next != nil {
		j.NextKey = FormatPublicKey(c.Next)
	}
	return j
}

// AnchorJSON is the JSON view of an anchor.
type AnchorJSON struct {
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
}

// Line is one NDJSON line of a verifiable export: exactly one of a record
// (the record's own fields at the top level), a checkpoint or an anchor.
type Line struct {
	Checkpoint *CheckpointJSON `json:"checkpoint,omitempty"`
	Anchor     *AnchorJSON     `json:"anchor,omitempty"`
}

// FormatPublicKey returns the text form of an ed25519 public key used by
// the changelog_pubkey parameter: "ed25519:" and the standard base64 of
// its 32 bytes.
func FormatPublicKey(k ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(k)
}

// ErrBadKey: a public key file or string cannot be parsed.
var ErrBadKey = errors.New("changelog: invalid public key")

// ParsePublicKeys parses public keys, one per line: the changelog_pubkey
// form ("ed25519:<base64>"), bare base64 or hex of the 32 bytes, or PEM
// "PUBLIC KEY" blocks (openssl pkey -pubout). Blank lines and lines
// starting with '#' are skipped.
func ParsePublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for {
		blk, rest := pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%w: PEM block '%s', want PUBLIC KEY", ErrBadKey, blk.Type)
		}
		// An ed25519 SubjectPublicKeyInfo is a fixed 12-byte prefix and
		// the 32-byte key (RFC 8410).
		prefix := []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}
		if len(blk.Bytes) != 44 || !bytes.HasPrefix(blk.Bytes, prefix) {
			return nil, fmt.Errorf("%w: PEM public key is not ed25519", ErrBadKey)
		}
		keys = append(keys, ed25519.PublicKey(bytes.Clone(blk.Bytes[12:])))
		data = rest
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParsePublicKey(line)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key found", ErrBadKey)
	}
	return keys, nil
}

// ParsePublicKey parses one key in the changelog_pubkey form, bare base64
// or hex.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "ed25519:")
	if b, err := base64.StdEncoding.DecodeString(t); err == nil && len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	if b, err := hex.DecodeString(t); err == nil && len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	return nil, fmt.Errorf("%w: '%s' is not an ed25519 public key (ed25519:<base64 of 32 bytes>)", ErrBadKey, s)
}
