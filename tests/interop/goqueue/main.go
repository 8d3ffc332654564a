// Command goqueue runs go-queue's own kq.Pusher and kq queue, so zeroqueue's
// interop tests (tests/interop/test_goqueue.py) can check that Go and Python
// services agree on partitions, order and trace context on one Kafka topic; and
// go-queue's dq producer and consumer (dq.go), for tests/interop/test_goqueue_dq.py.
//
//	goqueue push    -brokers 127.0.0.1:9092 -topic t -keys 50 -per-key 20 [-traceparent 00-...-01]
//	goqueue consume -brokers 127.0.0.1:9092 -topic t -group g -count 1000
//
// push sends "key-<i>" keys with values "key-<i>#<seq>", seq 0..per-key-1, one
// round of all keys per seq, and prints {"pushed": N}. consume prints one line
// {"key", "value", "trace_id", "span_id"} per message handled and exits 0 once
// it has handled -count messages. Both print errors on stderr and exit non-zero
// on failure, or after -timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/zeromicro/go-queue/kq"
	"github.com/zeromicro/go-zero/core/logx"
	"github.com/zeromicro/go-zero/core/service"
	ztrace "github.com/zeromicro/go-zero/core/trace"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// quietLog keeps go-zero's logx to errors only. Its console writer prints info
// and stat lines on stdout, which must carry nothing but our JSON lines.
var quietLog = logx.LogConf{Mode: "console", Encoding: "plain", Level: "error", Stat: false}

// errorLog is logx's writer: everything on stderr, counting errors, because
// go-queue's Pusher only logs a failed write (it never returns it).
type errorLog struct {
	logx.Writer
	errors atomic.Int64
}

func (w *errorLog) Error(v any, fields ...logx.LogField) {
	w.errors.Add(1)
	w.Writer.Error(v, fields...)
}

func (w *errorLog) Severe(v any) {
	w.errors.Add(1)
	w.Writer.Severe(v)
}

var logs = &errorLog{Writer: logx.NewWriter(os.Stderr)}

func main() {
	if len(os.Args) < 2 {
		fail("usage: goqueue push|consume|dq-push|dq-revoke|dq-consume [flags]")
	}
	// As a go-zero service does (go-zero's trace package also sets it in init).
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
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
	case "dq-push":
		dqPush(os.Args[2:])
	case "dq-revoke":
		dqRevoke(os.Args[2:])
	case "dq-consume":
		dqConsume(os.Args[2:])
	default:
		fail("unknown subcommand %q: want push, consume, dq-push, dq-revoke or dq-consume", os.Args[1])
	}
}

func push(args []string) {
	flags := flag.NewFlagSet("push", flag.ExitOnError)
	brokers := flags.String("brokers", "127.0.0.1:9092", "comma-separated host:port list")
	topic := flags.String("topic", "", "topic to push to")
	keys := flags.Int("keys", 10, "number of keys, key-0 .. key-<keys-1>")
	perKey := flags.Int("per-key", 1, "messages per key, with sequence numbers 0 .. per-key-1")
	traceparent := flags.String("traceparent", "", "W3C traceparent of the caller's span (optional)")
	timeout := flags.Duration("timeout", time.Minute, "give up after this long")
	_ = flags.Parse(args)
	if *topic == "" {
		fail("push: -topic is required")
	}
	exitAfter(*timeout, func() string { return "push did not finish" })

	ctx := context.Background()
	if *traceparent != "" {
		// Extract puts the remote span context the header describes into ctx, as an
		// incoming request would; PushWithKey then injects it into every message.
		ctx = propagation.TraceContext{}.Extract(ctx,
			propagation.MapCarrier{"traceparent": *traceparent})
		if !trace.SpanContextFromContext(ctx).IsValid() {
			fail("push: invalid -traceparent %q", *traceparent)
		}
	}

	pusher := kq.NewPusher(strings.Split(*brokers, ","), *topic,
		kq.WithBalancer(&kafka.Hash{}),
		kq.WithFlushInterval(10*time.Millisecond))
	pushed := 0
	for seq := 0; seq < *perKey; seq++ {
		for i := 0; i < *keys; i++ {
			key := fmt.Sprintf("key-%d", i)
			if err := pusher.PushWithKey(ctx, key, fmt.Sprintf("%s#%d", key, seq)); err != nil {
				fail("push: %v", err)
			}
			pushed++
		}
	}
	// Close flushes the chunk executor, then closes the kafka.Writer. go-queue
	// builds that writer with RequiredAcks zero (acks=0): a batch Kafka refuses
	// (say NOT_LEADER_OR_FOLLOWER on a topic created a moment ago) is dropped
	// without an error on this side, so the tests check what arrived.
	if err := pusher.Close(); err != nil {
		fail("push: close: %v", err)
	}
	if n := logs.errors.Load(); n > 0 {
		fail("push: go-queue logged %d errors (see above)", n)
	}
	printJSON(map[string]int{"pushed": pushed})
}

type record struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
	// When the handler ran, in Unix seconds.
	At float64 `json:"at"`
}

func consume(args []string) {
	flags := flag.NewFlagSet("consume", flag.ExitOnError)
	brokers := flags.String("brokers", "127.0.0.1:9092", "comma-separated host:port list")
	topic := flags.String("topic", "", "topic to consume")
	group := flags.String("group", "", "consumer group")
	count := flags.Int64("count", 1, "exit 0 after handling this many messages")
	consumers := flags.Int("consumers", 8, "KqConf.Consumers: fetching goroutines")
	processors := flags.Int("processors", 8, "KqConf.Processors: handling goroutines")
	timeout := flags.Duration("timeout", time.Minute, "give up after this long")
	_ = flags.Parse(args)
	if *topic == "" || *group == "" {
		fail("consume: -topic and -group are required")
	}
	var handled atomic.Int64
	exitAfter(*timeout, func() string {
		return fmt.Sprintf("consume handled %d of %d messages", handled.Load(), *count)
	})

	conf := kq.KqConf{
		ServiceConf: service.ServiceConf{
			Name: "goqueue-interop",
			Log:  quietLog,
			// test mode: no load shedding, no stat reporter.
			Mode: service.TestMode,
			// No tracer provider and no exporter to reach; propagation still works.
			Telemetry: ztrace.Config{Disabled: true},
		},
		Brokers:    strings.Split(*brokers, ","),
		Group:      *group,
		Topic:      *topic,
		Offset:     "first",
		Conns:      1,
		Consumers:  *consumers,
		Processors: *processors,
		// go-zero's default is 10 KiB, which makes a small topic wait MaxWait per fetch.
		MinBytes:    1,
		MaxBytes:    10 << 20,
		ForceCommit: true,
	}

	var out sync.Mutex
	done := make(chan struct{})
	var once sync.Once
	handler := kq.WithHandle(func(ctx context.Context, key, value string) error {
		// go-queue extracted the message's trace headers into ctx.
		line := record{Key: key, Value: value, At: float64(time.Now().UnixNano()) / 1e9}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			line.TraceID, line.SpanID = sc.TraceID().String(), sc.SpanID().String()
		}
		out.Lock()
		printJSON(line)
		out.Unlock()
		if handled.Add(1) >= *count {
			once.Do(func() { close(done) })
		}
		return nil
	})

	q := kq.MustNewQueue(conf, handler)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		q.Start()
	}()
	<-done
	// Stop closes the kafka.Reader (leaving the group); Start then returns once
	// the fetching and handling goroutines are done. -timeout still bounds it.
	q.Stop()
	<-stopped
}

// exitAfter ends the process with status 2 once timeout has passed.
func exitAfter(timeout time.Duration, what func() string) {
	time.AfterFunc(timeout, func() {
		fmt.Fprintf(os.Stderr, "goqueue: timeout after %s: %s\n", timeout, what())
		os.Exit(2)
	})
}

func printJSON(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fail("stdout: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "goqueue: "+format+"\n", args...)
	os.Exit(1)
}
