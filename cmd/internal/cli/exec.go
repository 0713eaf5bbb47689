package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// UsageLustre is the exit status lfs and lctl use for usage errors
// (CMD_HELP). With it, Execute follows Lustre's command parser: the error
// message goes to stderr and the command's help (HelpText) to stdout.
const UsageLustre = 4

// ExitError ends a command with Code; its messages were already printed.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Exit returns an *ExitError for code, or nil for 0.
func Exit(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

// UsageError reports a command line that does not fit the command: Execute
// prints Msg (if any) on stderr, then the command's usage line on stderr,
// or with UsageLustre its help on stdout, and exits with the usage code.
type UsageError struct {
	Cmd *cobra.Command
	Msg string
}

func (e *UsageError) Error() string { return e.Msg }

// Usage returns a *UsageError for cmd with a formatted message ("" for none).
func Usage(cmd *cobra.Command, format string, a ...any) error {
	return &UsageError{Cmd: cmd, Msg: fmt.Sprintf(format, a...)}
}

// UsageLine is the one-line usage Execute prints: the command's
// "usage" annotation, else its Use text.
func UsageLine(cmd *cobra.Command) string {
	if u, ok := cmd.Annotations["usage"]; ok {
		return u
	}
	return cmd.Use
}

// HelpText is what Lustre's parser prints on stdout for CMD_HELP: the
// command's "help" annotation, else its Short line and "usage: " and its
// usage line.
func HelpText(cmd *cobra.Command) string {
	if h, ok := cmd.Annotations["help"]; ok {
		return h
	}
	return cmd.Short + "\nusage: " + UsageLine(cmd)
}

// printUsage prints the usage of c after a usage error: Lustre's help on
// stdout for UsageLustre, else the usage line on stderr.
func printUsage(c *cobra.Command, stderr io.Writer, usageCode int) {
	if usageCode == UsageLustre {
		fmt.Fprintln(c.OutOrStdout(), HelpText(c))
		return
	}
	fmt.Fprintln(stderr, "usage: "+UsageLine(c))
}

// IsConn reports whether err is a connection failure (*ConnError).
func IsConn(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce)
}

// Execute runs root with args and returns the exit status. SIGINT and
// SIGTERM cancel the command's context; a command that ends because of
// that ends with status 0 (a --follow reader stopped by Ctrl-C) unless it
// returns its own status (a listing cut short: ECANCELED).
func Execute(root *cobra.Command, args []string, stderr io.Writer, usageCode int) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ExecuteContext(ctx, root, args, stderr, usageCode)
}

// ExecuteContext is Execute with a caller-supplied context.
func ExecuteContext(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer, usageCode int) int {
	root.SetArgs(args)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "unknown flag: "); ok {
			msg = "unrecognized option '" + f + "'"
		} else if f, ok := strings.CutPrefix(msg, "unknown shorthand flag: "); ok {
			f, arg, _ := strings.Cut(f, " in ")
			msg = "invalid option -- " + f
			if root.Annotations["opterr"] == "0" {
				// getopt silenced (lfs sets opterr = 0): the command's
				// own message names the whole argument.
				msg = "unrecognized option '" + arg + "'"
			}
		}
		return &UsageError{Cmd: c, Msg: strings.TrimSpace(c.CommandPath()) + ": " + msg}
	})
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		c := ue.Cmd
		if c == nil {
			c = cmd
		}
		if ue.Msg != "" {
			fmt.Fprintln(stderr, ue.Msg)
		}
		printUsage(c, stderr, usageCode)
		return usageCode
	}
	var ce *ConnError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "%s: %v\n", root.Name(), ce)
		return int(ce.Errno)
	}
	if ctx.Err() != nil {
		return 0
	}
	// cobra's own errors (unknown command, bad argument count) are usage
	// errors.
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	printUsage(cmd, stderr, usageCode)
	return usageCode
}

// NoSubcommand is the RunE of a root command: without arguments it prints
// the help, with an unknown command name it is a usage error.
func NoSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return Usage(cmd, "%s: no command given", cmd.Name())
	}
	return Usage(cmd, "%s: unknown command '%s'", cmd.Name(), args[0])
}

// ParseIDList parses "10,100" into group ids.
func ParseIDList(s string) ([]uint32, error) {
	if s == "" {
		return nil, nil
	}
	var out []uint32
	for _, f := range strings.Split(s, ",") {
		v, err := ParseUint(strings.TrimSpace(f), 1<<32-1)
		if err != nil {
			return nil, fmt.Errorf("invalid group id: %w", err)
		}
		out = append(out, uint32(v))
	}
	return out, nil
}
