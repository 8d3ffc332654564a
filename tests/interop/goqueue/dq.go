package main

// go-queue's dq (beanstalkd delay queue), for tests/interop/test_goqueue_dq.py.
//
//	goqueue dq-push    -beanstalks 127.0.0.1:11300,127.0.0.1:11301 -tube t -body b -count 3 -delay 1500ms [-at]
//	goqueue dq-revoke  -beanstalks ... -tube t -id <the id a producer returned>
//	goqueue dq-consume -beanstalks ... -tube t -redis 127.0.0.1:6379 -count 3
//
// dq-push schedules bodies "<body>#<i>", i 0..count-1, with dq.Producer's Delay
// (or At, time.Now() plus -delay) and prints one line {"id", "body", "called_ns",
// "returned_ns"} per job: the wall clock around the call, which brackets the due
// time go-queue writes into the job. dq-revoke calls Producer.Revoke and prints
// {"revoked": id}. dq-consume runs dq.NewConsumer(conf).Consume and prints
// {"body", "at_ns"} per body it handles; once it handled -count bodies and no
// node holds a job of the tube any more (ready, delayed or reserved), it waits
// -settle for a last copy to show up, and exits 0.

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	"github.com/zeromicro/go-queue/dq"
	"github.com/zeromicro/go-zero/core/stores/redis"
)

type dqFlags struct {
	set        *flag.FlagSet
	beanstalks *string
	tube       *string
	timeout    *time.Duration
}

func newDqFlags(name string) dqFlags {
	set := flag.NewFlagSet(name, flag.ExitOnError)
	return dqFlags{
		set:        set,
		beanstalks: set.String("beanstalks", "", "comma-separated beanstalkd host:port list"),
		tube:       set.String("tube", "", "the tube of every node"),
		timeout:    set.Duration("timeout", time.Minute, "give up after this long"),
	}
}

func (f dqFlags) parse(args []string) []dq.Beanstalk {
	_ = f.set.Parse(args)
	if *f.beanstalks == "" || *f.tube == "" {
		fail("%s: -beanstalks and -tube are required", f.set.Name())
	}
	var nodes []dq.Beanstalk
	for _, endpoint := range strings.Split(*f.beanstalks, ",") {
		nodes = append(nodes, dq.Beanstalk{Endpoint: endpoint, Tube: *f.tube})
	}
	return nodes
}

type pushed struct {
	ID         string `json:"id"`
	Body       string `json:"body"`
	CalledNs   int64  `json:"called_ns"`
	ReturnedNs int64  `json:"returned_ns"`
}

func dqPush(args []string) {
	flags := newDqFlags("dq-push")
	body := flags.set.String("body", "job", "bodies are <body>#<i>")
	count := flags.set.Int("count", 1, "how many jobs")
	delay := flags.set.Duration("delay", time.Second, "how far ahead each job is due")
	at := flags.set.Bool("at", false, "schedule with At(time.Now()+delay) rather than Delay(delay)")
	nodes := flags.parse(args)
	exitAfter(*flags.timeout, func() string { return "dq-push did not finish" })

	producer := dq.NewProducer(nodes)
	for i := 0; i < *count; i++ {
		job := fmt.Sprintf("%s#%d", *body, i)
		called := time.Now()
		var id string
		var err error
		if *at {
			id, err = producer.At([]byte(job), called.Add(*delay))
		} else {
			id, err = producer.Delay([]byte(job), *delay)
		}
		returned := time.Now()
		if err != nil {
			fail("dq-push: %s: %v", job, err)
		}
		printJSON(pushed{ID: id, Body: job, CalledNs: called.UnixNano(), ReturnedNs: returned.UnixNano()})
	}
	if err := producer.Close(); err != nil {
		fail("dq-push: close: %v", err)
	}
}

func dqRevoke(args []string) {
	flags := newDqFlags("dq-revoke")
	id := flags.set.String("id", "", "the id Delay or At returned")
	nodes := flags.parse(args)
	exitAfter(*flags.timeout, func() string { return "dq-revoke did not finish" })

	producer := dq.NewProducer(nodes)
	if err := producer.Revoke(*id); err != nil {
		fail("dq-revoke: %v", err)
	}
	_ = producer.Close()
	printJSON(map[string]string{"revoked": *id})
}

type handled struct {
	Body string `json:"body"`
	AtNs int64  `json:"at_ns"`
}

func dqConsume(args []string) {
	flags := newDqFlags("dq-consume")
	redisHost := flags.set.String("redis", "", "host:port of the Redis that de-duplicates")
	count := flags.set.Int64("count", 1, "exit once this many bodies were handled (and the tube is empty)")
	settle := flags.set.Duration("settle", 300*time.Millisecond,
		"how long to wait for a duplicate once every node's tube is empty")
	nodes := flags.parse(args)
	if *redisHost == "" {
		fail("dq-consume: -redis is required")
	}
	var done atomic.Int64
	exitAfter(*flags.timeout, func() string {
		return fmt.Sprintf("dq-consume handled %d of %d bodies", done.Load(), *count)
	})

	consumer := dq.NewConsumer(dq.DqConf{
		Beanstalks: nodes,
		Redis:      redis.RedisConf{Host: *redisHost, Type: redis.NodeType},
	})
	var out sync.Mutex
	go consumer.Consume(func(body []byte) {
		line := handled{Body: string(body), AtNs: time.Now().UnixNano()}
		out.Lock()
		printJSON(line)
		out.Unlock()
		done.Add(1)
	})

	for done.Load() < *count || !tubesEmpty(nodes) {
		time.Sleep(50 * time.Millisecond)
	}
	// go-queue deletes a copy before it tries the Redis lock: a copy taken from the
	// tube a moment ago may still be on its way to the handler.
	time.Sleep(*settle)
	out.Lock() // no line half written
	os.Exit(0)
}

// tubesEmpty says whether no node holds a ready, delayed or reserved job of its tube.
func tubesEmpty(nodes []dq.Beanstalk) bool {
	for _, node := range nodes {
		conn, err := beanstalk.Dial("tcp", node.Endpoint)
		if err != nil {
			fmt.Fprintf(os.Stderr, "goqueue: dq-consume: %s: %v\n", node.Endpoint, err)
			return false
		}
		stats, err := beanstalk.NewTube(conn, node.Tube).Stats()
		_ = conn.Close()
		if errors.Is(err, beanstalk.ErrNotFound) {
			continue // no job and no client left: beanstalkd dropped the tube
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goqueue: dq-consume: %s: %v\n", node.Endpoint, err)
			return false
		}
		for _, state := range []string{"current-jobs-ready", "current-jobs-delayed", "current-jobs-reserved"} {
			if stats[state] != "0" {
				return false
			}
		}
	}
	return true
}
