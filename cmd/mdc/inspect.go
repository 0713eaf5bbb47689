package main

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/fid"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

func typeChar(t commonv1.ObjectType) byte {
	switch t {
	case commonv1.ObjectType_OBJECT_TYPE_DIR:
		return 'd'
	case commonv1.ObjectType_OBJECT_TYPE_LNK:
		return 'l'
	case commonv1.ObjectType_OBJECT_TYPE_CHR:
		return 'c'
	case commonv1.ObjectType_OBJECT_TYPE_BLK:
		return 'b'
	case commonv1.ObjectType_OBJECT_TYPE_FIFO:
		return 'p'
	case commonv1.ObjectType_OBJECT_TYPE_SOCK:
		return 's'
	default:
		return '-'
	}
}

func typeName(t commonv1.ObjectType) string {
	switch t {
	case commonv1.ObjectType_OBJECT_TYPE_DIR:
		return "directory"
	case commonv1.ObjectType_OBJECT_TYPE_LNK:
		return "symbolic link"
	case commonv1.ObjectType_OBJECT_TYPE_CHR:
		return "character special file"
	case commonv1.ObjectType_OBJECT_TYPE_BLK:
		return "block special file"
	case commonv1.ObjectType_OBJECT_TYPE_FIFO:
		return "fifo"
	case commonv1.ObjectType_OBJECT_TYPE_SOCK:
		return "socket"
	default:
		return "regular file"
	}
}

// modeString renders ls's 10-character mode, e.g. "drwxr-xr-x".
func modeString(at *commonv1.Attr) string {
	m := at.GetMode()
	b := []byte{typeChar(at.GetType())}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if m&bit != 0 {
			if b[pos] == 'x' {
				b[pos] = set
			} else {
				b[pos] = unset
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

func fidOf(at *commonv1.Attr) string {
	f := at.GetFid()
	return fid.FID{Seq: f.GetSeq(), Oid: f.GetOid(), Ver: f.GetVer()}.String()
}

func (a *app) longLine(name string, at *commonv1.Attr) string {
	mt := time.Unix(0, at.GetMtimeNs()).Local().Format("2006-01-02 15:04")
	size := strconv.FormatUint(at.GetSize(), 10)
	if t := at.GetType(); t == commonv1.ObjectType_OBJECT_TYPE_CHR || t == commonv1.ObjectType_OBJECT_TYPE_BLK {
		r := at.GetRdev()
		size = fmt.Sprintf("%d, %d", devMajor(r), devMinor(r))
	}
	s := fmt.Sprintf("%s %d %d %d %s %s %s", modeString(at), at.GetNlink(), at.GetUid(), at.GetGid(), size, mt, name)
	if at.GetType() == commonv1.ObjectType_OBJECT_TYPE_LNK {
		s += " -> " + string(at.GetSymlinkTarget())
	}
	return s
}

func (a *app) lsCmd() *cobra.Command {
	var long, dirOnly bool
	cmd := a.verb("ls [-l] [-d] [PATH...]", "List directory contents (one name per line)", cobra.ArbitraryArgs, nil)
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long listing: mode, links, uid, gid, size, mtime, name")
	cmd.Flags().BoolVarP(&dirOnly, "directory", "d", false, "list directories themselves, not their contents")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			args = []string{"/"}
		}
		return a.done(a.each(args, func(p string) error {
			st, err := a.ns.Stat(a.ctx, &mdtv1.StatRequest{Path: []byte(p)})
			if err != nil {
				return a.fail(err, "cannot access '%s'", p)
			}
			at := st.GetAttr()
			if dirOnly || at.GetType() != commonv1.ObjectType_OBJECT_TYPE_DIR {
				if long {
					fmt.Fprintln(a.stdout, a.longLine(p, at))
				} else {
					fmt.Fprintln(a.stdout, p)
				}
				return nil
			}
			if len(args) > 1 {
				fmt.Fprintf(a.stdout, "%s:\n", p)
			}
			var b strings.Builder
			after := ""
			for {
				rd, err := a.ns.Readdir(a.ctx, &mdtv1.ReaddirRequest{Path: []byte(p), StartAfter: []byte(after)})
				if err != nil {
					return a.fail(err, "cannot open directory '%s'", p)
				}
				for _, e := range rd.GetEntries() {
					name := string(e.GetName())
					after = name
					if !long {
						b.WriteString(name + "\n")
						continue
					}
					est, err := a.ns.Stat(a.ctx, &mdtv1.StatRequest{Path: []byte(path.Join(p, name))})
					if err != nil {
						return a.fail(err, "cannot access '%s'", path.Join(p, name))
					}
					b.WriteString(a.longLine(name, est.GetAttr()) + "\n")
				}
				if !rd.GetMore() || len(rd.GetEntries()) == 0 {
					break
				}
			}
			fmt.Fprint(a.stdout, b.String())
			return nil
		}))
	}
	return cmd
}

func (a *app) statCmd() *cobra.Command {
	return a.verb("stat PATH...", "Show attributes (a simplified coreutils stat, plus the FID)", cobra.MinimumNArgs(1),
		func(cmd *cobra.Command, args []string) error {
			return a.each(args, func(p string) error {
				st, err := a.ns.Stat(a.ctx, &mdtv1.StatRequest{Path: []byte(p)})
				if err != nil {
					return a.fail(err, "cannot stat '%s'", p)
				}
				at := st.GetAttr()
				ts := func(ns int64) string {
					return time.Unix(0, ns).Local().Format("2006-01-02 15:04:05.000000000 -0700")
				}
				name := p
				if at.GetType() == commonv1.ObjectType_OBJECT_TYPE_LNK {
					name += " -> " + string(at.GetSymlinkTarget())
				}
				fmt.Fprintf(a.stdout, "  File: %s\n  Size: %d\t%s\n   FID: %s\tLinks: %d\nAccess: (%04o/%s)  Uid: %d  Gid: %d\nAccess: %s\nModify: %s\nChange: %s\n",
					name, at.GetSize(), typeName(at.GetType()), fidOf(at), at.GetNlink(),
					at.GetMode(), modeString(at), at.GetUid(), at.GetGid(),
					ts(at.GetAtimeNs()), ts(at.GetMtimeNs()), ts(at.GetCtimeNs()))
				return nil
			})
		})
}

func (a *app) openCmd() *cobra.Command {
	var read, write, create, excl, trunc, appendFlag, exec bool
	var modeText string
	cmd := a.verb("open [-r|-w|-rw] [--create [--excl]] [--trunc] [--append] [--exec] PATH",
		"Open a file and print the handle; it stays open (server-side) until 'mdc close HANDLE'", cobra.ExactArgs(1), nil)
	f := cmd.Flags()
	f.BoolVarP(&read, "read", "r", false, "open for reading (the default)")
	f.BoolVarP(&write, "write", "w", false, "open for writing")
	f.BoolVar(&create, "create", false, "create the file if missing (O_CREAT)")
	f.BoolVar(&excl, "excl", false, "with --create, fail if the file exists (O_EXCL)")
	f.BoolVar(&trunc, "trunc", false, "truncate to 0 (O_TRUNC)")
	f.BoolVar(&appendFlag, "append", false, "open for appending (O_APPEND)")
	f.BoolVar(&exec, "exec", false, "open for execution")
	f.StringVarP(&modeText, "mode", "m", "", "permission bits of a created file, octal")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var flags mdtv1.OpenFlag
		set := func(on bool, fl mdtv1.OpenFlag) {
			if on {
				flags |= fl
			}
		}
		set(read || !(write || appendFlag || exec), mdtv1.OpenFlag_OPEN_FLAG_READ)
		set(write, mdtv1.OpenFlag_OPEN_FLAG_WRITE)
		set(create, mdtv1.OpenFlag_OPEN_FLAG_CREAT)
		set(excl, mdtv1.OpenFlag_OPEN_FLAG_EXCL)
		set(trunc, mdtv1.OpenFlag_OPEN_FLAG_TRUNC)
		set(appendFlag, mdtv1.OpenFlag_OPEN_FLAG_APPEND|mdtv1.OpenFlag_OPEN_FLAG_WRITE)
		set(exec, mdtv1.OpenFlag_OPEN_FLAG_EXEC)
		mode := 0o666 &^ umask()
		if modeText != "" {
			m, err := cli.ParseOctal(modeText, 0o7777)
			if err != nil {
				a.conn.Close()
				return cli.Usage(cmd, "mdc open: invalid mode '%s'", modeText)
			}
			mode = uint32(m)
		}
		o, err := a.ns.Open(a.ctx, &mdtv1.OpenRequest{Path: []byte(args[0]), Flags: uint32(flags), Mode: mode})
		if err != nil {
			return a.done(a.fail(err, "cannot open '%s'", args[0]))
		}
		fmt.Fprintln(a.stdout, o.GetHandle())
		return a.done(nil)
	}
	return cmd
}

func (a *app) closeCmd() *cobra.Command {
	cmd := a.verb("close HANDLE...", "Close handles printed by 'mdc open' (CLOSE per the audit rules)", cobra.MinimumNArgs(1), nil)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.done(a.each(args, func(h string) error {
			n, err := cli.ParseUint(h, 1<<64-1)
			if err != nil || n == 0 {
				fmt.Fprintf(a.stderr, "mdc: close %s: %s\n", h, cli.Strerror(cli.EBADF))
				if a.rc == 0 {
					a.rc = cli.EBADF
				}
				return nil
			}
			if _, err := a.ns.Close(a.ctx, &mdtv1.CloseRequest{Handle: n}); err != nil {
				return a.fail(err, "close %s", h)
			}
			return nil
		}))
	}
	return cmd
}

// devMajor and devMinor read a device number as glibc's major(3) and
// minor(3) do (the inverse of makedev).
func devMajor(r uint64) uint64 { return (r>>8)&0xfff | (r>>32)&0xfffff000 }
func devMinor(r uint64) uint64 { return r&0xff | (r>>12)&0xffffff00 }
