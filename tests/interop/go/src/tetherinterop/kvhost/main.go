// kvhost is a go-plugin host for the KV plugin (go-plugin's examples/grpc host, gRPC only):
//
//	kvhost put KEY VALUE
//	kvhost get KEY        (prints the value)
//
// Env: KV_PLUGIN (plugin command, run with sh -c), KV_AUTOMTLS=1, KV_LOG_LEVEL (default debug).
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
		fmt.Fprintln(os.Stderr, "usage: kvhost get KEY | kvhost put KEY VALUE")
		os.Exit(2)
	}
	cmd, err := common.PluginCmdEnv("KV_PLUGIN")
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}

	os.Exit(common.RunHost(&plugin.ClientConfig{
		HandshakeConfig:  common.Handshake,
		Plugins:          plugin.PluginSet{"kv_grpc": &kvshared.GRPCPlugin{}},
		Cmd:              exec.Command("sh", "-c", cmd),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         os.Getenv("KV_AUTOMTLS") == "1",
		Logger:           common.HostLogger("kvhost", "KV_LOG_LEVEL"),
	}, func(_ *plugin.Client, rpc plugin.ClientProtocol) error {
		raw, err := rpc.Dispense("kv_grpc")
		if err != nil {
			return err
		}
		return runKV(raw.(kvshared.KV), args)
	}))
}

func runKV(kv kvshared.KV, args []string) error {
	if args[0] == "put" {
		return kv.Put(args[1], []byte(args[2]))
	}
	value, err := kv.Get(args[1])
	if err != nil {
		return err
	}
	fmt.Println(string(value))
	return nil
}
