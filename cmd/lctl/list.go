package main

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// paramTree is the server's parameter names as Lustre's tree: every name
// and every prefix of one (the "directories": mdd, mdd.lustre-MDT0000).
type paramTree struct {
	nodes map[string]bool // name -> is a directory
}

// fetchParamTree asks the server for every parameter name.
func fetchParamTree(ctx context.Context, conn *cli.Conn) (*paramTree, error) {
	t := &paramTree{nodes: map[string]bool{}}
	for _, pat := range []string{"*", "*.*", "*.*.*", "*.*.*.*"} {
		resp, err := conn.Params.GetParams(ctx, &paramsv1.GetParamsRequest{Patterns: []string{pat}})
		if err != nil {
			if err = conn.Err(err); cli.IsConn(err) || cli.Errno(err) != cli.ENOENT {
				return nil, err
			}
			continue
		}
		for _, p := range resp.GetParams() {
			name := p.GetName()
			if _, ok := t.nodes[name]; !ok {
				t.nodes[name] = false
			}
			for i := range len(name) {
				if name[i] == '.' {
					t.nodes[name[:i]] = true
				}
			}
		}
	}
	return t, nil
}

// match returns the nodes matching pattern component by component (glob
// per component, dotted or slashed), sorted.
func (t *paramTree) match(pattern string) []string {
	want := strings.Split(paramPath(pattern), ".")
	var out []string
	for name := range t.nodes {
		got := strings.Split(name, ".")
		if len(got) != len(want) {
			continue
		}
		ok := true
		for i := range got {
			if m, err := path.Match(want[i], got[i]); err != nil || !m {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// children returns the nodes directly below dir, sorted.
func (t *paramTree) children(dir string) []string {
	var out []string
	for name := range t.nodes {
		if rest, ok := strings.CutPrefix(name, dir+"."); ok && !strings.Contains(rest, ".") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func newListParamCmd(a *app) *cobra.Command {
	var recursive, onlyDir bool
	cmd := &cobra.Command{
		Use:         "list_param [-R] [-D] PARAM_PATH...",
		Short:       "List the names of parameters (directories too) matching the paths",
		Annotations: map[string]string{"usage": "list_param [--only-dir|-D] [--recursive|-R] <param_path1 param_path2 ...>"},
		Args:        cobra.ArbitraryArgs,
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list the directories' contents too, recursively")
	cmd.Flags().BoolVarP(&onlyDir, "only-dir", "D", false, "list only directories")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cli.Usage(cmd, "error: list_param: param_path missing")
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		tree, err := fetchParamTree(a.ctx(cmd), conn)
		if err != nil {
			return err
		}
		var b strings.Builder
		var walk func(name string)
		walk = func(name string) {
			dir := tree.nodes[name]
			if dir || !onlyDir {
				b.WriteString(name + "\n")
			}
			if dir && recursive {
				for _, c := range tree.children(name) {
					walk(c)
				}
			}
		}
		first := 0
		for _, pat := range args {
			names := tree.match(pat)
			if len(names) == 0 {
				fmt.Fprint(a.stdout, b.String())
				b.Reset()
				fmt.Fprintf(a.stderr, "error: list_param: listing '%s': %s\n", pat, cli.Strerror(cli.ENOENT))
				if first == 0 {
					first = cli.ENOENT
				}
				continue
			}
			for _, n := range names {
				walk(n)
			}
		}
		fmt.Fprint(a.stdout, b.String())
		return cli.Exit(first)
	}
	return cmd
}

// newDlCmd is "lctl dl" (device_list): the devices as Lustre prints them,
// "%3d %s %s %s %s %d": index, status (UP), type, name, uuid, reference
// count. fidlog serves MDTs only; an MDT's reference count here is one for
// the device plus one per registered changelog user (each holds the
// changelog open).
func newDlCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:         "dl",
		Aliases:     []string{"device_list"},
		Short:       "Show all devices the server serves (Lustre's device list)",
		Annotations: map[string]string{"usage": "device_list [--target|-t] [--yaml|-y]"},
		Args:        cobra.NoArgs,
	}
	var target, yaml bool
	// -t adds the target NID of osc and mdc devices in Lustre; an MDT has
	// none, so the lines stay as they are.
	cmd.Flags().BoolVarP(&target, "target", "t", false, "show the target of client devices (none for an MDT)")
	cmd.Flags().BoolVarP(&yaml, "yaml", "y", false, "print the list as YAML")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		devs, err := listDevices(a.ctx(cmd), conn)
		if err = conn.Err(err); err != nil {
			if cli.IsConn(err) {
				return err
			}
			n := cli.Errno(err)
			fmt.Fprintf(a.stderr, "error: device_list: %s\n", cli.Strerror(n))
			return cli.Exit(n)
		}
		var b strings.Builder
		if yaml && len(devs) > 0 {
			b.WriteString("devices:\n")
		}
		for i, dev := range devs {
			refs := 1
			users, err := conn.Changelog.ListUsers(a.ctx(cmd), &changelogv1.ListUsersRequest{Device: dev})
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			} else if err == nil {
				refs += len(users.GetUsers())
			}
			if yaml {
				fmt.Fprintf(&b, "  - index: %d\n    status: UP\n    type: mdt\n    name: %s\n    uuid: %s\n    refcount: %d\n", i, dev, dev+"_UUID", refs)
				continue
			}
			fmt.Fprintf(&b, "%3d %s %s %s %s %d\n", i, "UP", "mdt", dev, dev+"_UUID", refs)
		}
		fmt.Fprint(a.stdout, b.String())
		return nil
	}
	return cmd
}

// listDevices returns the devices the server serves, in the order (the
// numbers) "lctl dl" shows them.
func listDevices(ctx context.Context, conn *cli.Conn) ([]string, error) {
	resp, err := conn.Params.GetParams(ctx, &paramsv1.GetParamsRequest{Patterns: []string{"mdd.*.changelog_mask"}})
	if err != nil {
		return nil, err
	}
	var devs []string
	for _, p := range resp.GetParams() {
		if parts := strings.Split(p.GetName(), "."); len(parts) == 3 && !slices.Contains(devs, parts[1]) {
			devs = append(devs, parts[1])
		}
	}
	return devs, nil
}
