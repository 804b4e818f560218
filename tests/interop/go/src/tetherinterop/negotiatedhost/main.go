// negotiatedhost is go-plugin's examples/negotiated host: it offers KV as protocol
// version 2 over net/rpc and version 3 over gRPC, and the plugin picks the version.
//
//	negotiatedhost put KEY VALUE
//	negotiatedhost get KEY
//
// Env: KV_PLUGIN (plugin command, run with sh -c), KV_PROTO=netrpc|grpc to offer only
// version 2 or 3 (default both), KV_LOG_LEVEL (default debug). Prints
// NEGOTIATED_VERSION=<n> and NEGOTIATED_PROTOCOL=<p> to stderr.
package main

import (
	"fmt"
	"os"
	"os/exec"

	plugin "github.com/hashicorp/go-plugin"

	"tetherinterop/common"
	"tetherinterop/kvshared"
)

func main() {
	args := os.Args[1:]
	if !(len(args) == 2 && args[0] == "get") && !(len(args) == 3 && args[0] == "put") {
		fmt.Fprintln(os.Stderr, "usage: negotiatedhost get KEY | negotiatedhost put KEY VALUE")
		os.Exit(2)
	}
	cmd, err := common.PluginCmdEnv("KV_PLUGIN")
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}

	versions := map[int]plugin.PluginSet{}
	proto := os.Getenv("KV_PROTO")
	if proto == "" || proto == "netrpc" {
		versions[2] = plugin.PluginSet{"kv": &kvshared.NetRPCPlugin{}}
	}
	if proto == "" || proto == "grpc" {
		versions[3] = plugin.PluginSet{"kv": &kvshared.GRPCPlugin{}}
	}
	if len(versions) == 0 {
		fmt.Fprintln(os.Stderr, "Error: KV_PROTO must be netrpc, grpc or empty")
		os.Exit(2)
	}

	os.Exit(common.RunHost(&plugin.ClientConfig{
		HandshakeConfig:  common.Handshake,
		VersionedPlugins: versions,
		Cmd:              exec.Command("sh", "-c", cmd),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC, plugin.ProtocolGRPC},
		Logger:           common.HostLogger("negotiatedhost", "KV_LOG_LEVEL"),
	}, func(client *plugin.Client, rpc plugin.ClientProtocol) error {
		fmt.Fprintf(os.Stderr, "NEGOTIATED_VERSION=%d\n", client.NegotiatedVersion())
		fmt.Fprintf(os.Stderr, "NEGOTIATED_PROTOCOL=%s\n", client.Protocol())
		raw, err := rpc.Dispense("kv")
		if err != nil {
			return err
		}
		kv := raw.(kvshared.KV)
		if args[0] == "put" {
			return kv.Put(args[1], []byte(args[2]))
		}
		value, err := kv.Get(args[1])
		if err != nil {
			return err
		}
		fmt.Println(string(value))
		return nil
	}))
}
