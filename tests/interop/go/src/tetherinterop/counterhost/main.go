// counterhost is go-plugin's examples/bidirectional host: it serves AddHelper.Sum through
// the GRPCBroker for each Put, and the plugin calls it back to add the value.
//
//	counterhost put KEY VALUE   (adds VALUE to the counter)
//	counterhost get KEY         (prints the counter)
//
// Env: COUNTER_PLUGIN (plugin command, run with sh -c), COUNTER_AUTOMTLS=1 (the broker
// dial-back is known to fail under AutoMTLS on go-plugin <= 1.4.3), COUNTER_LOG_LEVEL.
// Prints SUM_CALLS=<n> to stderr: how often the plugin called back.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"tetherinterop/common"
	"tetherinterop/countershared"
)

type addHelper struct {
	log   hclog.Logger
	calls int64
}

func (a *addHelper) Sum(x, y int64) (int64, error) {
	atomic.AddInt64(&a.calls, 1)
	a.log.Debug("sum called back", "a", x, "b", y)
	return x + y, nil
}

func main() {
	args := os.Args[1:]
	if !(len(args) == 2 && args[0] == "get") && !(len(args) == 3 && args[0] == "put") {
		fmt.Fprintln(os.Stderr, "usage: counterhost get KEY | counterhost put KEY VALUE")
		os.Exit(2)
	}
	var value int64
	if args[0] == "put" {
		var err error
		if value, err = strconv.ParseInt(args[2], 10, 64); err != nil {
			fmt.Fprintln(os.Stderr, "Error: VALUE must be an int64:", err)
			os.Exit(2)
		}
	}
	cmd, err := common.PluginCmdEnv("COUNTER_PLUGIN")
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}

	logger := common.HostLogger("counterhost", "COUNTER_LOG_LEVEL")
	helper := &addHelper{log: logger}
	code := common.RunHost(&plugin.ClientConfig{
		HandshakeConfig:  common.Handshake,
		Plugins:          plugin.PluginSet{"counter": &countershared.GRPCPlugin{}},
		Cmd:              exec.Command("sh", "-c", cmd),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         os.Getenv("COUNTER_AUTOMTLS") == "1",
		Logger:           logger,
	}, func(_ *plugin.Client, rpc plugin.ClientProtocol) error {
		raw, err := rpc.Dispense("counter")
		if err != nil {
			return err
		}
		counter := raw.(countershared.Counter)
		if args[0] == "put" {
			return counter.Put(args[1], value, helper)
		}
		n, err := counter.Get(args[1])
		if err != nil {
			return err
		}
		fmt.Println(n)
		return nil
	})
	fmt.Fprintf(os.Stderr, "SUM_CALLS=%d\n", atomic.LoadInt64(&helper.calls))
	os.Exit(code)
}
