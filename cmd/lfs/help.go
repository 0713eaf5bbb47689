package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
)

// examples are the "Examples:" sections of lfs's help.
var examples = map[string]string{
	"": `  lfs changelog lustre-MDT0000
  lfs changelog --follow --user cl1 lustre-MDT0000
  lfs changelog_clear lustre-MDT0000 cl1 0
  lfs fid2path lustre '[0x200000400:0x1:0x0]'`,
	"changelog": `  lfs changelog lustre-MDT0000
  lfs changelog lustre-MDT0000 100 200
  lfs changelog --output json lustre-MDT0000
  lfs changelog --follow --user cl1 lustre-MDT0000`,
	"changelog_clear": `  lfs changelog_clear lustre-MDT0000 cl1 5
  lfs changelog_clear lustre-MDT0000 cl1 0     # everything up to the current index`,
	"fid2path": `  lfs fid2path lustre '[0x200000400:0x2:0x0]'
  lfs fid2path --print-fid lustre 0x200000400:0x1:0x0 0x200000400:0x2:0x0
  lfs fid2path --link 1 lustre '[0x200000400:0x2:0x0]'`,
	"path2fid": `  lfs path2fid pics/chloe.jpg
  lfs path2fid --parents pics/chloe.jpg`,
}

// decorate adds the examples and the completion of live names (devices,
// changelog user ids) to lfs's commands.
func decorate(a *app, root *cobra.Command) {
	cli.ApplyExamples(root, examples)
	live := cli.Live{Flags: &a.flags}
	for _, c := range root.Commands() {
		switch c.Name() {
		case "changelog":
			c.ValidArgsFunction = cli.CompleteWith(live.Devices, true)
			_ = c.RegisterFlagCompletionFunc("user", cli.CompleteWith(func(cmd *cobra.Command) []string {
				if args := cmd.Flags().Args(); len(args) > 0 {
					return live.Users(cmd, args[0])
				}
				return live.Users(cmd, "")
			}, false))
		case "changelog_clear":
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				switch len(args) {
				case 0:
					return cli.Matching(live.Devices(cmd), toComplete), cobra.ShellCompDirectiveNoFileComp
				case 1:
					// changelog_clear takes the id alone: cl1, not cl1-name.
					var ids []string
					for _, u := range live.Users(cmd, args[0]) {
						id, _, _ := strings.Cut(u, "-")
						ids = append(ids, id)
					}
					return cli.Matching(ids, toComplete), cobra.ShellCompDirectiveNoFileComp
				}
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		}
	}
}
