// Command mdbench measures the MDT and its changelog.
//
//	mdbench load  --server TARGET --clients N --duration D --mix MIX --dir PREFIX
//	mdbench table [--quick|--full] [--json FILE] [--cpuprofile DIR|--profile DIR]
//
// load is an mdtest/mdsrate-style load generator against a running mdtd.
// table measures, in one process and one run, the service against a
// baseline doing the same work (raw Pebble, or the service with changelogs
// off), interleaved A/B with repetitions, and prints every figure as a
// ratio (median and min-max of the per-repetition ratios). Absolute
// numbers drift by up to 3x between runs on small shared machines; only
// ratios measured side by side are meaningful.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/cmd/internal/gctune"
)

// main runs with mdtd's garbage collector setting: the server's share of
// the figures is then what mdtd's would be.
func main() {
	gctune.Apply()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitMiss is returned by table when a target was missed and
	// --fail-on-miss is set.
	exitMiss = 3
)

// usageError is a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// missError reports missed targets (exit status 3).
type missError struct{ n int }

func (e *missError) Error() string { return fmt.Sprintf("%d target(s) missed", e.n) }

// run executes mdbench with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "mdbench: %v\n", err)
	var ue *usageError
	var me *missError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &me):
		return exitMiss
	case isFlagError(err):
		return exitUsage
	}
	return exitError
}

// flagError marks errors from cobra's flag parsing.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func isFlagError(err error) bool {
	var fe *flagError
	return errors.As(err, &fe)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "mdbench",
		Short:         "Benchmarks for the MDT changelog service",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q (want load or table)", args[0])
			}
			return usagef("missing command (want load or table)")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	root.AddCommand(newLoadCmd(stdout, stderr), newTableCmd(stdout, stderr))
	cli.ApplyExamples(root, examples)
	return root
}
