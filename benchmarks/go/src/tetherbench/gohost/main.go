// gohost times calls from a go-plugin host to the Go bench plugin and prints JSON:
//
//	gohost PLUGIN N PER_CALLER
//
// spawn_ms (NewClient to the first answered Add), rss_kib (the idle plugin), samples_us (N
// sequential Adds), tp16 (16 goroutines, PER_CALLER Adds each, calls/s), bulk_ms (median of
// 5 Total calls with 100,000 floats), blob_ms (one Length call carrying 64 MiB).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"tetherbench/benchshared"
	"tetherbench/gen/bench/proto"
)

func rssKiB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			v, _ := strconv.ParseFloat(strings.Fields(sc.Text())[1], 64)
			return v
		}
	}
	return -1
}

func run() (map[string]interface{}, error) {
	n, _ := strconv.Atoi(os.Args[2])
	perCaller, _ := strconv.Atoi(os.Args[3])
	ctx := context.Background()
	out := map[string]interface{}{}

	t0 := time.Now()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  benchshared.Handshake,
		Plugins:          plugin.PluginSet{"bench": &benchshared.GRPCPlugin{}},
		Cmd:              exec.Command(os.Args[1]),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense("bench")
	if err != nil {
		return nil, err
	}
	bench := raw.(proto.BenchClient)
	req := &proto.AddRequest{A: 1, B: 2}
	if _, err := bench.Add(ctx, req); err != nil {
		return nil, err
	}
	out["spawn_ms"] = float64(time.Since(t0).Nanoseconds()) / 1e6
	time.Sleep(200 * time.Millisecond)
	out["rss_kib"] = rssKiB(client.ReattachConfig().Pid)

	for i := 0; i < 500; i++ {
		bench.Add(ctx, req)
	}
	samples := make([]float64, n)
	for i := range samples {
		s := time.Now()
		if _, err := bench.Add(ctx, req); err != nil {
			return nil, err
		}
		samples[i] = float64(time.Since(s).Nanoseconds()) / 1e3
	}
	out["samples_us"] = samples

	var wg sync.WaitGroup
	s := time.Now()
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perCaller; i++ {
				bench.Add(ctx, req)
			}
		}()
	}
	wg.Wait()
	out["tp16"] = float64(16*perCaller) / time.Since(s).Seconds()

	values := make([]float64, 100000)
	for i := range values {
		values[i] = 1
	}
	bulk := make([]float64, 5)
	for i := range bulk {
		s := time.Now()
		if _, err := bench.Total(ctx, &proto.Floats{Values: values}); err != nil {
			return nil, err
		}
		bulk[i] = float64(time.Since(s).Nanoseconds()) / 1e6
	}
	sort.Float64s(bulk)
	out["bulk_ms"] = bulk[2]

	data := make([]byte, 64<<20)
	s = time.Now()
	if _, err := bench.Length(ctx, &proto.Blob{Data: data}); err != nil {
		return nil, err
	}
	out["blob_ms"] = float64(time.Since(s).Nanoseconds()) / 1e6
	return out, nil
}

func main() {
	out, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
