package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/nodemap"
	nodemapv1 "github.com/fidlog/fidlog/proto/lustre/nodemap/v1"
)

// newNodemapCmds returns the nodemap commands named prefix+verb
// ("nodemap_add", or "add" under "lctl nodemap").
func newNodemapCmds(a *app, prefix string) []*cobra.Command {
	return []*cobra.Command{
		a.nodemapActivateCmd(prefix + "activate"),
		a.nodemapAddCmd(prefix+"add", "nodemap_add"),
		a.nodemapDelCmd(prefix+"del", "nodemap_del"),
		a.nodemapRangeCmd(prefix+"add_range", "nodemap_add_range", true),
		a.nodemapRangeCmd(prefix+"del_range", "nodemap_del_range", false),
		a.nodemapModifyCmd(prefix + "modify"),
		a.nodemapTestNidCmd(prefix + "test_nid"),
	}
}

// failed prints a server error in perror style ("<op>: <strerror>") and
// returns the exit error, or passes a connection failure through.
func (a *app) failed(conn *cli.Conn, op string, err error) error {
	if err = conn.Err(err); cli.IsConn(err) {
		return err
	}
	n := cli.Errno(err)
	// Lustre prints the kernel's error line and then perror's; the
	// server's message, which names the bad value, stands in for the
	// former (there is no ioctl code to show).
	if msg := cli.Detail(err); msg != "" {
		fmt.Fprintf(a.stderr, "error: %s: %s\n", op, msg)
	}
	fmt.Fprintf(a.stderr, "%s: %s\n", op, cli.Strerror(n))
	return cli.Exit(n)
}

func (a *app) nodemapActivateCmd(name string) *cobra.Command {
	return &cobra.Command{
		Use:         name + " {0|1|on|off|yes|no|y|n|true|false|t|f}",
		Short:       "Activate or deactivate the nodemap feature",
		Annotations: map[string]string{"usage": name + " {0|1}"},
		Args:        cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.Usage(cmd, "")
			}
			on, err := nodemap.ParseBool(args[0])
			if err != nil {
				return cli.Usage(cmd, "error: nodemap_activate: invalid value '%s'", args[0])
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.Nodemap.Activate(a.ctx(cmd), &nodemapv1.ActivateRequest{Active: on}); err != nil {
				return a.failed(conn, "nodemap_activate", err)
			}
			return nil
		},
	}
}

// nameArg returns the nodemap name from --name or the single positional
// argument.
func nameArg(cmd *cobra.Command, flag string, args []string, op string) (string, error) {
	switch {
	case len(args) > 1 || (len(args) == 1 && flag != ""):
		return "", cli.Usage(cmd, "%s: too many arguments", op)
	case len(args) == 1:
		return args[0], nil
	case flag != "":
		return flag, nil
	default:
		return "", cli.Usage(cmd, "%s: missing nodemap name", op)
	}
}

func (a *app) nodemapAddCmd(name, op string) *cobra.Command {
	var nm string
	cmd := &cobra.Command{
		Use:         name + " {--name NAME | NAME}",
		Short:       "Add a new nodemap",
		Annotations: map[string]string{"usage": name + " {--name <nodemap_name> | <nodemap_name>}"},
		Args:        cobra.ArbitraryArgs,
	}
	cmd.Flags().StringVar(&nm, "name", "", "name of the new nodemap")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		n, err := nameArg(cmd, nm, args, op)
		if err != nil {
			return err
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Nodemap.Add(a.ctx(cmd), &nodemapv1.AddRequest{Name: n})
		if err != nil && cli.Errno(conn.Err(err)) == cli.EEXIST {
			// Lustre's lctl checks for the name itself and reports EINVAL.
			fmt.Fprintf(a.stderr, "error: nodemap '%s' already exists\n", n)
			fmt.Fprintf(a.stderr, "%s: %s\n", op, cli.Strerror(cli.EINVAL))
			return cli.Exit(cli.EINVAL)
		}
		if err != nil {
			return a.failed(conn, op, err)
		}
		return nil
	}
	return cmd
}

func (a *app) nodemapDelCmd(name, op string) *cobra.Command {
	var nm string
	cmd := &cobra.Command{
		Use:         name + " {--name NAME | NAME}",
		Short:       "Delete a nodemap",
		Annotations: map[string]string{"usage": name + " {--name <nodemap_name> | <nodemap_name>}"},
		Args:        cobra.ArbitraryArgs,
	}
	cmd.Flags().StringVar(&nm, "name", "", "name of the nodemap to delete")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		n, err := nameArg(cmd, nm, args, op)
		if err != nil {
			return err
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Nodemap.Del(a.ctx(cmd), &nodemapv1.DelRequest{Name: n})
		if err != nil && cli.Errno(conn.Err(err)) == cli.ENOENT {
			fmt.Fprintf(a.stderr, "error: nodemap '%s' does not exist\n", n)
			fmt.Fprintf(a.stderr, "%s: %s\n", op, cli.Strerror(cli.ENOENT))
			return cli.Exit(cli.ENOENT)
		}
		if err != nil {
			return a.failed(conn, op, err)
		}
		return nil
	}
	return cmd
}

func (a *app) nodemapRangeCmd(name, op string, add bool) *cobra.Command {
	var nm, rng string
	cmd := &cobra.Command{
		Use:         name + " --name NAME --range NIDRANGE",
		Short:       "Add or delete a NID range of a nodemap",
		Annotations: map[string]string{"usage": name + " --name <nodemap_name> --range <nid_range>"},
		Args:        cobra.NoArgs,
	}
	cmd.Flags().StringVarP(&nm, "name", "n", "", "the nodemap")
	cmd.Flags().StringVarP(&rng, "range", "r", "", "the NID range, e.g. 192.168.1.[1-254]@tcp")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if nm == "" {
			return cli.Usage(cmd, "%s: missing nodemap name", op)
		}
		if rng == "" {
			return cli.Usage(cmd, "%s: missing NID range", op)
		}
		if _, err := nodemap.ParseRange(rng); err != nil {
			if errors.Is(err, nodemap.ErrNotContiguous) {
				fmt.Fprintf(a.stderr, "error: %s: nodemap ranges must be contiguous\n", op)
				return cli.Exit(cli.EINVAL)
			}
			return cli.Usage(cmd, "error: %s: can't parse nid range: %s", op, rng)
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		if add {
			_, err = conn.Nodemap.AddRange(a.ctx(cmd), &nodemapv1.AddRangeRequest{Name: nm, Range: rng})
		} else {
			_, err = conn.Nodemap.DelRange(a.ctx(cmd), &nodemapv1.DelRangeRequest{Name: nm, Range: rng})
		}
		if err == nil {
			return nil
		}
		if err = conn.Err(err); cli.IsConn(err) {
			return err
		}
		n := cli.Errno(err)
		switch {
		case n == cli.ENOENT && add:
			fmt.Fprintf(a.stderr, "error: nodemap '%s' does not exist\n", nm)
		case n == cli.ENOENT:
			fmt.Fprintf(a.stderr, "error: %s: cannot delete range '%s' from nodemap '%s': %s\n", op, rng, nm, cli.Strerror(n))
		case add:
			fmt.Fprintf(a.stderr, "error: %s: cannot add range '%s' to nodemap '%s': %s\n", op, rng, nm, cli.Strerror(n))
		default:
			fmt.Fprintf(a.stderr, "error: %s: cannot delete range '%s' from nodemap '%s': %s\n", op, rng, nm, cli.Strerror(n))
		}
		return cli.Exit(n)
	}
	return cmd
}

func (a *app) nodemapModifyCmd(name string) *cobra.Command {
	const op = "nodemap_modify"
	var nm, prop, value string
	cmd := &cobra.Command{
		Use:   name + " --name NAME --property PROP {--value VALUE | PROP=VALUE}",
		Short: "Modify a nodemap property",
		Annotations: map[string]string{
			"usage": name + " --name <nodemap_name> --property <property_name> --value <value>\n" +
				"       " + name + " --name <nodemap_name> --property <property_name>=<value>\n" +
				"valid properties: " + strings.Join(nodemap.PropertyNames(), " "),
		},
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVarP(&nm, "name", "n", "", "the nodemap")
	cmd.Flags().StringVarP(&prop, "property", "p", "", "the property, or PROP=VALUE")
	cmd.Flags().StringVarP(&value, "value", "v", "", "the new value")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if p, v, ok := strings.Cut(prop, "="); ok {
			if cmd.Flags().Changed("value") {
				return cli.Usage(cmd, "error: %s: use either --property PROP=VALUE or --property PROP --value VALUE", op)
			}
			prop, value = p, v
		} else if !cmd.Flags().Changed("value") {
			return cli.Usage(cmd, "%s: missing property value", op)
		}
		switch {
		case nm == "":
			return cli.Usage(cmd, "%s: missing nodemap name", op)
		case prop == "":
			return cli.Usage(cmd, "%s: missing property name", op)
		case !slices.Contains(nodemap.PropertyNames(), prop):
			return cli.Usage(cmd, "error: %s: nodemap_modify invalid property: %s", op, prop)
		}
		if strings.HasPrefix(prop, "squash_") {
			if v, err := cli.ParseUint(value, 1<<32-1); err == nil && v == 0 {
				fmt.Fprintf(a.stderr, "error: %s: cannot squash to ID 0 on nodemap '%s': %s\n", op, nm, cli.Strerror(cli.EINVAL))
				return cli.Exit(cli.EINVAL)
			}
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Nodemap.Modify(a.ctx(cmd), &nodemapv1.ModifyRequest{Name: nm, Property: prop, Value: value})
		if err == nil {
			return nil
		}
		if err = conn.Err(err); cli.IsConn(err) {
			return err
		}
		n := cli.Errno(err)
		fmt.Fprintf(a.stderr, "error: %s: cannot modify nodemap '%s' to param '%s': value '%s': %s\n", op, nm, prop, value, cli.Strerror(n))
		return cli.Exit(n)
	}
	return cmd
}

func (a *app) nodemapTestNidCmd(name string) *cobra.Command {
	const op = "nodemap_test_nid"
	var nid string
	cmd := &cobra.Command{
		Use:         name + " --nid NID",
		Short:       "Print the nodemap a NID maps to",
		Annotations: map[string]string{"usage": name + " --nid <nid>"},
		Args:        cobra.MaximumNArgs(1),
	}
	cmd.Flags().StringVar(&nid, "nid", "", "the NID, e.g. 192.168.1.10@tcp")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 && nid == "" {
			nid = args[0]
		}
		if nid == "" {
			return cli.Usage(cmd, "%s: missing NID", op)
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := conn.Nodemap.TestNid(a.ctx(cmd), &nodemapv1.TestNidRequest{Nid: nid})
		if err != nil {
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			}
			n := cli.Errno(err)
			fmt.Fprintf(a.stderr, "error: %s: cannot test NID '%s': %s\n", op, nid, cli.Strerror(n))
			return cli.Exit(n)
		}
		fmt.Fprintln(a.stdout, resp.GetName())
		return nil
	}
	return cmd
}
