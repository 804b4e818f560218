// Package countershared is the bidirectional example of go-plugin: the host serves
// AddHelper through the GRPCBroker and passes its broker id in PutRequest.add_server;
// the plugin dials that id back to compute the new value.
package countershared

import (
	"context"
	"sync"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"tetherinterop/gen/counter/proto"
)

// AddHelper is implemented by the host and called back by the plugin.
type AddHelper interface {
	Sum(a, b int64) (int64, error)
}

// Counter is what hosts use and plugins implement.
type Counter interface {
	Put(key string, value int64, a AddHelper) error
	Get(key string) (int64, error)
}

// GRPCPlugin serves/dispenses Counter over gRPC.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Counter
}

func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterCounterServer(s, &grpcServer{impl: p.Impl, broker: broker})
	return nil
}

func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &grpcClient{broker: broker, client: proto.NewCounterClient(c)}, nil
}

type grpcClient struct {
	broker *plugin.GRPCBroker
	client proto.CounterClient
}

func (c *grpcClient) Put(key string, value int64, a AddHelper) error {
	// AcceptAndServe builds the server itself (it supplies the TLS options), so capture
	// it to stop it afterwards. Upstream's example reads the variable unguarded and would
	// panic if the plugin failed before the server existed.
	var mu sync.Mutex
	var server *grpc.Server
	newServer := func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		proto.RegisterAddHelperServer(s, &addHelperServer{impl: a})
		mu.Lock()
		server = s
		mu.Unlock()
		return s
	}

	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, newServer)

	_, err := c.client.Put(context.Background(), &proto.PutRequest{AddServer: id, Key: key, Value: value})

	mu.Lock()
	if server != nil {
		server.Stop()
	}
	mu.Unlock()
	return err
}

func (c *grpcClient) Get(key string) (int64, error) {
	resp, err := c.client.Get(context.Background(), &proto.GetRequest{Key: key})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

type grpcServer struct {
	impl   Counter
	broker *plugin.GRPCBroker
}

func (s *grpcServer) Put(_ context.Context, req *proto.PutRequest) (*proto.Empty, error) {
	conn, err := s.broker.Dial(req.AddServer)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return &proto.Empty{}, s.impl.Put(req.Key, req.Value, &addHelperClient{client: proto.NewAddHelperClient(conn)})
}

func (s *grpcServer) Get(_ context.Context, req *proto.GetRequest) (*proto.GetResponse, error) {
	v, err := s.impl.Get(req.Key)
	return &proto.GetResponse{Value: v}, err
}

type addHelperClient struct{ client proto.AddHelperClient }

func (c *addHelperClient) Sum(a, b int64) (int64, error) {
	resp, err := c.client.Sum(context.Background(), &proto.SumRequest{A: a, B: b})
	if err != nil {
		return 0, err
	}
	return resp.R, nil
}

type addHelperServer struct{ impl AddHelper }

func (s *addHelperServer) Sum(_ context.Context, req *proto.SumRequest) (*proto.SumResponse, error) {
	r, err := s.impl.Sum(req.A, req.B)
	if err != nil {
		return nil, err
	}
	return &proto.SumResponse{R: r}, nil
}
