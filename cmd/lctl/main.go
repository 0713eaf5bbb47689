// Command lctl is the part of Lustre's lctl that administers changelogs,
// parameters and nodemaps: changelog_register, changelog_deregister,
// get_param, set_param and nodemap_*, with Lustre's syntax, output and errno
// exit statuses, against an mdtd server (--server host:port or unix:PATH,
// or $MDT_SERVER).
package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/cmd/internal/cli"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes lctl with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	out := cli.NewOutput(stdout)
	return out.Done("lctl", stderr, cli.Execute(newRootCmd(out, stderr), args, stderr, cli.UsageLustre))
}

// app is the state shared by lctl's commands.
type app struct {
	stdout, stderr io.Writer
	flags          client.Flags
	device         string
}

// dial connects with the shared connection flags; requests carry this
// process's real uid and gid.
func (a *app) dial() (*cli.Conn, error) { return a.flags.Dial() }

func (a *app) ctx(cmd *cobra.Command) context.Context {
	return cmd.Context()
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "lctl",
		Short: "Lustre control: changelog users, parameters and nodemaps",
		Args:  cobra.ArbitraryArgs,
		RunE:  cli.NoSubcommand,
		Annotations: map[string]string{
			"usage": "lctl [--server TARGET] [--device DEVICE] COMMAND [ARGS...]",
		},
	}
	root.SetOut(stdout)
	a.flags.Register(root.PersistentFlags())
	root.PersistentFlags().StringVar(&a.device, "device", "", "the MDT a changelog command acts on: its name (lustre-MDT0000) or its number in lctl dl")
	root.AddCommand(
		newRegisterCmd(a, "changelog_register"),
		newDeregisterCmd(a, "changelog_deregister"),
		newChangelogGroupCmd(a),
		newGetParamCmd(a),
		newSetParamCmd(a),
	)
	root.AddCommand(newNodemapCmds(a, "nodemap_")...)
	nm := &cobra.Command{
		Use:   "nodemap {activate|add|del|add_range|del_range|modify|test_nid} ...",
		Short: "Nodemap administration (subcommand form)",
		Args:  cobra.ArbitraryArgs,
		RunE:  cli.NoSubcommand,
	}
	nm.AddCommand(newNodemapCmds(a, "")...)
	root.AddCommand(nm)
	root.AddCommand(newListParamCmd(a), newDlCmd(a))
	decorate(a, root)
	return root
}

// newChangelogGroupCmd is the subcommand form "lctl --device MDT changelog
// register|deregister ..." (Lustre 2.16.50 and later).
func newChangelogGroupCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "changelog {register|deregister} ...",
		Short: "Changelog user administration (subcommand form)",
		Args:  cobra.ArbitraryArgs,
		RunE:  cli.NoSubcommand,
	}
	cmd.AddCommand(newRegisterCmd(a, "register"), newDeregisterCmd(a, "deregister"))
	return cmd
}
