package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// clearUserRE is the only user form Lustre's changelog device accepts
// (clear:cl%u:%llu), after the library strips everything from the first '-'.
var clearUserRE = regexp.MustCompile(`^cl[0-9]+$`)

// validClearUser reports whether user (the id without its "-name") is one
// a user can have: cl<ID>, ID from 1 to 2^32-1.
func validClearUser(user string) bool {
	if !clearUserRE.MatchString(user) {
		return false
	}
	n, err := cli.ParseUint(user[2:], 1<<32-1)
	return err == nil && n >= 1
}

func newChangelogClearCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "changelog_clear MDTNAME ID ENDREC",
		Short: "Indicate that changelog records up to ENDREC are no longer of interest to user ID",
		Annotations: map[string]string{
			"usage": "changelog_clear <mdtname> <id> <endrec>",
			"help": "Indicate that old changelog records up to <endrec> are no longer of interest to consumer <id>, allowing the system to free up space.\n" +
				"An <endrec> of 0 means all records.\nusage: changelog_clear <mdtname> <id> <endrec>",
		},
		Args: cobra.ArbitraryArgs,
	}
	// Lustre takes no options here: "-1" is an ENDREC, not a flag.
	cmd.Flags().SetInterspersed(false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) != 3 {
			return cli.Usage(cmd, "")
		}
		device, id := args[0], args[1]
		// Only a literal 0 means "up to the current index": anything that
		// is not a whole decimal number is EINVAL and clears nothing.
		end, err := cli.ParseUint(args[2], 1<<63-1)
		if err != nil {
			fmt.Fprintf(a.stderr, "lfs changelog_clear: invalid endrec: %v\n", err)
			return cli.Exit(cli.EINVAL)
		}
		errno, evicted, devErr := 0, "", ""
		user, _, _ := strings.Cut(id, "-")
		badUser := !validClearUser(user)
		if badUser {
			errno = cli.EINVAL
		} else {
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			req := &changelogv1.ClearRequest{Device: device, User: user, EndRecord: uint64(end)}
			_, err = conn.Changelog.Clear(cmd.Context(), req)
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			}
			errno = cli.Errno(err)
			if cli.IsEvicted(err) {
				evicted = cli.Message(err)
			}
			if errno == cli.ENOENT || errno == cli.EINVAL {
				// Not "no changelog user" nor "record out of range" when
				// the device itself is wrong.
				if derr := cli.DeviceError(cmd.Context(), conn, device); derr != nil {
					errno, devErr = cli.Errno(derr), cli.Detail(derr)
				}
			}
		}
		if errno == 0 {
			return nil
		}
		fmt.Fprintf(a.stderr, "lfs changelog_clear: cannot purge records for '%s': %s (%d)\n", user, cli.Strerror(errno), errno)
		switch {
		case evicted != "":
			fmt.Fprintf(a.stderr, "changelog_clear: %s\n", evicted)
		case devErr != "":
			fmt.Fprintf(a.stderr, "changelog_clear: %s\n", devErr)
		case badUser:
			fmt.Fprintf(a.stderr, "changelog_clear: invalid changelog user '%s': expect cl<ID>[-name]\n", id)
		case errno == cli.EINVAL:
			fmt.Fprintf(a.stderr, "changelog_clear: record out of range: %d\n", end)
		case errno == cli.ENOENT:
			fmt.Fprintf(a.stderr, "changelog_clear: no changelog user: %s\n", id)
		default:
			fmt.Fprintf(a.stderr, "changelog_clear error: %s\n", cli.Strerror(errno))
		}
		return cli.Exit(errno)
	}
	return cmd
}
