// Package benchshared is the bench service as a go-plugin gRPC plugin (bench.proto).
package benchshared

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"tetherbench/gen/bench/proto"
)

// Handshake is the one the Go benchmark host and plugin share.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "TETHER_BENCH_GO",
	MagicCookieValue: "bench",
}

// GRPCPlugin serves the bench service (plugin side) and hands out its client (host side).
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterBenchServer(s, &server{})
	return nil
}

func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return proto.NewBenchClient(c), nil
}

type server struct{}

func (server) Add(_ context.Context, r *proto.AddRequest) (*proto.Sum, error) {
	return &proto.Sum{Value: r.A + r.B}, nil
}

func (server) Total(_ context.Context, r *proto.Floats) (*proto.Sum, error) {
	s := 0.0
	for _, v := range r.Values {
		s += v
	}
	return &proto.Sum{Value: s}, nil
}

func (server) Length(_ context.Context, r *proto.Blob) (*proto.Size, error) {
	return &proto.Size{Value: uint64(len(r.Data))}, nil
}
