package api

import (
	"context"

	"github.com/fidlog/fidlog/mdt"
	"github.com/fidlog/fidlog/nodemap"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// paramsService implements lustre.params.v1.ParamsService.
type paramsService struct {
	paramsv1.UnimplementedParamsServiceServer
	s *Server
}

func paramsToPB(ps []mdt.Param) []*paramsv1.Param {
	out := make([]*paramsv1.Param, len(ps))
	for i, p := range ps {
		out[i] = &paramsv1.Param{Name: p.Name, Value: p.Value}
	}
	return out
}

func (p *paramsService) GetParams(ctx context.Context, r *paramsv1.GetParamsRequest) (*paramsv1.GetParamsResponse, error) {
	if len(r.GetPatterns()) == 0 {
		return nil, argError("no parameter pattern given")
	}
	ps, err := p.s.m.GetParams(r.GetPatterns()...)
	if err != nil {
		return nil, err
	}
	return &paramsv1.GetParamsResponse{Params: paramsToPB(ps)}, nil
}

func (p *paramsService) SetParam(ctx context.Context, r *paramsv1.SetParamRequest) (*paramsv1.SetParamResponse, error) {
	if r.GetName() == "" {
		return nil, argError("no parameter name given")
	}
	if err := p.s.authorize(ctx, nodemap.RoleLocalAdmin, "set_param "+r.GetName()); err != nil {
		return nil, err
	}
	ps, err := p.s.m.SetParam(r.GetName(), r.GetValue())
	if err != nil {
		return nil, err
	}
	return &paramsv1.SetParamResponse{Params: paramsToPB(ps)}, nil
}
