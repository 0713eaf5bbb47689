package main

import (
	"bufio"
	"compress/gzip"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/cmd/internal/cli"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

const verifyUsage = "changelog_verify [--from STARTREC] [--pubkey FILE] <mdtname>\n" +
	"       changelog_verify [--pubkey FILE] [--device MDTNAME] --input FILE|DIR [FILE|DIR ...]"

func newChangelogVerifyCmd(a *app) *cobra.Command {
	var from uint64
	var pubkey, device string
	var inputs []string
	cmd := &cobra.Command{
		Use:   "changelog_verify [--from STARTREC] [--pubkey FILE] MDTNAME | --input FILE|DIR [FILE|DIR...]",
		Short: "Prove that no changelog record was changed, removed or inserted",
		Long: `changelog_verify checks the changelog's hash chain and signed checkpoints:
every record links to the one before it (SHA-256), indices are contiguous,
every checkpoint is signed by a trusted ed25519 key (--pubkey; a key
rotation passes trust to the new key) and states the hash the chain really
has. It reports the first bad index and why (changed, missing, inserted,
bad signature, chain break at a purge, reordered) and exits with EBADMSG
(74) for an altered log, EKEYREJECTED (129) for a bad signature (a
checkpoint or a key rotation signed by a key that is not trusted).

Online it streams the log of MDTNAME from the first retained record (or
--from). Offline (--input, then more files or directories) it reads a
verifiable NDJSON export: the output of 'lfs changelog --output json
--hash' or fidlog-export's ndjson files with their checkpoint and anchor
lines (files in the order given, each directory's files in name order,
which is time order for fidlog-export's rotated files; .gz files
decompressed), one chain per device. A record that appears later than
where it belongs is reported as reordered. Records after the last
checkpoint are linked but cannot be proven by a signature: the report
says how many, and the exit status stays 0.

Without --pubkey the first checkpoint's key is trusted, which proves the
log consistent but not who signed it: compare the key printed with the one
'lctl get_param mdd.MDTNAME.changelog_pubkey' published.`,
		Example: `  lfs changelog_verify --pubkey mdt0.pub lustre-MDT0000
  lfs changelog_verify --from 1000 lustre-MDT0000
  lfs changelog --output json --hash lustre-MDT0000 > export.ndjson
  lfs changelog_verify --pubkey mdt0.pub --input export.ndjson
  lfs changelog_verify --pubkey mdt0.pub --input /var/log/fidlog`,
		Annotations: map[string]string{"usage": verifyUsage, "help": "Prove that no changelog record was changed, removed or inserted.\nusage: " + verifyUsage},
		Args:        cobra.ArbitraryArgs,
	}
	cmd.Flags().Var(cli.NewUint64Value(&from, 0), "from", "start at this record (its link to the record before it is checked)")
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "file of trusted public keys (ed25519:<base64> lines, as changelog_pubkey prints, or PEM)")
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "verify this exported NDJSON file or directory offline (repeatable)")
	cmd.Flags().StringVar(&device, "device", "", "with --input: verify only this MDT's lines of a multi-MDT export")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var keys []ed25519.PublicKey
		if pubkey != "" {
			data, err := os.ReadFile(pubkey)
			if err != nil {
				fmt.Fprintf(a.stderr, "lfs changelog_verify: cannot read public key '%s': %s\n", pubkey, cli.Strerror(cli.SysErrno(err)))
				return cli.Exit(cli.SysErrno(err))
			}
			if keys, err = changelog.ParsePublicKeys(data); err != nil {
				fmt.Fprintf(a.stderr, "lfs changelog_verify: '%s': %v\n", pubkey, err)
				return cli.Exit(cli.EINVAL)
			}
		}
		if len(inputs) > 0 {
			if from != 0 {
				return cli.Usage(cmd, "lfs changelog_verify: --input takes no --from")
			}
			// More files after --input (a shell glob) are inputs too.
			return a.verifyFiles(append(inputs, args...), device, keys)
		}
		if device != "" {
			return cli.Usage(cmd, "lfs changelog_verify: --device goes with --input")
		}
		if len(args) != 1 {
			return cli.Usage(cmd, "lfs changelog_verify: one mdtname must be specified")
		}
		return a.verifyOnline(cmd, args[0], changelog.Index(from), keys)
	}
	return cmd
}

// verifyOnline streams the chain of dev from from and verifies it.
func (a *app) verifyOnline(cmd *cobra.Command, dev string, from changelog.Index, keys []ed25519.PublicKey) error {
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := cmd.Context()
	fail := func(err error) error {
		err = conn.Err(err)
		if cli.IsConn(err) {
			return err
		}
		if n := cli.Errno(err); n == cli.EINVAL || n == cli.ENOENT {
			if d := cli.Detail(err); d != "" {
				fmt.Fprintf(a.stderr, "lfs changelog_verify: %s\n", d)
			}
		}
		fmt.Fprintf(a.stderr, "lfs changelog_verify: %s: %s\n", dev, cli.Strerror(cli.Errno(err)))
		return cli.Exit(cli.Errno(err))
	}
	st, err := conn.State(ctx, dev)
	if err != nil {
		return fail(err)
	}
	stream, err := conn.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: dev, StartIndex: uint64(from), Raw: true, Chain: true})
	if err != nil {
		return fail(err)
	}
	v := changelog.NewVerifier(keys...)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		for _, raw := range resp.GetRawRecords() {
			if err := v.Item(raw); err != nil {
				return a.verifyFailed(dev, err)
			}
		}
	}
	if err := v.End(changelog.Index(st.GetDurableIndex())); err != nil {
		return a.verifyFailed(dev, err)
	}
	a.verifyReport(dev, v.Summary())
	return nil
}

// verifyFiles verifies an exported NDJSON file set offline, one verifier
// per device (the lines' "device" field; none for lfs changelog's own).
func (a *app) verifyFiles(inputs []string, only string, keys []ed25519.PublicKey) error {
	files, err := exportFiles(inputs)
	if err != nil {
		fmt.Fprintf(a.stderr, "lfs changelog_verify: %v\n", err)
		return cli.Exit(cli.SysErrno(err))
	}
	x := changelog.NewExportVerifier(only, keys...)
	for _, f := range files {
		err := readLines(f, func(n int, line []byte) error {
			// After the first problem the rest is read only to tell a
			// reordered record from a missing one.
			_ = x.Line(fmt.Sprintf("%s line %d", f, n), line)
			return nil
		})
		if err != nil {
			fmt.Fprintf(a.stderr, "lfs changelog_verify: %v\n", err)
			return cli.Exit(cli.SysErrno(err))
		}
	}
	if err := x.Finish(); err != nil {
		return a.verifyFailed("", err)
	}
	order := x.Devices()
	if len(order) == 0 {
		fmt.Fprintf(a.stderr, "lfs changelog_verify: no lines in %s\n", strings.Join(inputs, ", "))
		return cli.Exit(cli.ENODATA)
	}
	for _, d := range order {
		name := d
		if name == "" {
			name = "export"
		}
		a.verifyReport(name, x.Summary(d))
	}
	return nil
}

// exportFiles expands directories into their regular files, in name order.
func exportFiles(inputs []string) ([]string, error) {
	var out []string
	for _, in := range inputs {
		fi, err := os.Stat(in)
		if err != nil {
			return nil, fmt.Errorf("cannot read '%s': %w", in, err)
		}
		if !fi.IsDir() {
			out = append(out, in)
			continue
		}
		ents, err := os.ReadDir(in)
		if err != nil {
			return nil, fmt.Errorf("cannot read '%s': %w", in, err)
		}
		var names []string
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, filepath.Join(in, e.Name()))
			}
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, nil
}

func readLines(path string, fn func(n int, line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read '%s': %w", path, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("'%s': %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("'%s': %w", path, err)
	}
	return nil
}

// verifyFailed reports the first problem and exits with its errno.
func (a *app) verifyFailed(dev string, err error) error {
	prefix := "lfs changelog_verify: "
	if dev != "" {
		prefix += dev + ": "
	}
	fmt.Fprintf(a.stderr, "%s%v\n", prefix, err)
	if errors.Is(err, changelog.ErrBadSignature) {
		return cli.Exit(int(syscall.EKEYREJECTED))
	}
	return cli.Exit(int(syscall.EBADMSG))
}

// verifyReport prints what was proven.
func (a *app) verifyReport(dev string, s changelog.VerifySummary) {
	w := a.stdout
	if s.Records == 0 {
		fmt.Fprintf(w, "%s: no records to verify\n", dev)
		return
	}
	fmt.Fprintf(w, "%s: records %d-%d: chain intact (%d records", dev, s.First, s.Last, s.Records)
	if s.Legacy > 0 {
		fmt.Fprintf(w, ", %d written before the chain existed", s.Legacy)
	}
	fmt.Fprintln(w, ")")
	if !s.Linked {
		fmt.Fprintf(w, "%s: the link of record %d to the one before it was not checked (no anchor)\n", dev, s.First)
	}
	switch {
	case s.Checkpoints == 0:
		fmt.Fprintf(w, "%s: no signed checkpoint covers these records yet\n", dev)
	default:
		fmt.Fprintf(w, "%s: %d signed checkpoints verified; records up to %d are proven unaltered\n", dev, s.Checkpoints, s.Signed)
		if s.Last > s.Signed {
			fmt.Fprintf(w, "%s: %d records after the last checkpoint (index %d) are linked but not yet signed: records %d-%d\n", dev, s.Last-s.Signed, s.Signed, s.Signed+1, s.Last)
		}
	}
	for _, k := range s.Keys {
		fmt.Fprintf(w, "%s: signing key %s\n", dev, changelog.FormatPublicKey(k))
	}
	if s.TrustOnFirstUse && len(s.Keys) > 0 {
		fmt.Fprintf(a.stderr, "lfs changelog_verify: %s: no --pubkey: trusted the first checkpoint's key; compare it with the published changelog_pubkey\n", dev)
	}
}
