package mdt

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestErrnoTableNamesEverySentinel: every exported sentinel error of mdt,
// changelog, nodemap and fid has its row in errnoTable, the one errno
// table (api maps its errnos to gRPC codes and keeps none of its own). A
// sentinel added without a row would silently map to EIO.
func TestErrnoTableNamesEverySentinel(t *testing.T) {
	rows := map[string]bool{}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errors.go", nil, 0)
	ok(t, err)
	ast.Inspect(f, func(n ast.Node) bool {
		vs, isVS := n.(*ast.ValueSpec)
		if !isVS || len(vs.Names) != 1 || vs.Names[0].Name != "errnoTable" {
			return true
		}
		for _, el := range vs.Values[0].(*ast.CompositeLit).Elts {
			switch x := el.(*ast.CompositeLit).Elts[0].(type) {
			case *ast.Ident:
				rows["mdt."+x.Name] = true
			case *ast.SelectorExpr:
				rows[x.X.(*ast.Ident).Name+"."+x.Sel.Name] = true
			}
		}
		return false
	})
	if len(rows) < 40 {
		t.Fatalf("found %d rows in errnoTable; the parser did not find the table", len(rows))
	}
	n := 0
	for pkg, dir := range map[string]string{"mdt": ".", "changelog": "../changelog", "nodemap": "../nodemap", "fid": "../fid"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		ok(t, err)
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			ok(t, err)
			f, err := parser.ParseFile(fset, name, src, 0)
			ok(t, err)
			for _, d := range f.Decls {
				g, isGen := d.(*ast.GenDecl)
				if !isGen || g.Tok != token.VAR {
					continue
				}
				for _, s := range g.Specs {
					for _, id := range s.(*ast.ValueSpec).Names {
						if !id.IsExported() || !strings.HasPrefix(id.Name, "Err") {
							continue
						}
						n++
						if !rows[pkg+"."+id.Name] {
							t.Errorf("%s.%s has no row in errnoTable", pkg, id.Name)
						}
					}
				}
			}
		}
	}
	if n < 40 {
		t.Fatalf("found only %d sentinels", n)
	}
}

// TestErrBusy: removing or renaming the root is EBUSY, as POSIX says (it
// was EINVAL).
func TestErrBusy(t *testing.T) {
	e := newEnv(t)
	for name, err := range map[string]error{
		"rmdir /":  e.m.Rmdir(ctx, root, "/"),
		"rename /": e.m.Rename(ctx, root, "/", "x"),
	} {
		if !errors.Is(err, ErrBusy) || Errno(err) != syscall.EBUSY {
			t.Errorf("%s: %v (errno %d), want ErrBusy (EBUSY)", name, err, Errno(err))
		}
	}
}
