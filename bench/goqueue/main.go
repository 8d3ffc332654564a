// Command goqueue measures go-queue itself for bench/peer.py, at go-queue's
// defaults: kq.NewPusher(brokers, topic) with no options, and kq.MustNewQueue
// with a KqConf loaded the way a go-zero service loads its config file, so
// every field left out takes go-queue's default (MinBytes 10240, Consumers 8,
// Processors 8, ForceCommit true, ...).
//
//	goqueue push    -brokers 127.0.0.1:9092 -topic t -count 200000 [-keys 1000 -size 100]
//	goqueue consume -brokers 127.0.0.1:9092 -topic t -group g -count 200000
//	goqueue latency -brokers 127.0.0.1:9092 -topic t -group g -count 3000
//
// push prints {"rate", "seconds"}: -count keyed messages of -size bytes, timed
// from the first Push until Close returns (Close flushes go-queue's chunk
// executor and the kafka.Writer). A one-message pusher runs first, untimed, so
// the topic's metadata is warm.
//
// consume prints {"rate", "seconds"}: the clock runs from the first handled
// message to the -count-th, so joining the group is not timed.
//
// latency reads values that start with the wall-clock time they were sent, in
// nanoseconds as 19 decimal digits; a value starting with "warm" makes it print
// {"ready": true} once (the sender then starts). After -count stamped messages
// it prints {"p50_ms", "p99_ms", "count"}.
//
// Errors go to stderr with a non-zero exit, also after -timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeromicro/go-queue/kq"
	"github.com/zeromicro/go-zero/core/conf"
	"github.com/zeromicro/go-zero/core/logx"
	"github.com/zeromicro/go-zero/core/queue"
)

// errorLog is logx's writer: everything on stderr, counting errors, because
// go-queue's Pusher only logs a failed write (Push never returns it).
type errorLog struct {
	logx.Writer
	errors atomic.Int64
	// fatal makes an error end the program: go-queue's queue logs a failed fetch
	// or join and tries again forever (kafka-go cannot join a group on Tansu,
	// for one), where a benchmark should report it at once.
	fatal atomic.Bool
}

func (w *errorLog) Error(v any, fields ...logx.LogField) {
	w.errors.Add(1)
	w.Writer.Error(v, fields...)
	if w.fatal.Load() {
		fail("go-queue logged an error: %v", v)
	}
}

func (w *errorLog) Severe(v any) {
	w.errors.Add(1)
	w.Writer.Severe(v)
}

var logs = &errorLog{Writer: logx.NewWriter(os.Stderr)}

// quietLog keeps logx to errors: its console writer would print stat lines on
// stdout, which must carry nothing but the JSON figures.
var quietLog = logx.LogConf{Mode: "console", Encoding: "plain", Level: "error", Stat: false}

func main() {
	if len(os.Args) < 2 {
		fail("usage: goqueue push|consume|latency [flags]")
	}
	// The first logx.SetUp wins; the one kq.MustNewQueue makes is then ignored.
	if err := logx.SetUp(quietLog); err != nil {
		fail("logx: %v", err)
	}
	logx.SetWriter(logs)
	switch os.Args[1] {
	case "push":
		push(os.Args[2:])
	case "consume":
		consume(os.Args[2:])
	case "latency":
		latency(os.Args[2:])
	default:
		fail("unknown subcommand %q: want push, consume or latency", os.Args[1])
	}
}

func push(args []string) {
	flags := flag.NewFlagSet("push", flag.ExitOnError)
	brokers := flags.String("brokers", "127.0.0.1:9092", "comma-separated host:port list")
	topic := flags.String("topic", "", "topic to push to")
	count := flags.Int("count", 1000, "messages to push")
	keyCount := flags.Int("keys", 1000, "distinct keys, user-0 .. user-<keys-1>")
	size := flags.Int("size", 100, "value size in bytes")
	timeout := flags.Duration("timeout", 5*time.Minute, "give up after this long")
	_ = flags.Parse(args)
	if *topic == "" {
		fail("push: -topic is required")
	}
	exitAfter(*timeout, func() string { return "push did not finish" })
	addrs := strings.Split(*brokers, ",")
	keys := make([]string, *keyCount)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	value := strings.Repeat("v", *size)
	ctx := context.Background()

	warm := kq.NewPusher(addrs, *topic)
	if err := warm.PushWithKey(ctx, keys[0], value); err != nil {
		fail("push: warm-up: %v", err)
	}
	if err := warm.Close(); err != nil {
		fail("push: warm-up close: %v", err)
	}

	started := time.Now()
	pusher := kq.NewPusher(addrs, *topic)
	for i := 0; i < *count; i++ {
		if err := pusher.PushWithKey(ctx, keys[i%len(keys)], value); err != nil {
			fail("push: %v", err)
		}
	}
	if err := pusher.Close(); err != nil {
		fail("push: close: %v", err)
	}
	seconds := time.Since(started).Seconds()
	if n := logs.errors.Load(); n > 0 {
		fail("push: go-queue logged %d errors (see above)", n)
	}
	printJSON(map[string]float64{"rate": float64(*count) / seconds, "seconds": seconds})
}

// newQueue builds kq.MustNewQueue from a config document, as a go-zero service
// does with conf.MustLoad: the fields left out take go-queue's defaults.
func newQueue(brokers, topic, group string, handle kq.ConsumeHandle) queue.MessageQueue {
	var quoted []string
	for _, b := range strings.Split(brokers, ",") {
		quoted = append(quoted, strconv.Quote(b))
	}
	document := fmt.Sprintf(`{
		"Name": "bench-goqueue",
		"Mode": "test",
		"Log": {"Mode": "console", "Encoding": "plain", "Level": "error", "Stat": false},
		"Telemetry": {"Disabled": true},
		"Brokers": [%s],
		"Topic": %q,
		"Group": %q,
		"Offset": "first"
	}`, strings.Join(quoted, ","), topic, group)
	logs.fatal.Store(true)
	var c kq.KqConf
	if err := conf.LoadFromJsonBytes([]byte(document), &c); err != nil {
		fail("config: %v", err)
	}
	return kq.MustNewQueue(c, kq.WithHandle(handle))
}

// runUntil starts q, waits for done, then stops q (bounded: leaving the group
// must not hold the figures back).
func runUntil(q queue.MessageQueue, done <-chan struct{}) {
	go q.Start()
	<-done
	// The figures are in: an error while leaving (go-queue commits on a connection
	// Stop is closing, "io: read/write on closed pipe") does not undo them.
	logs.fatal.Store(false)
	stopped := make(chan struct{})
	go func() {
		q.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
	}
}

func consume(args []string) {
	flags := flag.NewFlagSet("consume", flag.ExitOnError)
	brokers := flags.String("brokers", "127.0.0.1:9092", "comma-separated host:port list")
	topic := flags.String("topic", "", "topic to consume")
	group := flags.String("group", "", "consumer group")
	count := flags.Int64("count", 1, "handle this many messages, then print the rate")
	timeout := flags.Duration("timeout", 5*time.Minute, "give up after this long")
	_ = flags.Parse(args)
	if *topic == "" || *group == "" {
		fail("consume: -topic and -group are required")
	}
	var handled atomic.Int64
	exitAfter(*timeout, func() string {
		return fmt.Sprintf("consume handled %d of %d messages", handled.Load(), *count)
	})
	// Handlers run on Processors goroutines: the clock's ends are atomics.
	var first, last atomic.Int64
	done := make(chan struct{})
	q := newQueue(*brokers, *topic, *group, func(ctx context.Context, key, value string) error {
		n := handled.Add(1)
		if n == 1 {
			first.Store(time.Now().UnixNano())
		}
		if n == *count {
			last.Store(time.Now().UnixNano())
			close(done)
		}
		return nil
	})
	runUntil(q, done)
	seconds := float64(last.Load()-first.Load()) / 1e9
	printJSON(map[string]float64{"rate": float64(*count) / seconds, "seconds": seconds})
}

func latency(args []string) {
	flags := flag.NewFlagSet("latency", flag.ExitOnError)
	brokers := flags.String("brokers", "127.0.0.1:9092", "comma-separated host:port list")
	topic := flags.String("topic", "", "topic to consume")
	group := flags.String("group", "", "consumer group")
	count := flags.Int("count", 1, "stamped messages to wait for")
	timeout := flags.Duration("timeout", 5*time.Minute, "give up after this long")
	_ = flags.Parse(args)
	if *topic == "" || *group == "" {
		fail("latency: -topic and -group are required")
	}
	var mu sync.Mutex
	seconds := make([]float64, 0, *count)
	exitAfter(*timeout, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("latency saw %d of %d stamped messages", len(seconds), *count)
	})
	var ready sync.Once
	done := make(chan struct{})
	q := newQueue(*brokers, *topic, *group, func(ctx context.Context, key, value string) error {
		now := time.Now().UnixNano()
		if strings.HasPrefix(value, "warm") {
			ready.Do(func() { printJSON(map[string]bool{"ready": true}) })
			return nil
		}
		sent, err := strconv.ParseInt(value[:19], 10, 64)
		if err != nil {
			fail("latency: value without a stamp: %q", value[:19])
		}
		mu.Lock()
		defer mu.Unlock()
		seconds = append(seconds, float64(now-sent)/1e9)
		if len(seconds) == *count {
			close(done)
		}
		return nil
	})
	runUntil(q, done)
	mu.Lock()
	defer mu.Unlock()
	sort.Float64s(seconds)
	p99 := seconds[min(len(seconds)-1, len(seconds)*99/100)]
	p50 := seconds[len(seconds)/2]
	if len(seconds)%2 == 0 {
		p50 = (seconds[len(seconds)/2-1] + seconds[len(seconds)/2]) / 2
	}
	printJSON(map[string]float64{"p50_ms": p50 * 1000, "p99_ms": p99 * 1000, "count": float64(len(seconds))})
}

// exitAfter ends the process with status 2 once timeout has passed.
func exitAfter(timeout time.Duration, what func() string) {
	time.AfterFunc(timeout, func() {
		fmt.Fprintf(os.Stderr, "goqueue: timeout after %s: %s\n", timeout, what())
		os.Exit(2)
	})
}

var stdout sync.Mutex

func printJSON(v any) {
	stdout.Lock()
	defer stdout.Unlock()
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fail("stdout: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "goqueue: "+format+"\n", args...)
	os.Exit(1)
}
