package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
)

// examples are the "Examples:" sections of lctl's help, by command path
// below lctl.
var examples = map[string]string{
	"": `  lctl dl
  lctl --device lustre-MDT0000 changelog_register -n -u audit -m ALL
  lctl get_param mdd.lustre-MDT0000.changelog_users
  lctl list_param -R mdd
  lctl nodemap_add backup`,
	"changelog_register": `  lctl --device lustre-MDT0000 changelog_register
  lctl --device lustre-MDT0000 changelog_register -n -u indexer
  lctl --device lustre-MDT0000 changelog_register -u audit -m OPEN,CLOSE,NOPEN,GXATR`,
	"changelog_deregister": `  lctl --device lustre-MDT0000 changelog_deregister cl1
  lctl --device lustre-MDT0000 changelog_deregister -u indexer`,
	"changelog": `  lctl --device lustre-MDT0000 changelog register -n
  lctl --device lustre-MDT0000 changelog deregister cl1`,
	"changelog register": `  lctl --device lustre-MDT0000 changelog register -n -u indexer`,
	"changelog deregister": `  lctl --device lustre-MDT0000 changelog deregister cl1
  lctl --device lustre-MDT0000 changelog deregister -u indexer`,
	"get_param": `  lctl get_param mdd.lustre-MDT0000.changelog_mask
  lctl get_param -n mdd.*.changelog_users
  lctl get_param -N 'mdd.*.*'
  lctl get_param nodemap.active 'nodemap.*.audit_mode'`,
	"set_param": `  lctl set_param mdd.lustre-MDT0000.changelog_mask=+OPEN
  lctl set_param mdd.*.changelog_max_idle_time=86400
  lctl set_param -n nodemap.backup.audit_mode=0`,
	"list_param": `  lctl list_param mdd.*
  lctl list_param -R mdd
  lctl list_param -D -R nodemap
  lctl list_param 'nodemap.*.audit_mode'`,
	"dl": `  lctl dl
  lctl dl -y
  lctl device_list`,
	"nodemap": `  lctl nodemap add backup
  lctl nodemap add_range --name backup --range 192.168.1.[1-254]@tcp
  lctl nodemap activate 1`,
}

// nodemapExamples are the nodemap commands' examples, by short name; the
// nodemap_<name> form and the "nodemap <name>" form share them.
var nodemapExamples = map[string]string{
	"activate":  `  %s 1` + "\n" + `  %s 0`,
	"add":       `  %s backup` + "\n" + `  %s --name backup`,
	"del":       `  %s backup`,
	"add_range": `  %s --name backup --range 192.168.1.[1-254]@tcp` + "\n" + `  %s --name backup --range 10.0.0.5@tcp`,
	"del_range": `  %s --name backup --range 192.168.1.[1-254]@tcp`,
	"modify": `  %s --name backup --property audit_mode --value 0` + "\n" +
		`  %s --name backup --property admin --value 1` + "\n" +
		`  %s --name backup --property squash_uid=99`,
	"test_nid": `  %s --nid 192.168.1.10@tcp`,
}

// decorate adds the examples and the shell completions of live names
// (devices, changelog users, parameter names, nodemap names) to lctl's
// commands.
func decorate(a *app, root *cobra.Command) {
	live := cli.Live{Flags: &a.flags}
	devices := func(cmd *cobra.Command) []string { return live.Devices(cmd) }
	users := func(cmd *cobra.Command) []string { return live.Users(cmd, a.device) }
	params := func(cmd *cobra.Command) []string { return live.ParamNames(cmd) }
	nodemaps := func(cmd *cobra.Command) []string { return live.Nodemaps(cmd) }
	_ = root.RegisterFlagCompletionFunc("device", cli.CompleteWith(devices, false))

	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		key := strings.TrimSpace(strings.TrimPrefix(c.CommandPath(), root.Name()))
		if ex, ok := examples[key]; ok {
			c.Example = ex
		}
		short := strings.TrimPrefix(strings.TrimPrefix(key, "nodemap_"), "nodemap ")
		if ex, ok := nodemapExamples[short]; ok && strings.HasPrefix(key, "nodemap") {
			c.Example = strings.ReplaceAll(ex, "%s", "lctl "+key)
		}
		switch {
		case key == "changelog_deregister" || key == "changelog deregister":
			c.ValidArgsFunction = cli.CompleteWith(users, true)
		case key == "get_param" || key == "list_param":
			c.ValidArgsFunction = cli.CompleteWith(params, false)
		case key == "set_param":
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				var out []cobra.Completion
				for _, n := range cli.Matching(params(cmd), toComplete) {
					out = append(out, n+"=")
				}
				return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
			}
		case strings.HasPrefix(key, "nodemap") && short != "add" && short != "activate" && short != "test_nid" && c.HasParent() && !c.HasSubCommands():
			if c.Flags().Lookup("name") != nil {
				_ = c.RegisterFlagCompletionFunc("name", cli.CompleteWith(nodemaps, false))
			}
			if short == "del" {
				c.ValidArgsFunction = cli.CompleteWith(nodemaps, true)
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}
