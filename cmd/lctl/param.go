package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// paramPath accepts Lustre's two spellings of a parameter path: dotted
// (mdd.lustre-MDT0000.changelog_mask) and slashed (mdd/lustre-MDT0000/...).
func paramPath(s string) string { return strings.ReplaceAll(s, "/", ".") }

func newGetParamCmd(a *app) *cobra.Command {
	var noName, onlyName bool
	cmd := &cobra.Command{
		Use:         "get_param [-n|-N] PARAM_PATH...",
		Short:       "Get the value of parameters",
		Annotations: map[string]string{"usage": "get_param [-n|-N] <param_path1 param_path2 ...>"},
		Args:        cobra.ArbitraryArgs,
	}
	cmd.Flags().BoolVarP(&noName, "no-name", "n", false, "print only the values")
	cmd.Flags().BoolVarP(&onlyName, "only-name", "N", false, "print only the matching names")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cli.Usage(cmd, "") // jt_lcfg_getparam: CMD_HELP, no message
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		first := 0
		for _, pat := range args {
			resp, err := conn.Params.GetParams(a.ctx(cmd), &paramsv1.GetParamsRequest{Patterns: []string{paramPath(pat)}})
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			}
			if err != nil {
				n := cli.Errno(err)
				fmt.Fprintf(a.stderr, "error: get_param: param_path '%s': %s\n", pat, cli.Strerror(n))
				if first == 0 {
					first = n
				}
				continue
			}
			var b strings.Builder
			for _, p := range resp.GetParams() {
				v := p.GetValue()
				switch {
				case onlyName:
					b.WriteString(p.GetName() + "\n")
					continue
				case noName:
				case strings.Contains(strings.TrimSuffix(v, "\n"), "\n"):
					b.WriteString(p.GetName() + "=\n")
				default:
					b.WriteString(p.GetName() + "=")
				}
				b.WriteString(v)
				if !strings.HasSuffix(v, "\n") {
					b.WriteString("\n")
				}
			}
			fmt.Fprint(a.stdout, b.String())
		}
		return cli.Exit(first)
	}
	return cmd
}

func newSetParamCmd(a *app) *cobra.Command {
	var noName, persistent bool
	cmd := &cobra.Command{
		Use:         "set_param [-n] [-P] PARAM_PATH=VALUE...",
		Short:       "Set the value of parameters",
		Annotations: map[string]string{"usage": "set_param [-n] [-P] <param_path1=value1 param_path2=value2 ...>"},
		Args:        cobra.ArbitraryArgs,
	}
	cmd.Flags().BoolVarP(&noName, "no-name", "n", false, "do not echo the parameters that were set")
	cmd.Flags().BoolVarP(&persistent, "permanent", "P", false, "accepted for compatibility: settings are always persistent")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cli.Usage(cmd, "") // jt_lcfg_setparam: CMD_HELP, no message
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		first := 0
		fail := func(n int) {
			if first == 0 {
				first = n
			}
		}
		for _, arg := range args {
			name, value, ok := strings.Cut(arg, "=")
			if !ok || name == "" {
				fmt.Fprintf(a.stderr, "error: set_param: setting '%s': expected <param_path>=<value>: %s\n", arg, cli.Strerror(cli.EINVAL))
				fail(cli.EINVAL)
				continue
			}
			resp, err := conn.Params.SetParam(a.ctx(cmd), &paramsv1.SetParamRequest{Name: paramPath(name), Value: value})
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			}
			if err != nil {
				n := cli.Errno(err)
				if n == cli.ENOENT {
					fmt.Fprintf(a.stderr, "error: set_param: param_path '%s': %s\n", name, cli.Strerror(n))
				} else {
					fmt.Fprintf(a.stderr, "error: set_param: setting %s=%s: %s\n", name, value, cli.Strerror(n))
				}
				fail(n)
				continue
			}
			if noName {
				continue
			}
			for _, p := range resp.GetParams() {
				fmt.Fprintf(a.stdout, "%s=%s\n", p.GetName(), p.GetValue())
			}
		}
		return cli.Exit(first)
	}
	return cmd
}
