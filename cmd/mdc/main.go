// Command mdc is a metadata client for scripts: each verb issues, against an
// mdtd server, the metadata operations the coreutils command of the same
// name would issue on a Lustre client (mkdir, touch, mknod, ln, rm, rmdir,
// mv, chmod, chown, truncate, setfattr, getfattr, cat, ls, stat, open,
// close), so the server records the changelog records Lustre would.
//
// Messages follow coreutils ("mdc: cannot create directory 'x': File
// exists"), but the exit status is the errno of the first failure (2 for
// ENOENT, 17 for EEXIST, ...) rather than coreutils' 1; usage errors exit
// with EINVAL (22). Paths are relative to the file system root.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/cmd/internal/cli"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// usageCode is mdc's exit status for usage errors (EINVAL).
const usageCode = cli.EINVAL

// run executes mdc with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	out := cli.NewOutput(stdout)
	return out.Done("mdc", stderr, cli.Execute(newRootCmd(out, stderr), args, stderr, usageCode))
}

// app is the state shared by mdc's verbs.
type app struct {
	stdout, stderr io.Writer
	flags          client.Flags
	uid, gid       uint32
	groups, jobid  string

	conn *cli.Conn
	ns   mdtv1.NamespaceServiceClient
	ctx  context.Context
	rc   int // exit status: the first errno
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "mdc",
		Short: "Metadata client: coreutils-like verbs against an mdtd server",
		Args:  cobra.ArbitraryArgs,
		RunE:  cli.NoSubcommand,
		Annotations: map[string]string{
			"usage": "mdc [--server TARGET] [--tls-ca F --tls-cert F --tls-key F] [--uid UID] [--gid GID] [--groups G1,G2] [--jobid JOBID] VERB [ARGS...]",
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.connect(cmd) },
	}
	root.SetOut(stdout)
	a.flags.Register(root.PersistentFlags())
	pf := root.PersistentFlags()
	pf.Var(cli.NewUint32Value(&a.uid, uint32(os.Getuid())), "uid", "user id to act as (refused unless root or over TCP)")
	pf.Var(cli.NewUint32Value(&a.gid, uint32(os.Getgid())), "gid", "group id to act as (refused unless root or over TCP)")
	pf.StringVar(&a.groups, "groups", "", "supplementary group ids, comma separated")
	pf.StringVar(&a.jobid, "jobid", "", "job id recorded in changelog records (default <verb>.<uid>)")
	root.AddCommand(a.verbs()...)
	cli.ApplyExamples(root, examples)
	return root
}

// connect dials the server and builds the request context for the verb.
func (a *app) connect(cmd *cobra.Command) error {
	if cmd == cmd.Root() {
		return nil
	}
	groups, err := cli.ParseIDList(a.groups)
	if err != nil {
		return cli.Usage(cmd, "mdc: --groups: %v", err)
	}
	jobid := a.jobid
	if !cmd.Flags().Changed("jobid") {
		jobid = cmd.Name() + "." + strconv.FormatUint(uint64(a.uid), 10)
	}
	// gRPC metadata carries printable ASCII only: another byte failed
	// every call with an I/O error from the transport.
	for i := 0; i < len(jobid); i++ {
		if c := jobid[i]; c < 0x20 || c > 0x7e {
			return cli.Usage(cmd, "mdc: --jobid %s: a job id is printable ASCII", strconv.Quote(jobid))
		}
	}
	// --uid and --gid assert an identity (only root, the server's own
	// user, or a node over TCP may); without them the unix socket server
	// asks the kernel and a TCP node sends this process's ids.
	opts := []client.Option{client.WithGroups(groups...), client.WithJobID(jobid)}
	if cmd.Flags().Changed("uid") || cmd.Flags().Changed("gid") {
		opts = append(opts, client.WithUID(a.uid), client.WithGID(a.gid))
	}
	conn, err := a.flags.Dial(opts...)
	if err != nil {
		return err
	}
	a.conn = conn
	a.ns = conn.Namespace
	a.ctx = cmd.Context()
	return nil
}

// fail prints "mdc: <what>: <strerror>" and remembers the first errno. A
// connection failure is returned so the verb stops.
func (a *app) fail(err error, format string, args ...any) error {
	if err = a.conn.Err(err); cli.IsConn(err) {
		return err
	}
	n := cli.Errno(err)
	fmt.Fprintf(a.stderr, "mdc: %s: %s\n", fmt.Sprintf(format, args...), cli.Strerror(n))
	if a.rc == 0 {
		a.rc = n
	}
	return nil
}

// done ends a verb: the connection failure, or the first errno.
func (a *app) done(err error) error {
	if a.conn != nil {
		a.conn.Close()
	}
	if err != nil {
		return err
	}
	return cli.Exit(a.rc)
}
