package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/cmd/internal/cli"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

const changelogUsage = "changelog [--follow] [--user USERNAME] [--mask MASK] <mdtname> [startrec [endrec]]"

func newChangelogCmd(a *app) *cobra.Command {
	var follow, hash bool
	var user, mask, output string
	cmd := &cobra.Command{
		Use:         "changelog [--follow] [--user USERNAME] [--mask MASK] MDTNAME [STARTREC [ENDREC]]",
		Short:       "Show the metadata changes on an MDT",
		Annotations: map[string]string{"usage": changelogUsage, "help": "Show the metadata changes on an MDT.\nusage: " + changelogUsage},
		Args:        cobra.ArbitraryArgs,
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "wait for new records until interrupted (across restarts of the server)")
	cmd.Flags().StringVarP(&user, "user", "u", "", "filter with this changelog user's mask (cl1, 1 or a name)")
	cmd.Flags().StringVarP(&mask, "mask", "m", "", "show only these record types (Lustre mask syntax)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text (lfs changelog lines) or json (NDJSON)")
	cmd.Flags().BoolVar(&hash, "hash", false, "text: add each record's chain hash as a trailing h=<hex> field; json: write a verifiable export (raw records, the chain's anchor and signed checkpoints) for lfs changelog_verify --input")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cli.Usage(cmd, "lfs changelog: mdtname must be specified")
		}
		// Like Lustre's lfs_changelog, arguments after ENDREC are ignored.
		// Record numbers are whole decimal numbers (cli.ParseUint): a typo
		// is EINVAL, never a silent 0.
		var start, end uint64
		for i, p := range []*uint64{&start, &end} {
			if len(args) <= i+1 {
				break
			}
			n, err := cli.ParseUint(args[i+1], 1<<63-1)
			if err != nil {
				fmt.Fprintf(a.stderr, "lfs changelog: invalid %s: %v\n", []string{"startrec", "endrec"}[i], err)
				return cli.Exit(cli.EINVAL)
			}
			*p = n
		}
		if cmd.Flags().Changed("user") && user == "" {
			// The request's empty user means "no user filter".
			fmt.Fprintf(a.stderr, "lfs changelog: invalid changelog user ''\n")
			return cli.Exit(cli.EINVAL)
		}
		if output != "text" && output != "json" {
			return cli.Usage(cmd, "lfs changelog: invalid output format '%s' (text or json)", output)
		}
		if cmd.Flags().Changed("mask") {
			// lfs_changelog with llapi_convert_str2mask: an empty string
			// leaves the starting mask, DEFMASK; a bad one prints the
			// parser's line (for an unknown token), lfs's line, then
			// CMD_HELP.
			if strings.TrimSpace(mask) == "" {
				mask = "DEFAULT"
			}
			if _, err := changelog.ParseMask(mask, changelog.DefMask); err != nil {
				inval := fmt.Sprintf("%s (%d)", cli.Strerror(cli.EINVAL), cli.EINVAL)
				var me *changelog.MaskError
				if errors.As(err, &me) && me.Token != "" && me.Token != "+" && me.Token != "-" {
					fmt.Fprintf(a.stderr, "lfs changelog: unknown mask '%s'.\nmask usage: [+|-]<all|type> ...: %s\n", me.Token, inval)
				}
				return cli.Usage(cmd, "lfs changelog: invalid changelog mask '%s': %s", mask, inval)
			}
		}
		req := &changelogv1.ReadRequest{
			Device:     args[0],
			StartIndex: uint64(start),
			EndIndex:   uint64(end),
			Follow:     follow,
			User:       user,
			Mask:       mask,
			Raw:        true,
		}
		mode := outText
		switch {
		case output == "json" && hash:
			if mask != "" {
				return cli.Usage(cmd, "lfs changelog: --hash with --output json writes a verifiable export, which needs every record: no --mask")
			}
			mode, req.Chain = outExport, true
		case output == "json":
			mode = outJSON
		case hash:
			mode = outTextHash
		}
		return a.readChangelog(cmd, req, mode)
	}
	return cmd
}

// outMode is how lfs changelog prints records.
type outMode int

const (
	outText     outMode = iota // Lustre's lines
	outTextHash                // Lustre's lines with a trailing h=<hash>
	outJSON                    // NDJSON, one JSON view per record
	outExport                  // NDJSON with raw records, anchor and checkpoints
)

func (a *app) readChangelog(cmd *cobra.Command, req *changelogv1.ReadRequest, mode outMode) error {
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := cmd.Context()
	started := false
	w := bufio.NewWriterSize(a.stdout, 64<<10)
	defer w.Flush()
	enc := json.NewEncoder(w)
	var line []byte
	var last uint64 // the last record printed
	// show prints one message's records; stop is true past EndIndex.
	show := func(resp *changelogv1.ReadResponse) (stop bool, err error) {
		for _, raw := range resp.GetRawRecords() {
			if k := changelog.KindOf(raw); k == changelog.ItemCheckpoint || k == changelog.ItemAnchor {
				if mode == outExport {
					if err := a.printItem(w, raw); err != nil {
						return false, err
					}
				}
				continue
			}
			r, derr := changelog.Decode(raw)
			if derr != nil {
				w.Flush()
				fmt.Fprintf(a.stderr, "lfs changelog: cannot access changelog: %v\n", derr)
				return false, cli.Exit(cli.EIO)
			}
			if req.EndIndex != 0 && uint64(r.Index) > req.EndIndex {
				return true, nil
			}
			last = uint64(r.Index)
			if mode == outExport {
				if err := a.printItem(w, raw); err != nil {
					return false, err
				}
				continue
			}
			if err := a.printRecord(w, enc, r, mode, &line); err != nil {
				return false, err
			}
		}
		for _, pr := range resp.GetRecords() { // a server that ignores raw
			r := recordFromPB(pr)
			if req.EndIndex != 0 && uint64(r.Index) > req.EndIndex {
				return true, nil
			}
			last = uint64(r.Index)
			if err := a.printRecord(w, enc, r, mode, &line); err != nil {
				return false, err
			}
		}
		if err := w.Flush(); err != nil {
			return false, cli.Exit(cli.EIO)
		}
		return false, nil
	}
	rc := reconnect{a: a, device: req.Device}
	for {
		var stream changelogv1.ChangelogService_ReadClient
		stream, err = conn.Changelog.Read(ctx, req)
		for err == nil {
			var resp *changelogv1.ReadResponse
			resp, err = stream.Recv()
			if err != nil {
				break
			}
			started = true
			rc.reset()
			if stop, err := show(resp); stop || err != nil {
				return err
			}
		}
		// --follow outlives a restart of the server, as Lustre's does an
		// MDS failover: once it has read from the server, it reconnects
		// and goes on after the last record printed (a server never
		// reached is an error, as without --follow). A verifiable export
		// (--hash --output json) does not: a new stream starts with a new
		// anchor.
		if !req.Follow || !started || mode == outExport || !client.Unavailable(err) {
			break
		}
		if !rc.wait(ctx, err) {
			return nil // SIGINT or SIGTERM while waiting
		}
		if last > 0 {
			req.StartIndex = last + 1
		}
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	if ctx.Err() != nil {
		// SIGINT or SIGTERM: the normal end of --follow; a listing cut
		// short is incomplete, and a script that clears after it must
		// know.
		if req.Follow {
			return nil
		}
		w.Flush()
		fmt.Fprintf(a.stderr, "lfs changelog: interrupted: the listing is incomplete\n")
		return cli.Exit(cli.ECANCELED)
	}
	w.Flush()
	err = conn.Err(err)
	if cli.IsConn(err) {
		return err
	}
	what := "cannot start changelog"
	if started {
		what = "cannot access changelog"
	}
	msg := cli.Strerror(cli.Errno(err))
	if cli.IsEvicted(err) {
		msg = cli.Message(err)
	} else if n := cli.Errno(err); n == cli.EINVAL || n == cli.ENOENT {
		// What was wrong with the request (the device, the user, the
		// range), as liblustreapi names what it could not open.
		if d := cli.Detail(err); d != "" {
			fmt.Fprintf(a.stderr, "lfs changelog: %s\n", d)
		}
	}
	fmt.Fprintf(a.stderr, "lfs changelog: %s: %s\n", what, msg)
	return cli.Exit(cli.Errno(err))
}

// reconnect paces lfs changelog --follow's reconnections while the server
// is unavailable, and says once per outage that it is waiting.
type reconnect struct {
	a       *app
	device  string
	backoff time.Duration
	said    bool
}

// reset ends an outage: the stream delivers again.
func (r *reconnect) reset() { r.backoff, r.said = 0, false }

// wait waits before the next attempt; false if ctx ended first.
func (r *reconnect) wait(ctx context.Context, err error) bool {
	if !r.said {
		why := cli.Detail(err)
		if why == "" {
			why = cli.Strerror(cli.Errno(err))
		}
		fmt.Fprintf(r.a.stderr, "lfs changelog: lost %s (%s); reconnecting\n", r.device, why)
		r.said = true
	}
	r.backoff = min(max(2*r.backoff, 100*time.Millisecond), 5*time.Second)
	t := time.NewTimer(r.backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (a *app) printRecord(w *bufio.Writer, enc *json.Encoder, r *changelog.Record, mode outMode, buf *[]byte) error {
	switch mode {
	case outJSON, outExport:
		if err := enc.Encode(r.JSON()); err != nil {
			return cli.Exit(cli.EIO)
		}
		return nil
	case outTextHash:
		*buf = append(r.AppendLineHash((*buf)[:0]), '\n')
	default:
		*buf = append(r.AppendLine((*buf)[:0]), '\n')
	}
	if _, err := w.Write(*buf); err != nil {
		return cli.Exit(cli.EIO)
	}
	return nil
}

// printItem writes one element of a chain read as a verifiable NDJSON line.
func (a *app) printItem(w *bufio.Writer, raw []byte) error {
	b, err := changelog.ItemJSON(raw)
	if err != nil {
		w.Flush()
		fmt.Fprintf(a.stderr, "lfs changelog: cannot access changelog: %v\n", err)
		return cli.Exit(cli.EIO)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return cli.Exit(cli.EIO)
	}
	return nil
}
