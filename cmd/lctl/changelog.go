package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/cmd/internal/cli"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// deviceErr explains a failure that may be due to an unknown --device: if
// the server does not serve the device it prints so and returns ENODEV,
// otherwise it returns 0.
func (a *app) deviceErr(cmd *cobra.Command, conn *cli.Conn, op string) int {
	_, err := conn.Changelog.GetState(a.ctx(cmd), &changelogv1.GetStateRequest{Device: a.device})
	if err == nil || cli.Errno(err) != cli.ENOENT {
		return 0
	}
	fmt.Fprintf(a.stderr, "error: %s: cannot find device '%s': %s\n", op, a.device, cli.Strerror(cli.ENODEV))
	return cli.ENODEV
}

// resolveDevice turns a --device given as a number (Lustre's lctl takes
// the device's number from "lctl dl" as well as its name) into the
// device's name; a number no device has is left as it is, for deviceErr
// to report.
func (a *app) resolveDevice(cmd *cobra.Command, conn *cli.Conn) error {
	if a.device == "" || strings.Trim(a.device, "0123456789") != "" {
		return nil
	}
	devs, err := listDevices(a.ctx(cmd), conn)
	if err = conn.Err(err); cli.IsConn(err) {
		return err
	}
	if n, perr := strconv.ParseUint(a.device, 10, 31); err == nil && perr == nil && n < uint64(len(devs)) {
		a.device = devs[n]
	}
	return nil
}

func (a *app) needDevice(cmd *cobra.Command, op string) error {
	if a.device == "" {
		return cli.Usage(cmd, "error: %s: no device given: use 'lctl --device <fsname>-MDTxxxx %s ...'", op, op)
	}
	return nil
}

func newRegisterCmd(a *app, name string) *cobra.Command {
	const op = "changelog_register"
	var mask, user string
	var nameOnly bool
	cmd := &cobra.Command{
		Use:         name + " [-m|--mask MASK] [-n|--nameonly] [-u|--user USERNAME]",
		Short:       "Register a new changelog user for the device (--device)",
		Annotations: map[string]string{"usage": "--device <mdtname> " + name + " [-h|--help] [-m|--mask MASK] [-n|--nameonly] [-u|--user USERNAME]"},
		Args:        cobra.ArbitraryArgs,
	}
	if name == op { // lctl.c's help text, printed on stdout for CMD_HELP
		cmd.Annotations["help"] = "register a new persistent changelog user, returns id\n" +
			"usage: {--device MDTNAME} changelog_register [--help|-h] [--mask|-m MASK]\n" +
			"       [--nameonly|-n] [--user|-u USERNAME]"
	}
	cmd.Flags().StringVarP(&mask, "mask", "m", "", "the user's record mask (Lustre mask syntax)")
	cmd.Flags().StringVarP(&user, "user", "u", "", "the user's name (cl<ID>-<name>)")
	cmd.Flags().BoolVarP(&nameOnly, "nameonly", "n", false, "print only the user's display name")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return cli.Usage(cmd, "error: %s: unexpected argument '%s'", op, args[0])
		}
		if err := a.needDevice(cmd, op); err != nil {
			return err
		}
		if cmd.Flags().Changed("user") && user == "" {
			// The request's empty name means "no name": an explicit
			// empty -u is a bad name (mdd_changelog_name_check), not that.
			fmt.Fprintf(a.stderr, "error: %s: invalid changelog user '': %s\n", op, cli.Strerror(cli.EINVAL))
			return cli.Exit(cli.EINVAL)
		}
		if cmd.Flags().Changed("mask") && strings.TrimSpace(mask) == "" {
			fmt.Fprintf(a.stderr, "error: %s: invalid changelog mask '%s': Invalid argument\n", op, mask)
			return cli.Exit(cli.EINVAL)
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := a.resolveDevice(cmd, conn); err != nil {
			return err
		}
		resp, err := conn.Changelog.Register(a.ctx(cmd), &changelogv1.RegisterRequest{Device: a.device, Mask: mask, Name: user})
		if err = conn.Err(err); cli.IsConn(err) {
			return err
		}
		if err != nil {
			n := cli.Errno(err)
			switch n {
			case cli.EEXIST:
				fmt.Fprintf(a.stderr, "error: %s: User exists\n", op)
			case cli.ENOENT:
				if d := a.deviceErr(cmd, conn, op); d != 0 {
					return cli.Exit(d)
				}
				fmt.Fprintf(a.stderr, "error: %s: %s\n", op, cli.Strerror(n))
			case cli.EINVAL, cli.ENAMETOOLONG:
				// Lustre's line names only the errno: add the server's
				// message, which names the bad user name or mask token.
				if d := cli.Detail(err); d != "" {
					fmt.Fprintf(a.stderr, "error: %s: %s: %s\n", op, d, cli.Strerror(n))
					break
				}
				fmt.Fprintf(a.stderr, "error: %s: %s\n", op, cli.Strerror(n))
			default:
				fmt.Fprintf(a.stderr, "error: %s: %s\n", op, cli.Strerror(n))
			}
			return cli.Exit(n)
		}
		if nameOnly {
			fmt.Fprintln(a.stdout, resp.GetDisplayName())
		} else {
			fmt.Fprintf(a.stdout, "%s: Registered changelog userid '%s'\n", a.device, resp.GetDisplayName())
		}
		return nil
	}
	return cmd
}

func newDeregisterCmd(a *app, name string) *cobra.Command {
	const op = "changelog_deregister"
	var user string
	cmd := &cobra.Command{
		Use:         name + " {ID|clID[-NAME] | -u|--user NAME}",
		Short:       "Deregister a changelog user of the device (--device)",
		Annotations: map[string]string{"usage": "--device <mdtname> " + name + " [<id>|cl<id...>|-u <username>]"},
		Args:        cobra.ArbitraryArgs,
	}
	if name == op {
		cmd.Annotations["help"] = "deregister an existing changelog user\n" +
			"usage: {--device MDTNAME} changelog_deregister [ID|clID] [--help|-h]\n" +
			"       [--user|-u USERNAME]"
	}
	cmd.Flags().StringVarP(&user, "user", "u", "", "the user's name as given at registration")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req := &changelogv1.DeregisterRequest{Device: a.device}
		switch {
		case len(args) > 1 || (len(args) == 1 && user != ""):
			return cli.Usage(cmd, "error: %s: give either a user id or --user NAME", op)
		case len(args) == 1:
			if _, ok := changelog.ParseUserID(args[0]); !ok {
				return cli.Usage(cmd, "error: Invalid argument: expect <ID> or cl<ID>[-name] got '%s'", args[0])
			}
			req.Selector = &changelogv1.DeregisterRequest_Id{Id: args[0]}
		case user != "":
			req.Selector = &changelogv1.DeregisterRequest_Name{Name: user}
		default:
			return cli.Usage(cmd, "")
		}
		if err := a.needDevice(cmd, op); err != nil {
			return err
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := a.resolveDevice(cmd, conn); err != nil {
			return err
		}
		req.Device = a.device
		resp, err := conn.Changelog.Deregister(a.ctx(cmd), req)
		if err = conn.Err(err); cli.IsConn(err) {
			return err
		}
		if err != nil {
			n := cli.Errno(err)
			switch {
			case cli.IsEvicted(err):
				fmt.Fprintf(a.stderr, "error: %s: %s\n", op, cli.Message(err))
			case n == cli.ENOENT:
				if d := a.deviceErr(cmd, conn, op); d != 0 {
					return cli.Exit(d)
				}
				who := user
				if len(args) == 1 {
					who = args[0]
				}
				fmt.Fprintf(a.stderr, "error: %s: User not found: %s\n", op, who)
			default:
				fmt.Fprintf(a.stderr, "error: %s: %s\n", op, cli.Strerror(n))
			}
			return cli.Exit(n)
		}
		fmt.Fprintf(a.stdout, "%s: Deregistered changelog user #%d\n", a.device, resp.GetId())
		return nil
	}
	return cmd
}
