package main

import (
	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
)

// examples are the "Examples:" sections of mdtd's help, by command path
// below mdtd.
var examples = map[string]string{
	"": `  mdtd
  mdtd --data /var/lib/fidlog/lustre-MDT0000 --metrics 127.0.0.1:9188
  mdtd --config /etc/fidlog/mdtd.toml
  mdtd --config /etc/fidlog/mdtd.toml --print-config
  MDTD_LOG_LEVEL=debug MDTD_LOG_FORMAT=json mdtd --config /etc/fidlog/mdtd.toml
  mdtd --listen 0.0.0.0:7988 --tls-cert certs/node.crt --tls-key certs/node.key --tls-client-ca certs/ca.crt`,
	"certs": `  mdtd certs ca
  mdtd certs node --host mds1.example.net,10.0.0.1
  mdtd certs client --name oss1`,
	"certs ca":     `  mdtd certs ca --dir /etc/fidlog/certs`,
	"certs node":   `  mdtd certs node --dir /etc/fidlog/certs --host mds1.example.net,10.0.0.1`,
	"certs client": `  mdtd certs client --dir /etc/fidlog/certs --name oss1 --days 365`,
}

// addExamples sets the examples on mdtd's command tree (certs included).
func addExamples(root *cobra.Command) { cli.ApplyExamples(root, examples) }
