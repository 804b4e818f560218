// Package common holds what every interop host and plugin shares: the handshake, logger
// set-up and a host runner that guarantees Client.Kill runs before the process exits.
package common

import (
	"fmt"
	"os"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

// Handshake is the one used by go-plugin's examples and by tether's interop tests.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// HostLogger logs to stderr at the level named in env var levelEnv (default "debug"), so
// tests can see plugin log lines that the host relays.
func HostLogger(name, levelEnv string) hclog.Logger {
	level := os.Getenv(levelEnv)
	if level == "" {
		level = "debug"
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Output: os.Stderr,
		Level:  hclog.LevelFromString(level),
	})
}

// PluginLogger logs hclog JSON to stderr, which the host parses and relays. It must be
// created before plugin.Serve, which later swaps os.Stderr for a pipe.
func PluginLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Output:     os.Stderr,
		Level:      hclog.Debug,
		JSONFormat: true,
	})
}

// RunHost starts the plugin described by cfg, pings it, hands it to use, and always kills it
// before returning; main should os.Exit with the result only afterwards, since os.Exit
// skips deferred calls (the upstream examples leak their plugin that way). It prints
// KILL_DURATION_MS=<n> to stderr so tests can tell a graceful Shutdown from the 2 s
// forced-kill fallback.
func RunHost(cfg *plugin.ClientConfig, use func(*plugin.Client, plugin.ClientProtocol) error) int {
	client := plugin.NewClient(cfg)
	defer func() {
		start := time.Now()
		client.Kill()
		fmt.Fprintf(os.Stderr, "KILL_DURATION_MS=%d\n", time.Since(start).Milliseconds())
	}()

	err := func() error {
		rpcClient, err := client.Client()
		if err != nil {
			return err
		}
		if err := rpcClient.Ping(); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return use(client, rpcClient)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

// PluginCmdEnv returns the plugin command for exec.Command("sh", "-c", ...), failing
// loudly when the variable is unset instead of running an empty command.
func PluginCmdEnv(name string) (string, error) {
	cmd := os.Getenv(name)
	if cmd == "" {
		return "", fmt.Errorf("%s is not set", name)
	}
	return cmd, nil
}
