// goplugin is the Go side of the go-plugin benchmark: the bench service over gRPC.
package main

import (
	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"tetherbench/benchshared"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: benchshared.Handshake,
		Plugins:         plugin.PluginSet{"bench": &benchshared.GRPCPlugin{}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(1<<30))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, JSONFormat: true}),
	})
}
