package main

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"
)

// TestFaultsFlags: the faults mode has defaults of its own (two processes per role,
// every class killed, a failing sink, the schedule ÷10,000, provider retries), hold
// keeps a quiet sink, and a class that does not exist is a usage error.
func TestFaultsFlags(t *testing.T) {
	o, err := parseFlags("faults", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.procsRaw != "ingest=2,deliver=2,schedule=2" || !slices.Equal(o.kill, faultClasses) || o.retryScale != 10000 ||
		o.provRetries != 5 || o.deliveryTO != time.Second || o.plan.Total() != 30000 || !o.faulty() {
		t.Errorf("faults defaults: %+v", o)
	}
	p := o.sinkPolicy()
	if p.Fail != 50000 || p.TooMany != 20000 || p.Hang != 10000 || p.Gone != 5000 || p.Dead != 2000 || !p.CheckBody {
		t.Errorf("faults sink policy: %+v", p)
	}
	h, err := parseFlags("hold", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if h.faulty() || len(h.kill) != 0 || h.provRetries != 0 || h.deliveryTO != 10*time.Second {
		t.Errorf("hold defaults: %+v", h)
	}
	for _, args := range [][]string{{"--kill", "ingest,web"}, {"--sink-500", "0.4", "--sink-429", "0.2"}, {"--kill-every", "10ms"}} {
		if _, err := parseFlags("faults", args, io.Discard); !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	o, err = parseFlags("faults", []string{"--kill", " nats , redis"}, io.Discard)
	if err != nil || !slices.Equal(o.kill, []string{"nats", "redis"}) {
		t.Errorf("--kill nats,redis: %v %v", o.kill, err)
	}
}
