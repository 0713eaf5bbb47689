package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/api/client"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// certs runs "mdtd certs ARGS" and returns its exit code and output.
func certs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runContext(context.Background(), append([]string{"certs"}, args...), &out, &errb)
	return code, out.String() + errb.String()
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCerts makes a CA, a node and a client certificate and checks their
// SANs, key usages, chains and file modes, and the errors.
func TestCerts(t *testing.T) {
	dir := filepath.Join(shortTemp(t), "pki")
	if code, out := certs(t, "node", "--dir", dir, "--host", "127.0.0.1"); code != exitError || !strings.Contains(out, "mdtd certs ca --dir") {
		t.Errorf("node before ca = %d %q", code, out)
	}
	if code, out := certs(t, "ca", "--dir", dir); code != exitOK || !strings.Contains(out, "wrote "+filepath.Join(dir, "ca.crt")) {
		t.Fatalf("ca = %d %q", code, out)
	}
	if code, out := certs(t, "ca", "--dir", dir); code != exitError || !strings.Contains(out, "exists") {
		t.Errorf("second ca = %d %q", code, out)
	}
	if code, out := certs(t, "node", "--dir", dir); code != exitError || !strings.Contains(out, "needs --host") {
		t.Errorf("node without host = %d %q", code, out)
	}
	if code, out := certs(t, "client", "--dir", dir, "--name", "../x"); code != exitError || !strings.Contains(out, "invalid --name '../x'") {
		t.Errorf("bad name = %d %q", code, out)
	}
	if code, out := certs(t, "client", "--dir", dir, "--days", "0"); code != exitError || !strings.Contains(out, "invalid --days 0") {
		t.Errorf("days 0 = %d %q", code, out)
	}
	if code, out := certs(t, "bogus"); code != exitUsage {
		t.Errorf("certs bogus = %d %q", code, out)
	}
	if code, out := certs(t, "node", "--dir", dir, "--host", "127.0.0.1,::1,localhost,mds1.example.net"); code != exitOK {
		t.Fatalf("node = %d %q", code, out)
	}
	if code, out := certs(t, "client", "--dir", dir, "--name", "oss1"); code != exitOK {
		t.Fatalf("client = %d %q", code, out)
	}
	ca, node, cl := readCert(t, filepath.Join(dir, "ca.crt")), readCert(t, filepath.Join(dir, "node.crt")), readCert(t, filepath.Join(dir, "oss1.crt"))
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("ca: IsCA %v usage %v", ca.IsCA, ca.KeyUsage)
	}
	if !slices.Equal(node.DNSNames, []string{"localhost", "mds1.example.net"}) || len(node.IPAddresses) != 2 ||
		!slices.Equal(node.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("node: dns %v ip %v eku %v", node.DNSNames, node.IPAddresses, node.ExtKeyUsage)
	}
	if cl.Subject.CommonName != "oss1" || !slices.Equal(cl.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("client: cn %q eku %v", cl.Subject.CommonName, cl.ExtKeyUsage)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := node.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("node does not verify for 127.0.0.1: %v", err)
	}
	if _, err := cl.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client does not verify: %v", err)
	}
	for _, k := range []string{"ca.key", "node.key", "oss1.key"} {
		if fi, err := os.Stat(filepath.Join(dir, k)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", k, fi, err)
		}
	}
}

// writeLeaf signs a client certificate valid in [from, to) with the CA in
// dir and writes NAME.crt and NAME.key (for certificates "mdtd certs"
// refuses to make, such as expired ones).
func writeLeaf(t *testing.T, dir, name string, from, to time.Time) {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(ca.Certificate[0])
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
}

// TestMutualTLS serves TCP with certificates from "mdtd certs": a client
// with a certificate from the CA is served; one without a certificate,
// with an expired one or with one from another CA is refused and changes
// nothing.
func TestMutualTLS(t *testing.T) {
	dir := shortTemp(t)
	pki, other := filepath.Join(dir, "pki"), filepath.Join(dir, "other")
	for _, args := range [][]string{
		{"ca", "--dir", pki}, {"node", "--dir", pki, "--host", "127.0.0.1"}, {"client", "--dir", pki},
		{"ca", "--dir", other}, {"client", "--dir", other},
	} {
		if code, out := certs(t, args...); code != exitOK {
			t.Fatalf("certs %q = %d %s", args, code, out)
		}
	}
	writeLeaf(t, pki, "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	sock := filepath.Join(dir, "s.sock")
	logs, m, _ := start(t, "--data", filepath.Join(dir, "data"), "--socket", sock, "--listen", "127.0.0.1:0",
		"--tls-cert", filepath.Join(pki, "node.crt"), "--tls-key", filepath.Join(pki, "node.key"), "--tls-client-ca", filepath.Join(pki, "ca.crt"))
	if !strings.Contains(logs.String(), "tls=mutual") {
		t.Errorf("serving line lacks tls=mutual: %s", logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mkdir := func(files client.TLSFiles, path string) error {
		c, err := client.Dial(m[2], client.WithTLSFiles(files), client.WithUID(0), client.WithGID(0))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(path)})
		return err
	}
	good := client.TLSFiles{CA: filepath.Join(pki, "ca.crt"), Cert: filepath.Join(pki, "client.crt"), Key: filepath.Join(pki, "client.key")}
	if err := mkdir(good, "ok"); err != nil {
		t.Fatalf("client with a certificate from the CA: %v", err)
	}
	for name, files := range map[string]client.TLSFiles{
		"no certificate": {CA: good.CA},
		"expired":        {CA: good.CA, Cert: filepath.Join(pki, "expired.crt"), Key: filepath.Join(pki, "expired.key")},
		"other CA":       {CA: good.CA, Cert: filepath.Join(other, "client.crt"), Key: filepath.Join(other, "client.key")},
	} {
		if err := mkdir(files, "d-"+strings.ReplaceAll(name, " ", "-")); err == nil {
			t.Errorf("%s: served", name)
		}
	}
	// Plain text to a TLS port is refused too.
	if err := mkdir(client.TLSFiles{}, "plain"); err == nil {
		t.Error("plain text client served")
	}
	c, err := client.Dial("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Namespace.Readdir(ctx, &mdtv1.ReaddirRequest{Path: []byte("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetEntries()) != 1 || string(r.GetEntries()[0].GetName()) != "ok" {
		t.Errorf("namespace after refused clients: %v", r.GetEntries())
	}
}
