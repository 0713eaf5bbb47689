package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// certOptions are the flags of "mdtd certs".
type certOptions struct {
	dir   string
	name  string
	hosts []string
	days  int
	force bool
}

// newCertsCmd is "mdtd certs ca|node|client": a small certificate
// authority for mutual TLS, so that nobody needs openssl to start.
func newCertsCmd(stdout io.Writer, ran *bool) *cobra.Command {
	o := &certOptions{}
	cmd := &cobra.Command{
		Use:   "certs {ca|node|client}",
		Short: "Make the certificates of mutual TLS (a CA, the server node's, client nodes')",
		Long: `mdtd certs writes PEM files into --dir (default ./certs):

  mdtd certs ca                         ca.crt, ca.key: the CA that signs the others
  mdtd certs node --host HOST[,HOST]    node.crt, node.key: the server's certificate,
                                        valid for each HOST (names and IP addresses)
  mdtd certs client [--name NAME]       NAME.crt, NAME.key (default client): a client
                                        node's certificate

Give the server --tls-cert node.crt --tls-key node.key --tls-client-ca ca.crt,
and each client --tls-ca ca.crt --tls-cert NAME.crt --tls-key NAME.key. Keys are
ECDSA P-256, written with mode 0600; existing files are kept unless --force.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("certs needs a command: ca, node or client")
			}
			return fmt.Errorf("unknown certs command '%s': want ca, node or client", args[0])
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.dir, "dir", "certs", "directory of the PEM files (made if missing)")
	pf.BoolVar(&o.force, "force", false, "overwrite existing files")
	sub := func(use, short string, days int, fn func(*certOptions) error) *cobra.Command {
		c := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				*ran = true
				if err := fn(o); err != nil {
					return err
				}
				return nil
			},
		}
		c.Flags().IntVar(&o.days, "days", days, "validity in days")
		return c
	}
	ca := sub("ca", "Make the certificate authority (ca.crt, ca.key)", 3650, func(o *certOptions) error {
		return o.makeCA(stdout)
	})
	node := sub("node", "Make the server node's certificate (node.crt, node.key)", 825, func(o *certOptions) error {
		return o.makeLeaf(stdout, "node", true)
	})
	node.Flags().StringSliceVar(&o.hosts, "host", nil, "host names and IP addresses clients dial (repeat or comma-separate)")
	client := sub("client", "Make a client node's certificate (NAME.crt, NAME.key)", 825, func(o *certOptions) error {
		return o.makeLeaf(stdout, o.name, false)
	})
	client.Flags().StringVar(&o.name, "name", "client", "the client's name: certificate common name and file names")
	cmd.AddCommand(ca, node, client)
	return cmd
}

func (o *certOptions) path(name string) string { return filepath.Join(o.dir, name) }

// makeCA writes ca.crt and ca.key.
func (o *certOptions) makeCA(w io.Writer) error {
	if err := o.checkDays(); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl, err := o.template("fidlog CA")
	if err != nil {
		return err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return o.write(w, "ca", der, key)
}

// makeLeaf writes NAME.crt and NAME.key signed by the CA in --dir: a
// server certificate for --host (server) or a client certificate.
func (o *certOptions) makeLeaf(w io.Writer, name string, server bool) error {
	if err := o.checkDays(); err != nil {
		return err
	}
	if name == "" || name == "ca" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("invalid --name '%s': want a plain file name other than ca", name)
	}
	if server && len(o.hosts) == 0 {
		return errors.New("certs node needs --host: the names or IP addresses clients dial, e.g. --host mds1.example.net,192.0.2.10")
	}
	ca, err := tls.LoadX509KeyPair(o.path("ca.crt"), o.path("ca.key"))
	if err != nil {
		return fmt.Errorf("loading the CA (run \"mdtd certs ca --dir %s\" first): %w", o.dir, err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl, err := o.template(name)
	if err != nil {
		return err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range o.hosts {
			h = strings.TrimSpace(h)
			switch ip := net.ParseIP(h); {
			case h == "":
				return fmt.Errorf("invalid --host '%s': empty name", strings.Join(o.hosts, ","))
			case ip != nil:
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			default:
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey.(crypto.Signer))
	if err != nil {
		return err
	}
	return o.write(w, name, der, key)
}

func (o *certOptions) checkDays() error {
	if o.days < 1 {
		return fmt.Errorf("invalid --days %d: want 1 or more", o.days)
	}
	return nil
}

// template is a certificate valid from an hour ago (clock skew) for
// --days, with a random serial number.
func (o *certOptions) template(cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"fidlog"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Duration(o.days) * 24 * time.Hour),
	}, nil
}

// write stores NAME.crt (0644) and NAME.key (0600).
func (o *certOptions) write(w io.Writer, name string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	crt, kf := o.path(name+".crt"), o.path(name+".key")
	if !o.force {
		for _, f := range []string{crt, kf} {
			if _, err := os.Lstat(f); err == nil {
				return fmt.Errorf("%s exists: keeping it (remove it or give --force)", f)
			}
		}
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return err
	}
	if err := writeFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s and %s\n", crt, kf)
	return nil
}

// writeFile replaces path with data, mode applied before any byte lands.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
