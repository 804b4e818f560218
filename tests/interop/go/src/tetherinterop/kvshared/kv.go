// Package kvshared is the KV interface of go-plugin's examples/grpc, served over gRPC
// (kv.proto) or net/rpc.
package kvshared

import (
	"context"
	"net/rpc"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"tetherinterop/gen/kv/proto"
)

// KV is what hosts use and plugins implement.
type KV interface {
	Put(key string, value []byte) error
	Get(key string) ([]byte, error)
}

// GRPCPlugin serves/dispenses KV over gRPC. It embeds NetRPCUnsupportedPlugin only to
// satisfy plugin.Plugin; being a plugin.GRPCPlugin makes the plugin announce "grpc".
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl KV
}

func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterKVServer(s, &grpcServer{impl: p.Impl})
	return nil
}

func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &grpcClient{client: proto.NewKVClient(c)}, nil
}

type grpcClient struct{ client proto.KVClient }

func (c *grpcClient) Put(key string, value []byte) error {
	_, err := c.client.Put(context.Background(), &proto.PutRequest{Key: key, Value: value})
	return err
}

func (c *grpcClient) Get(key string) ([]byte, error) {
	resp, err := c.client.Get(context.Background(), &proto.GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

type grpcServer struct{ impl KV }

func (s *grpcServer) Put(_ context.Context, req *proto.PutRequest) (*proto.Empty, error) {
	return &proto.Empty{}, s.impl.Put(req.Key, req.Value)
}

func (s *grpcServer) Get(_ context.Context, req *proto.GetRequest) (*proto.GetResponse, error) {
	v, err := s.impl.Get(req.Key)
	return &proto.GetResponse{Value: v}, err
}

// NetRPCPlugin serves/dispenses KV over net/rpc; it deliberately is not a
// plugin.GRPCPlugin, so a version whose set holds it is announced as "netrpc".
type NetRPCPlugin struct {
	Impl KV
}

func (p *NetRPCPlugin) Server(*plugin.MuxBroker) (interface{}, error) {
	return &RPCServer{Impl: p.Impl}, nil
}

func (p *NetRPCPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (interface{}, error) {
	return &rpcClient{client: c}, nil
}

type rpcClient struct{ client *rpc.Client }

func (c *rpcClient) Put(key string, value []byte) error {
	return c.client.Call("Plugin.Put", map[string]interface{}{"key": key, "value": value}, new(interface{}))
}

func (c *rpcClient) Get(key string) ([]byte, error) {
	var resp []byte
	err := c.client.Call("Plugin.Get", key, &resp)
	return resp, err
}

// RPCServer is the net/rpc receiver; it must be exported for net/rpc to register it.
type RPCServer struct{ Impl KV }

func (s *RPCServer) Put(args map[string]interface{}, _ *interface{}) error {
	return s.Impl.Put(args["key"].(string), args["value"].([]byte))
}

func (s *RPCServer) Get(key string, resp *[]byte) error {
	v, err := s.Impl.Get(key)
	*resp = v
	return err
}
