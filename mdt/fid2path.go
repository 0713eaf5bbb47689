package mdt

import (
	"context"
	"fmt"
	"strings"

	"github.com/fidlog/fidlog/fid"
)

// maxDepth bounds a walk up the tree (a corrupt loop must not hang).
const maxDepth = 4096

// Fid2Path returns the paths of object f relative to the root, without a
// leading slash, one per hard link in link order (link < 0), or only link
// number link (counting from 0). The root is "/". An unknown object, one
// with no link left, or a link number beyond the last is ENOENT; the zero
// FID is EINVAL.
func (m *MDT) Fid2Path(ctx context.Context, c Cred, f fid.FID, link int) ([]string, error) {
	if _, err := m.begin(ctx, c); err != nil {
		return nil, pathErr("fid2path", f.String(), err)
	}
	if f.IsZero() {
		return nil, pathErr("fid2path", f.String(), ErrInvalid)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	paths, err := m.fid2path(f, link)
	return paths, pathErr("fid2path", f.String(), err)
}

func (m *MDT) fid2path(f fid.FID, link int) ([]string, error) {
	if f == fid.Root {
		if link > 0 {
			return nil, fmt.Errorf("%w: link %d of the root", ErrNotFound, link)
		}
		return []string{"/"}, nil
	}
	if _, err := m.getInode(f); err != nil {
		return nil, err
	}
	ls, err := m.links(f)
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, fmt.Errorf("%w: object has no link", ErrNotFound)
	}
	if link >= len(ls) {
		return nil, fmt.Errorf("%w: link %d of %d", ErrNotFound, link, len(ls))
	}
	if link >= 0 {
		ls = ls[link : link+1]
	}
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		p, err := m.dirPath(l.parent)
		if err != nil {
			return nil, err
		}
		if p == "" {
			out = append(out, l.name)
		} else {
			out = append(out, p+"/"+l.name)
		}
	}
	return out, nil
}

// dirPath returns the path of directory d ("" for the root).
func (m *MDT) dirPath(d fid.FID) (string, error) {
	var parts []string
	for range maxDepth {
		if d == fid.Root {
			for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
				parts[i], parts[j] = parts[j], parts[i]
			}
			return strings.Join(parts, "/"), nil
		}
		ls, err := m.links(d)
		if err != nil {
			return "", err
		}
		if len(ls) == 0 {
			return "", fmt.Errorf("%w: directory %v has no link", ErrNotFound, d)
		}
		parts = append(parts, ls[0].name)
		d = ls[0].parent
	}
	return "", fmt.Errorf("%w: path deeper than %d", ErrLoop, maxDepth)
}

// Path2Fid returns the FID of the object at p (not following a final
// symlink).
func (m *MDT) Path2Fid(ctx context.Context, c Cred, p string) (fid.FID, error) {
	cl, err := m.begin(ctx, c)
	if err != nil {
		return fid.FID{}, pathErr("path2fid", p, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.resolve(&cl.id, p, resolveOpts{existing: true})
	if err != nil {
		return fid.FID{}, pathErr("path2fid", p, err)
	}
	return r.obj.FID, nil
}
