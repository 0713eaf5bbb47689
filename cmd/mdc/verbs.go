package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// umask returns the process umask, applied to new objects as the kernel
// would (the server applies none).
func umask() uint32 {
	old := syscall.Umask(0)
	syscall.Umask(old)
	return uint32(old)
}

// verb builds a subcommand whose body runs with a connected app.
func (a *app) verb(use, short string, args cobra.PositionalArgs, body func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, as []string) error {
			if err := args(cmd, as); err != nil {
				return cli.Usage(cmd, "mdc %s: %v", cmd.Name(), err)
			}
			// The server reads an empty path as the root; an empty operand
			// names no file (ENOENT, as the system calls and coreutils
			// say), and no verb has an operand that may be empty.
			for _, arg := range as {
				if arg == "" {
					fmt.Fprintf(a.stderr, "mdc %s: cannot access '': %s\n", cmd.Name(), cli.Strerror(cli.ENOENT))
					return cli.Exit(cli.ENOENT)
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return a.done(body(cmd, args)) },
	}
}

func (a *app) verbs() []*cobra.Command {
	return []*cobra.Command{
		a.mkdirCmd(), a.touchCmd(), a.mknodCmd(), a.lnCmd(), a.rmCmd(), a.rmdirCmd(), a.mvCmd(),
		a.chmodCmd(), a.chownCmd(), a.truncateCmd(), a.setfattrCmd(), a.getfattrCmd(), a.catCmd(),
		a.lsCmd(), a.statCmd(), a.openCmd(), a.closeCmd(), a.mountCmd(),
	}
}

func isErrno(err error, n int) bool { return err != nil && cli.Errno(err) == n }

func (a *app) mkdirCmd() *cobra.Command {
	var modeText string
	var parents bool
	cmd := a.verb("mkdir [-m MODE] [-p] PATH...", "Create directories (MKDIR)", cobra.MinimumNArgs(1), nil)
	cmd.Flags().StringVarP(&modeText, "mode", "m", "", "permission bits, octal")
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "create missing parents, no error if existing")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		mode := 0o777 &^ umask()
		if modeText != "" {
			m, err := cli.ParseOctal(modeText, 0o7777)
			if err != nil {
				a.conn.Close()
				return cli.Usage(cmd, "mdc mkdir: invalid mode '%s'", modeText)
			}
			mode = uint32(m)
		}
		return a.done(a.each(args, func(p string) error {
			if !parents {
				_, err := a.ns.Mkdir(a.ctx, &mdtv1.MkdirRequest{Path: []byte(p), Mode: mode})
				if err != nil {
					return a.fail(err, "cannot create directory '%s'", p)
				}
				return nil
			}
			parts := strings.Split(strings.Trim(p, "/"), "/")
			for i := range parts {
				sub := strings.Join(parts[:i+1], "/")
				m := (0o777 &^ umask()) | 0o300
				if i == len(parts)-1 {
					m = mode
				}
				_, err := a.ns.Mkdir(a.ctx, &mdtv1.MkdirRequest{Path: []byte(sub), Mode: m})
				if isErrno(err, cli.EEXIST) {
					st, serr := a.ns.Stat(a.ctx, &mdtv1.StatRequest{Path: []byte(sub)})
					if serr == nil && st.GetAttr().GetType() == commonv1.ObjectType_OBJECT_TYPE_DIR {
						continue
					}
				}
				if err != nil {
					return a.fail(err, "cannot create directory '%s'", sub)
				}
			}
			return nil
		}))
	}
	return cmd
}

// each runs fn for every path; fn reports its own failures through a.fail
// and returns only a connection failure.
func (a *app) each(paths []string, fn func(p string) error) error {
	for _, p := range paths {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) touchCmd() *cobra.Command {
	return a.verb("touch PATH...", "Create empty files (open O_CREAT + close), or set their times", cobra.MinimumNArgs(1),
		func(cmd *cobra.Command, args []string) error {
			return a.each(args, func(p string) error {
				_, err := a.ns.Stat(a.ctx, &mdtv1.StatRequest{Path: []byte(p)})
				if isErrno(err, cli.ENOENT) {
					o, err := a.ns.Open(a.ctx, &mdtv1.OpenRequest{
						Path:  []byte(p),
						Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_WRITE | mdtv1.OpenFlag_OPEN_FLAG_CREAT),
						Mode:  0o666 &^ umask(),
					})
					if err != nil {
						return a.fail(err, "cannot touch '%s'", p)
					}
					if _, err := a.ns.Close(a.ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()}); err != nil {
						return a.fail(err, "cannot touch '%s'", p)
					}
					return nil
				}
				if err != nil {
					return a.fail(err, "cannot touch '%s'", p)
				}
				now := time.Now().UnixNano()
				if _, err := a.ns.Setattr(a.ctx, &mdtv1.SetattrRequest{Path: []byte(p), AtimeNs: &now, MtimeNs: &now}); err != nil {
					return a.fail(err, "setting times of '%s'", p)
				}
				return nil
			})
		})
}

// makedev packs a device number as Linux's makedev(3) does.
func makedev(major, minor uint64) uint64 {
	return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor &^ 0xff) << 12) | ((major &^ 0xfff) << 32)
}

func (a *app) mknodCmd() *cobra.Command {
	var modeText string
	cmd := a.verb("mknod [-m MODE] PATH TYPE [MAJOR MINOR]", "Create a FIFO (p) or device (b, c, u) (MKNOD)", cobra.RangeArgs(2, 4), nil)
	cmd.Flags().StringVarP(&modeText, "mode", "m", "", "permission bits, octal")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		usage := func(f string, x ...any) error { a.conn.Close(); return cli.Usage(cmd, "mdc mknod: "+f, x...) }
		perm := 0o666 &^ umask()
		if modeText != "" {
			m, err := cli.ParseOctal(modeText, 0o7777)
			if err != nil {
				return usage("invalid mode '%s'", modeText)
			}
			perm = uint32(m)
		}
		var typ uint32
		switch args[1] {
		case "p":
			typ = syscall.S_IFIFO
		case "b":
			typ = syscall.S_IFBLK
		case "c", "u":
			typ = syscall.S_IFCHR
		default:
			return usage("invalid device type '%s'", args[1])
		}
		var rdev uint64
		if typ == syscall.S_IFIFO && len(args) != 2 {
			return usage("Fifos do not have major and minor device numbers.")
		}
		if typ != syscall.S_IFIFO {
			if len(args) != 4 {
				return usage("Special files require major and minor device numbers.")
			}
			maj, err1 := cli.ParseUint(args[2], 1<<32-1)
			min, err2 := cli.ParseUint(args[3], 1<<32-1)
			if err1 != nil || err2 != nil {
				return usage("invalid device number '%s %s'", args[2], args[3])
			}
			rdev = makedev(maj, min)
		}
		_, err := a.ns.Mknod(a.ctx, &mdtv1.MknodRequest{Path: []byte(args[0]), Mode: typ | perm, Rdev: rdev})
		if err != nil {
			err = a.fail(err, "'%s'", args[0])
		}
		return a.done(err)
	}
	return cmd
}

// intoDir returns dst/base(src) when dst is an existing directory, else dst.
func (a *app) intoDir(src, dst string) string {
	st, err := a.ns.Stat(a.ctx, &mdtv1.StatRequest{Path: []byte(dst)})
	if err == nil && st.GetAttr().GetType() == commonv1.ObjectType_OBJECT_TYPE_DIR {
		return path.Join(dst, path.Base(src))
	}
	return dst
}

func (a *app) lnCmd() *cobra.Command {
	var symbolic bool
	cmd := a.verb("ln [-s] TARGET LINK", "Make a hard link (HLINK) or a symbolic link (SLINK)", cobra.ExactArgs(2), nil)
	cmd.Flags().BoolVarP(&symbolic, "symbolic", "s", false, "make a symbolic link")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		target, link := args[0], a.intoDir(args[0], args[1])
		var err error
		if symbolic {
			if _, err = a.ns.Symlink(a.ctx, &mdtv1.SymlinkRequest{Target: []byte(target), Path: []byte(link)}); err != nil {
				err = a.fail(err, "failed to create symbolic link '%s'", link)
			}
		} else if _, err = a.ns.Link(a.ctx, &mdtv1.LinkRequest{OldPath: []byte(target), NewPath: []byte(link)}); err != nil {
			err = a.fail(err, "failed to create hard link '%s' => '%s'", link, target)
		}
		return a.done(err)
	}
	return cmd
}

func (a *app) rmCmd() *cobra.Command {
	var force bool
	cmd := a.verb("rm [-f] PATH...", "Remove names (UNLNK)", cobra.MinimumNArgs(1), nil)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "ignore nonexistent files")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.done(a.each(args, func(p string) error {
			_, err := a.ns.Unlink(a.ctx, &mdtv1.UnlinkRequest{Path: []byte(p)})
			if err == nil || (force && isErrno(err, cli.ENOENT)) {
				return nil
			}
			return a.fail(err, "cannot remove '%s'", p)
		}))
	}
	return cmd
}

func (a *app) rmdirCmd() *cobra.Command {
	return a.verb("rmdir PATH...", "Remove empty directories (RMDIR)", cobra.MinimumNArgs(1),
		func(cmd *cobra.Command, args []string) error {
			return a.each(args, func(p string) error {
				if _, err := a.ns.Rmdir(a.ctx, &mdtv1.RmdirRequest{Path: []byte(p)}); err != nil {
					return a.fail(err, "failed to remove '%s'", p)
				}
				return nil
			})
		})
}

func (a *app) mvCmd() *cobra.Command {
	return a.verb("mv SRC DST", "Rename (RENME)", cobra.ExactArgs(2),
		func(cmd *cobra.Command, args []string) error {
			src, dst := args[0], a.intoDir(args[0], args[1])
			if _, err := a.ns.Rename(a.ctx, &mdtv1.RenameRequest{SrcPath: []byte(src), DstPath: []byte(dst)}); err != nil {
				return a.fail(err, "cannot move '%s' to '%s'", src, dst)
			}
			return nil
		})
}

func (a *app) chmodCmd() *cobra.Command {
	cmd := a.verb("chmod MODE PATH...", "Change permission bits (SATTR)", cobra.MinimumNArgs(2), nil)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		m, err := cli.ParseOctal(args[0], 0o7777)
		if err != nil {
			a.conn.Close()
			return cli.Usage(cmd, "mdc chmod: invalid mode: '%s' (octal modes only)", args[0])
		}
		mode := uint32(m)
		return a.done(a.each(args[1:], func(p string) error {
			if _, err := a.ns.Setattr(a.ctx, &mdtv1.SetattrRequest{Path: []byte(p), Mode: &mode}); err != nil {
				if isErrno(err, cli.ENOENT) {
					return a.fail(err, "cannot access '%s'", p)
				}
				return a.fail(err, "changing permissions of '%s'", p)
			}
			return nil
		}))
	}
	return cmd
}

func (a *app) chownCmd() *cobra.Command {
	cmd := a.verb("chown UID[:GID] PATH...", "Change owner and group, numeric ids (SATTR)", cobra.MinimumNArgs(2), nil)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req := &mdtv1.SetattrRequest{}
		us, gs, hasG := strings.Cut(args[0], ":")
		bad := func() error {
			a.conn.Close()
			return cli.Usage(cmd, "mdc chown: invalid spec: '%s' (numeric UID[:GID])", args[0])
		}
		if us != "" {
			// Up to 2^32-2: (uid_t)-1 means "unchanged" to chown(2).
			u, err := cli.ParseUint(us, 1<<32-2)
			if err != nil {
				return bad()
			}
			v := uint32(u)
			req.Uid = &v
		}
		if hasG && gs != "" {
			g, err := cli.ParseUint(gs, 1<<32-2)
			if err != nil {
				return bad()
			}
			v := uint32(g)
			req.Gid = &v
		}
		if req.Uid == nil && req.Gid == nil {
			return bad()
		}
		return a.done(a.each(args[1:], func(p string) error {
			req.Path = []byte(p)
			if _, err := a.ns.Setattr(a.ctx, req); err != nil {
				if isErrno(err, cli.ENOENT) {
					return a.fail(err, "cannot access '%s'", p)
				}
				return a.fail(err, "changing ownership of '%s'", p)
			}
			return nil
		}))
	}
	return cmd
}

// parseSize parses truncate's SIZE: a number with an optional K, M, G, T
// (powers of 1024) or KB, MB, GB, TB (powers of 1000) suffix, at most
// 2^63-1.
func parseSize(s string) (uint64, bool) {
	mult := uint64(1)
	for i, suf := range []string{"K", "M", "G", "T"} {
		switch {
		case strings.HasSuffix(s, suf+"B"):
			mult, s = pow(1000, i+1), strings.TrimSuffix(s, suf+"B")
		case strings.HasSuffix(s, suf+"iB"):
			mult, s = pow(1024, i+1), strings.TrimSuffix(s, suf+"iB")
		case strings.HasSuffix(s, suf):
			mult, s = pow(1024, i+1), strings.TrimSuffix(s, suf)
		default:
			continue
		}
		break
	}
	// A size is an off_t: at most 2^63-1.
	const maxSize = 1<<63 - 1
	v, err := cli.ParseUint(s, maxSize)
	if err != nil || (mult > 1 && v > maxSize/mult) {
		return 0, false
	}
	return v * mult, true
}

func pow(b uint64, n int) uint64 {
	r := uint64(1)
	for range n {
		r *= b
	}
	return r
}

func (a *app) truncateCmd() *cobra.Command {
	var sizeText string
	cmd := a.verb("truncate -s SIZE PATH...", "Set file sizes, creating missing files (TRUNC)", cobra.MinimumNArgs(1), nil)
	cmd.Flags().StringVarP(&sizeText, "size", "s", "", "the new size in bytes (K, M, G suffixes)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		size, ok := parseSize(sizeText)
		if !ok {
			a.conn.Close()
			return cli.Usage(cmd, "mdc truncate: invalid number: '%s'", sizeText)
		}
		return a.done(a.each(args, func(p string) error {
			_, err := a.ns.Stat(a.ctx, &mdtv1.StatRequest{Path: []byte(p)})
			if !isErrno(err, cli.ENOENT) {
				if err == nil {
					_, err = a.ns.Setattr(a.ctx, &mdtv1.SetattrRequest{Path: []byte(p), Size: &size})
				}
				if err != nil {
					return a.fail(err, "cannot open '%s' for writing", p)
				}
				return nil
			}
			// Like coreutils: open(O_WRONLY|O_CREAT), ftruncate, close.
			o, err := a.ns.Open(a.ctx, &mdtv1.OpenRequest{
				Path:  []byte(p),
				Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_WRITE | mdtv1.OpenFlag_OPEN_FLAG_CREAT),
				Mode:  0o666 &^ umask(),
			})
			if err != nil {
				return a.fail(err, "cannot open '%s' for writing", p)
			}
			_, err = a.ns.Setattr(a.ctx, &mdtv1.SetattrRequest{Path: []byte(p), Size: &size})
			_, cerr := a.ns.Close(a.ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()})
			if err == nil {
				err = cerr
			}
			if err != nil {
				return a.fail(err, "failed to truncate '%s' at %d bytes", p, size)
			}
			return nil
		}))
	}
	return cmd
}

// parseXattrValue decodes setfattr's value forms: 0x<hex>, 0s<base64>,
// "quoted text", or plain text.
func parseXattrValue(v string) ([]byte, error) {
	switch {
	case strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X"):
		return hex.DecodeString(v[2:])
	case strings.HasPrefix(v, "0s") || strings.HasPrefix(v, "0S"):
		return base64.StdEncoding.DecodeString(v[2:])
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		return []byte(v[1 : len(v)-1]), nil
	default:
		return []byte(v), nil
	}
}

func (a *app) setfattrCmd() *cobra.Command {
	var name, value, remove string
	cmd := a.verb("setfattr {-n NAME [-v VALUE] | -x NAME} PATH...", "Set or remove an extended attribute (XATTR)", cobra.MinimumNArgs(1), nil)
	cmd.Flags().StringVarP(&name, "name", "n", "", "attribute to set")
	cmd.Flags().StringVarP(&value, "value", "v", "", "value: text, \"text\", 0x<hex> or 0s<base64>")
	cmd.Flags().StringVarP(&remove, "remove", "x", "", "attribute to remove")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if (name == "") == (remove == "") {
			a.conn.Close()
			return cli.Usage(cmd, "mdc setfattr: give exactly one of -n NAME or -x NAME")
		}
		val, err := parseXattrValue(value)
		if err != nil {
			a.conn.Close()
			return cli.Usage(cmd, "mdc setfattr: invalid value '%s'", value)
		}
		return a.done(a.each(args, func(p string) error {
			var err error
			if remove != "" {
				_, err = a.ns.Removexattr(a.ctx, &mdtv1.RemovexattrRequest{Path: []byte(p), Name: remove})
			} else {
				_, err = a.ns.Setxattr(a.ctx, &mdtv1.SetxattrRequest{Path: []byte(p), Name: name, Value: val})
			}
			if err != nil {
				return a.fail(err, "%s", p)
			}
			return nil
		}))
	}
	return cmd
}

// quoteXattr renders a value as getfattr does by default: quoted text, or
// 0x hex when it is not printable text.
func quoteXattr(v []byte) string {
	s := strings.TrimSuffix(string(v), "\x00")
	printable := utf8.ValidString(s)
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			printable = false
		}
	}
	if !printable {
		return "0x" + hex.EncodeToString(v)
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (a *app) getfattrCmd() *cobra.Command {
	var name string
	var dump bool
	cmd := a.verb("getfattr {-n NAME | -d} PATH...", "Read extended attributes (GXATR for user.*)", cobra.MinimumNArgs(1), nil)
	cmd.Flags().StringVarP(&name, "name", "n", "", "attribute to read")
	cmd.Flags().BoolVarP(&dump, "dump", "d", false, "read every user.* attribute")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if (name == "") == !dump {
			a.conn.Close()
			return cli.Usage(cmd, "mdc getfattr: give exactly one of -n NAME or -d")
		}
		return a.done(a.each(args, func(p string) error {
			names := []string{name}
			if dump {
				l, err := a.ns.Listxattr(a.ctx, &mdtv1.ListxattrRequest{Path: []byte(p)})
				if err != nil {
					return a.fail(err, "%s", p)
				}
				names = names[:0]
				for _, n := range l.GetNames() {
					if strings.HasPrefix(n, "user.") {
						names = append(names, n)
					}
				}
				if len(names) == 0 {
					return nil
				}
			}
			var b strings.Builder
			for _, n := range names {
				r, err := a.ns.Getxattr(a.ctx, &mdtv1.GetxattrRequest{Path: []byte(p), Name: n})
				if isErrno(err, cli.ENODATA) {
					fmt.Fprintf(a.stderr, "%s: %s: No such attribute\n", p, n)
					if a.rc == 0 {
						a.rc = cli.ENODATA
					}
					continue
				}
				if err != nil {
					return a.fail(err, "%s", p)
				}
				if b.Len() == 0 {
					b.WriteString("# file: " + p + "\n")
				}
				b.WriteString(n + "=" + quoteXattr(r.GetValue()) + "\n")
			}
			if b.Len() > 0 {
				fmt.Fprintln(a.stdout, b.String())
			}
			return nil
		}))
	}
	return cmd
}

func (a *app) catCmd() *cobra.Command {
	return a.verb("cat PATH...", "Open read-only and close (OPEN, CLOSE per the audit rules); prints nothing", cobra.MinimumNArgs(1),
		func(cmd *cobra.Command, args []string) error {
			return a.each(args, func(p string) error {
				o, err := a.ns.Open(a.ctx, &mdtv1.OpenRequest{Path: []byte(p), Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_READ)})
				if err != nil {
					return a.fail(err, "%s", p)
				}
				if _, err := a.ns.Close(a.ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()}); err != nil {
					return a.fail(err, "%s", p)
				}
				return nil
			})
		})
}
