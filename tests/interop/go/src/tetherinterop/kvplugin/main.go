// kvplugin is a Go KV plugin like go-plugin's examples/grpc plugin-go-grpc: it stores each
// value verbatim in the file kv_<key> in its working directory (upstream appends a marker
// text; exact values keep the tests' assertions simple). It logs hclog JSON at debug
// level, one line per Put/Get, so hosts can check log relay.
//
// Offered protocol versions (the host picks via PLUGIN_PROTOCOL_VERSIONS):
//
//	1: "kv_grpc" over gRPC (handshake ProtocolVersion; kvhost)
//	2: "kv" over net/rpc, 3: "kv" over gRPC (negotiatedhost)
package main

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"tetherinterop/common"
	"tetherinterop/kvshared"
)

type fileKV struct{ log hclog.Logger }

func (k *fileKV) Put(key string, value []byte) error {
	k.log.Debug("kv put", "key", key, "bytes", len(value))
	return os.WriteFile("kv_"+key, value, 0o644)
}

func (k *fileKV) Get(key string) ([]byte, error) {
	k.log.Debug("kv get", "key", key)
	return os.ReadFile("kv_" + key)
}

func main() {
	logger := common.PluginLogger("kvplugin")
	impl := &fileKV{log: logger}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: common.Handshake,
		Plugins:         plugin.PluginSet{"kv_grpc": &kvshared.GRPCPlugin{Impl: impl}},
		VersionedPlugins: map[int]plugin.PluginSet{
			2: {"kv": &kvshared.NetRPCPlugin{Impl: impl}},
			3: {"kv": &kvshared.GRPCPlugin{Impl: impl}},
		},
		// Non-nil enables gRPC for the sets whose plugins are plugin.GRPCPlugins.
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
