package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	nodemapv1 "github.com/fidlog/fidlog/proto/lustre/nodemap/v1"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// completeTimeout bounds every question shell completion asks the server:
// a tab press must not hang on a server that does not answer.
const completeTimeout = 2 * time.Second

// Live answers shell completion with names the server knows (devices,
// changelog user ids, parameter names, nodemap names). Every question is
// asked with the command's connection flags, as parsed from the line being
// completed, under a short timeout; when no server answers, a completion
// offers nothing (and says nothing), and the shell falls back to no
// completion rather than to file names.
type Live struct {
	Flags *client.Flags
}

// ask runs fn against the server; false if no server answered.
func (l Live) ask(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) bool {
	ctx := context.Background()
	if cmd != nil && cmd.Context() != nil {
		ctx = cmd.Context()
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	c, err := l.Flags.Dial()
	if err != nil {
		return false
	}
	defer c.Close()
	return fn(ctx, c) == nil
}

// paramNames are every parameter name the server has, in its order.
func paramNames(ctx context.Context, c *client.Client) ([]string, error) {
	var out []string
	answered := false
	// Names have two (nodemap.active) or three components.
	for _, pat := range []string{"*.*", "*.*.*", "*.*.*.*"} {
		resp, err := c.Params.GetParams(ctx, &paramsv1.GetParamsRequest{Patterns: []string{pat}})
		if err != nil {
			if Errno(err) == ENOENT {
				answered = true
				continue
			}
			return nil, err
		}
		answered = true
		for _, p := range resp.GetParams() {
			out = append(out, p.GetName())
		}
	}
	if !answered {
		return nil, context.DeadlineExceeded
	}
	return out, nil
}

// ParamNames returns every parameter name the server has (nil if none
// answers).
func (l Live) ParamNames(cmd *cobra.Command) []string {
	var out []string
	l.ask(cmd, func(ctx context.Context, c *client.Client) (err error) {
		out, err = paramNames(ctx, c)
		return err
	})
	return out
}

// Devices returns the MDTs the server serves, from its parameter tree
// (mdd.<device>.changelog_mask).
func (l Live) Devices(cmd *cobra.Command) []string {
	var out []string
	l.ask(cmd, func(ctx context.Context, c *client.Client) error {
		resp, err := c.Params.GetParams(ctx, &paramsv1.GetParamsRequest{Patterns: []string{"mdd.*.changelog_mask"}})
		if err != nil {
			return err
		}
		for _, p := range resp.GetParams() {
			if parts := strings.Split(p.GetName(), "."); len(parts) == 3 && !slices.Contains(out, parts[1]) {
				out = append(out, parts[1])
			}
		}
		return nil
	})
	return out
}

// Users returns the changelog user ids ("cl<ID>") of device, or of every
// device when device is empty.
func (l Live) Users(cmd *cobra.Command, device string) []string {
	devs := []string{device}
	if device == "" {
		devs = l.Devices(cmd)
	}
	var out []string
	for _, dev := range devs {
		l.ask(cmd, func(ctx context.Context, c *client.Client) error {
			resp, err := c.Changelog.ListUsers(ctx, &changelogv1.ListUsersRequest{Device: dev})
			if err != nil {
				return err
			}
			for _, u := range resp.GetUsers() {
				out = append(out, u.GetDisplayName())
			}
			return nil
		})
	}
	return out
}

// Nodemaps returns the nodemap names.
func (l Live) Nodemaps(cmd *cobra.Command) []string {
	var out []string
	l.ask(cmd, func(ctx context.Context, c *client.Client) error {
		resp, err := c.Nodemap.List(ctx, &nodemapv1.ListRequest{})
		if err != nil {
			return err
		}
		for _, n := range resp.GetNodemaps() {
			out = append(out, n.GetName())
		}
		return nil
	})
	return out
}

// Matching keeps the names that start with prefix.
func Matching(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// CompleteWith returns a cobra completion function offering names(cmd)
// for every positional argument (or only the first when firstOnly).
func CompleteWith(names func(cmd *cobra.Command) []string, firstOnly bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if firstOnly && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return Matching(names(cmd), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// ApplyExamples sets the Example (the "Examples:" section of the help) of
// root and of every command below it from examples, keyed by the command
// path without the root's name ("" for the root itself).
func ApplyExamples(root *cobra.Command, examples map[string]string) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		key := strings.TrimSpace(strings.TrimPrefix(c.CommandPath(), root.Name()))
		if ex, ok := examples[key]; ok {
			c.Example = ex
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}
