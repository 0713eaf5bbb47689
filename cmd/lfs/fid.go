package main

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/fid"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

func newFid2PathCmd(a *app) *cobra.Command {
	var linkText string
	var print0, printLink, printFID, nameOnly bool
	cmd := &cobra.Command{
		Use:   "fid2path [--print0|-0] [--print-link|-c] [--print-fid|-f] [--link|-l LINKNO] [--name|-n] FSNAME|MOUNT_POINT FID...",
		Short: "Resolve the full path(s) of FIDs",
		Annotations: map[string]string{
			"usage": "fid2path [--print0|-0] [--print-fid|-f] [--print-link|-c] [--link|-l <linkno>] [--name|-n] <fsname|root> <fid>...",
			"help": "Resolve the full path(s) for given FID(s). For a specific hardlink specify link number <linkno>.\n" +
				"usage: fid2path [--print0|-0] [--print-fid|-f] [--print-link|-c] [--link|-l <linkno>] [--name|-n] <fsname|root> <fid>...",
		},
		Args: cobra.ArbitraryArgs,
	}
	cmd.Flags().StringVarP(&linkText, "link", "l", "", "print only hard link LINKNO (counting from 0)")
	cmd.Flags().BoolVarP(&print0, "print0", "0", false, "end each path with NUL instead of newline")
	cmd.Flags().BoolVarP(&printLink, "print-link", "c", false, "prefix each path with its link number")
	cmd.Flags().BoolVarP(&printFID, "print-fid", "f", false, "prefix each path with its FID")
	cmd.Flags().BoolVarP(&nameOnly, "name", "n", false, "print only the last path component")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) < 2 {
			return cli.Usage(cmd, "Usage: lfs fid2path FSNAME|ROOT FID...")
		}
		link := -1
		if cmd.Flags().Changed("link") {
			n, err := cli.ParseUint(linkText, 1<<31-1)
			if err != nil {
				return cli.Usage(cmd, "lfs fid2path: invalid linkno '%s'", linkText)
			}
			link = int(n)
		}
		root := args[0]
		mount := strings.HasPrefix(root, "/")
		if mount {
			// lfs strips trailing slashes from the mount point (but keeps
			// a lone "/").
			root = "/" + strings.TrimRight(root[1:], "/")
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx := cmd.Context()
		if !mount {
			// llapi_search_rootpath: an FSNAME no mounted file system has
			// is ENODEV, and no FID is looked up.
			_, err := conn.GetParams(ctx, "mdd."+root+"-MDT*.changelog_gc")
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			}
			if err != nil || !fsnameRE.MatchString(root) {
				fmt.Fprintf(a.stderr, "lfs fid2path: cannot resolve mount point for '%s': %s\n", args[0], cli.Strerror(cli.ENODEV))
				return cli.Exit(cli.ENODEV)
			}
		}
		end := "\n"
		if print0 {
			end = "\x00"
		}
		first := 0
		for _, text := range args[1:] {
			f, perr := fid.Parse(text)
			if perr != nil {
				n := cli.EINVAL
				if errors.Is(perr, fid.ErrRange) {
					n = cli.ERANGE
				}
				fmt.Fprintf(a.stderr, "lfs fid2path: invalid FID '%s'\n", text)
				if first == 0 {
					first = n
				}
				continue
			}
			req := &mdtv1.Fid2PathRequest{Fid: fidToPB(f)}
			if link >= 0 {
				l := uint32(link)
				req.Link = &l
			}
			resp, err := conn.Namespace.Fid2Path(ctx, req)
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			}
			if err != nil {
				n := cli.Errno(err)
				fmt.Fprintf(a.stderr, "lfs fid2path: cannot find %s %s: %s\n", root, text, cli.Strerror(n))
				if first == 0 {
					first = n
				}
				continue
			}
			for i, pb := range resp.GetPaths() {
				p := string(pb)
				linkno := i
				if link >= 0 {
					linkno = link
				}
				var b strings.Builder
				if printFID {
					b.WriteString(text + " ") // the FID as given, as lfs prints it
				}
				if printLink {
					fmt.Fprintf(&b, "%d ", linkno)
				}
				// The root's path is "/" (llapi's copy_strip_dne_path), so
				// relative to a mount point lfs prints "MOUNT//", and
				// relative to an FSNAME "/".
				if p == "" {
					p = "/"
				}
				switch {
				case nameOnly:
					b.WriteString(path.Base(p))
				case mount:
					b.WriteString(strings.TrimSuffix(root, "/") + "/" + p)
				default:
					b.WriteString(p)
				}
				b.WriteString(end)
				fmt.Fprint(a.stdout, b.String())
			}
		}
		return cli.Exit(first)
	}
	return cmd
}

// fsnameRE is what a Lustre file system name can be.
var fsnameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,8}$`)

func newPath2FidCmd(a *app) *cobra.Command {
	var parents bool
	cmd := &cobra.Command{
		Use:   "path2fid [--parents|-p] PATH...",
		Short: "Display the FID(s) of the given path(s)",
		Annotations: map[string]string{
			"usage": "path2fid [--parents] <path> ...",
			"help":  "Display the fid(s) for a given path(s).\nusage: path2fid [--parents] <path> ...",
		},
		Args: cobra.ArbitraryArgs,
	}
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "print the parent FID and name of every hard link")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cli.Usage(cmd, "lfs path2fid: FILE... must be specified")
		}
		conn, err := a.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx := cmd.Context()
		ns := conn.Namespace
		first := 0
		for _, p := range args {
			var resp *mdtv1.Path2FidResponse
			var err error
			if p == "" {
				// No file has an empty name (open("") is ENOENT); the
				// server would read it as the root.
				err = syscall.ENOENT
			} else {
				resp, err = ns.Path2Fid(ctx, &mdtv1.Path2FidRequest{Path: []byte(p)})
			}
			var out string
			if err == nil && parents {
				out, err = a.parentsOf(cmd, ns, fidFromPB(resp.GetFid()))
			} else if err == nil {
				out = fidFromPB(resp.GetFid()).String()
			}
			if err = conn.Err(err); cli.IsConn(err) {
				return err
			}
			if err != nil {
				n := cli.Errno(err)
				what := "fid"
				if parents {
					what = "parent fid"
				}
				fmt.Fprintf(a.stderr, "lfs path2fid: cannot get %s for '%s': %s\n", what, p, cli.Strerror(n))
				if first == 0 {
					first = n
				}
				continue
			}
			if len(args) > 1 {
				fmt.Fprintf(a.stdout, "%s: %s\n", p, out)
			} else {
				fmt.Fprintln(a.stdout, out)
			}
		}
		return cli.Exit(first)
	}
	return cmd
}

// parentsOf renders "[parentfid]/name" for every hard link of f,
// tab-separated (lfs path2fid --parents).
func (a *app) parentsOf(cmd *cobra.Command, ns mdtv1.NamespaceServiceClient, f fid.FID) (string, error) {
	ctx := cmd.Context()
	resp, err := ns.Fid2Path(ctx, &mdtv1.Fid2PathRequest{Fid: fidToPB(f)})
	if err != nil {
		return "", err
	}
	var parts []string
	for _, pb := range resp.GetPaths() {
		p := string(pb)
		if p == "" { // the root has no parent
			return "", syscall.ENODATA
		}
		dir, name := path.Split(p)
		pr, err := ns.Path2Fid(ctx, &mdtv1.Path2FidRequest{Path: []byte(dir)})
		if err != nil {
			return "", err
		}
		parts = append(parts, fidFromPB(pr.GetFid()).String()+"/"+name)
	}
	return strings.Join(parts, "\t"), nil
}
