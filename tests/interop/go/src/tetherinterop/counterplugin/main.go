// counterplugin is go-plugin's examples/bidirectional plugin: Put reads the counter from
// the file kv_<key> in its working directory (JSON {"Value": n}, like upstream), asks the
// host's AddHelper (dialled through the GRPCBroker) for the sum, and writes it back. Get of
// a missing key fails, as upstream.
package main

import (
	"encoding/json"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"tetherinterop/common"
	"tetherinterop/countershared"
)

type data struct {
	Value int64
}

type fileCounter struct{ log hclog.Logger }

func (c *fileCounter) Put(key string, value int64, a countershared.AddHelper) error {
	// A missing key counts from 0, like upstream.
	current, _ := c.Get(key)
	sum, err := a.Sum(current, value)
	if err != nil {
		return err
	}
	c.log.Debug("counter put", "key", key, "old", current, "new", sum)
	buf, err := json.Marshal(&data{Value: sum})
	if err != nil {
		return err
	}
	return os.WriteFile("kv_"+key, buf, 0o644)
}

func (c *fileCounter) Get(key string) (int64, error) {
	raw, err := os.ReadFile("kv_" + key)
	if err != nil {
		return 0, err
	}
	var d data
	if err := json.Unmarshal(raw, &d); err != nil {
		return 0, err
	}
	return d.Value, nil
}

func main() {
	logger := common.PluginLogger("counterplugin")
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: common.Handshake,
		Plugins: plugin.PluginSet{
			"counter": &countershared.GRPCPlugin{Impl: &fileCounter{log: logger}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
