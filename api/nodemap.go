package api

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fidlog/fidlog/nodemap"
	nodemapv1 "github.com/fidlog/fidlog/proto/lustre/nodemap/v1"
)

// nodemapService implements lustre.nodemap.v1.NodemapService.
type nodemapService struct {
	nodemapv1.UnimplementedNodemapServiceServer
	s *Server
}

func (n *nodemapService) Activate(ctx context.Context, r *nodemapv1.ActivateRequest) (*nodemapv1.ActivateResponse, error) {
	if err := n.s.authorize(ctx, nodemap.RoleLocalAdmin, "nodemap_activate"); err != nil {
		return nil, err
	}
	if err := n.s.m.NodemapActivate(r.GetActive()); err != nil {
		return nil, err
	}
	return &nodemapv1.ActivateResponse{Active: n.s.m.NodemapActive()}, nil
}

func (n *nodemapService) Add(ctx context.Context, r *nodemapv1.AddRequest) (*nodemapv1.AddResponse, error) {
	if err := n.s.authorize(ctx, nodemap.RoleLocalAdmin, "nodemap_add"); err != nil {
		return nil, err
	}
	if err := n.s.m.NodemapAdd(r.GetName()); err != nil {
		return nil, err
	}
	nm, err := n.info(r.GetName())
	if err != nil {
		return nil, err
	}
	return &nodemapv1.AddResponse{Nodemap: nm}, nil
}

func (n *nodemapService) Del(ctx context.Context, r *nodemapv1.DelRequest) (*nodemapv1.DelResponse, error) {
	if err := n.s.authorize(ctx, nodemap.RoleLocalAdmin, "nodemap_del"); err != nil {
		return nil, err
	}
	if err := n.s.m.NodemapDel(r.GetName()); err != nil {
		return nil, err
	}
	return &nodemapv1.DelResponse{}, nil
}

func (n *nodemapService) AddRange(ctx context.Context, r *nodemapv1.AddRangeRequest) (*nodemapv1.AddRangeResponse, error) {
	if err := n.s.authorize(ctx, nodemap.RoleLocalAdmin, "nodemap_add_range"); err != nil {
		return nil, err
	}
	if err := n.s.m.NodemapAddRange(r.GetName(), r.GetRange()); err != nil {
		return nil, err
	}
	nm, err := n.info(r.GetName())
	if err != nil {
		return nil, err
	}
	return &nodemapv1.AddRangeResponse{Nodemap: nm}, nil
}

func (n *nodemapService) DelRange(ctx context.Context, r *nodemapv1.DelRangeRequest) (*nodemapv1.DelRangeResponse, error) {
	if err := n.s.authorize(ctx, nodemap.RoleLocalAdmin, "nodemap_del_range"); err != nil {
		return nil, err
	}
	if err := n.s.m.NodemapDelRange(r.GetName(), r.GetRange()); err != nil {
		return nil, err
	}
	nm, err := n.info(r.GetName())
	if err != nil {
		return nil, err
	}
	return &nodemapv1.DelRangeResponse{Nodemap: nm}, nil
}

func (n *nodemapService) Modify(ctx context.Context, r *nodemapv1.ModifyRequest) (*nodemapv1.ModifyResponse, error) {
	if err := n.s.authorize(ctx, nodemap.RoleLocalAdmin, "nodemap_modify"); err != nil {
		return nil, err
	}
	if err := n.s.m.NodemapModify(r.GetName(), r.GetProperty(), r.GetValue()); err != nil {
		return nil, err
	}
	nm, err := n.info(r.GetName())
	if err != nil {
		return nil, err
	}
	return &nodemapv1.ModifyResponse{Nodemap: nm}, nil
}

func (n *nodemapService) TestNid(ctx context.Context, r *nodemapv1.TestNidRequest) (*nodemapv1.TestNidResponse, error) {
	name, err := n.s.m.NodemapTestNID(r.GetNid())
	if err != nil {
		return nil, err
	}
	return &nodemapv1.TestNidResponse{Name: name}, nil
}

func (n *nodemapService) List(ctx context.Context, r *nodemapv1.ListRequest) (*nodemapv1.ListResponse, error) {
	active, all, err := n.list()
	if err != nil {
		return nil, err
	}
	return &nodemapv1.ListResponse{Active: active, Nodemaps: all}, nil
}

func (n *nodemapService) Info(ctx context.Context, r *nodemapv1.InfoRequest) (*nodemapv1.InfoResponse, error) {
	nm, err := n.info(r.GetName())
	if err != nil {
		return nil, err
	}
	return &nodemapv1.InfoResponse{Nodemap: nm}, nil
}

// info returns one nodemap, or the nodemap package's not-found error.
func (n *nodemapService) info(name string) (*nodemapv1.Nodemap, error) {
	_, all, err := n.list()
	if err != nil {
		return nil, err
	}
	for _, nm := range all {
		if nm.Name == name {
			return nm, nil
		}
	}
	return nil, &nodemap.NodemapError{Name: name, Err: nodemap.ErrNotFound}
}

// paramToProperty maps get_param names to nodemap_modify property names.
var paramToProperty = map[string]string{"admin_nodemap": "admin", "trusted_nodemap": "trusted"}

// list rebuilds the nodemaps from the nodemap.* parameter tree, the view
// the MDT exports: nodemap.active, nodemap.NAME.id, nodemap.NAME.ranges and
// one parameter per property.
func (n *nodemapService) list() (bool, []*nodemapv1.Nodemap, error) {
	ps, err := n.s.m.GetParams("nodemap.*")
	if err != nil {
		return false, nil, err
	}
	more, err := n.s.m.GetParams("nodemap.*.*")
	if err != nil {
		return false, nil, err
	}
	ps = append(ps, more...)
	order := map[string]int{}
	for i, p := range nodemap.PropertyNames() {
		order[p] = i
	}
	active := false
	byName := map[string]*nodemapv1.Nodemap{}
	for _, p := range ps {
		parts := strings.Split(p.Name, ".")
		if len(parts) == 2 && parts[1] == "active" {
			active = p.Value == "1"
			continue
		}
		if len(parts) != 3 {
			continue
		}
		nm := byName[parts[1]]
		if nm == nil {
			nm = &nodemapv1.Nodemap{Name: parts[1]}
			byName[parts[1]] = nm
		}
		switch prop := parts[2]; prop {
		case "id":
			id, err := strconv.ParseUint(p.Value, 10, 32)
			if err != nil {
				return false, nil, fmt.Errorf("nodemap %s: bad id '%s'", nm.Name, p.Value)
			}
			nm.Id = uint32(id)
		case "ranges":
			nm.Ranges = parseRanges(p.Value)
		default:
			if m, ok := paramToProperty[prop]; ok {
				prop = m
			}
			if _, ok := order[prop]; ok {
				nm.Properties = append(nm.Properties, &nodemapv1.Property{Name: prop, Value: p.Value})
			}
		}
	}
	out := make([]*nodemapv1.Nodemap, 0, len(byName))
	for _, nm := range byName {
		slices.SortFunc(nm.Properties, func(a, b *nodemapv1.Property) int { return cmp.Compare(order[a.Name], order[b.Name]) })
		out = append(out, nm)
	}
	slices.SortFunc(out, func(a, b *nodemapv1.Nodemap) int { return cmp.Compare(a.Id, b.Id) })
	return active, out, nil
}

// parseRanges reads the ranges parameter,
// "[\n { id: 1, start_nid: A, end_nid: B },\n ...\n]", in id order.
func parseRanges(v string) []*nodemapv1.NidRange {
	var out []*nodemapv1.NidRange
	for _, line := range strings.Split(v, "\n") {
		line = strings.Trim(strings.TrimSpace(line), "{},")
		if line == "" || line == "[" || line == "]" || line == "[]" {
			continue
		}
		r := &nodemapv1.NidRange{}
		for _, f := range strings.Split(line, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(f), ":")
			if !ok {
				continue
			}
			val = strings.TrimSpace(val)
			switch strings.TrimSpace(k) {
			case "id":
				id, _ := strconv.ParseUint(val, 10, 32)
				r.Id = uint32(id)
			case "start_nid":
				r.StartNid = val
			case "end_nid":
				r.EndNid = val
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *nodemapv1.NidRange) int { return cmp.Compare(a.Id, b.Id) })
	return out
}
