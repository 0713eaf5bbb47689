// Command lfs is the client side of Lustre's lfs for the changelog and FID
// commands: changelog, changelog_clear, fid2path and path2fid, with Lustre's
// syntax, output and errno exit statuses, and fidlog's changelog_verify
// (tamper evidence), against an mdtd server
// (--server host:port or unix:PATH, or $MDT_SERVER).
package main

import (
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/cmd/internal/cli"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes lfs with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	out := cli.NewOutput(stdout)
	return out.Done("lfs", stderr, cli.Execute(newRootCmd(out, stderr), args, stderr, cli.UsageLustre))
}

// app is the state shared by lfs's commands.
type app struct {
	stdout, stderr io.Writer
	flags          client.Flags
}

// dial connects with the shared connection flags; requests carry this
// process's real uid and gid.
func (a *app) dial() (*cli.Conn, error) { return a.flags.Dial() }

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "lfs",
		Short: "Lustre client commands for changelogs and FIDs",
		Args:  cobra.ArbitraryArgs,
		RunE:  cli.NoSubcommand,
		Annotations: map[string]string{
			// lfs's main sets opterr = 0: an unknown option is reported by
			// the command as "unrecognized option '<arg>'".
			"opterr": "0",
			"usage":  "lfs [--server TARGET] {changelog|changelog_clear|changelog_verify|fid2path|path2fid} ...",
		},
	}
	root.SetOut(stdout)
	a.flags.Register(root.PersistentFlags())
	root.AddCommand(newChangelogCmd(a), newChangelogClearCmd(a), newChangelogVerifyCmd(a), newFid2PathCmd(a), newPath2FidCmd(a))
	decorate(a, root)
	return root
}
