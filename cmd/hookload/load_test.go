package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunnerPoolPerTarget: each ingest process has its own workers, so one that
// stops answering holds up only its own requests; and no request counts from a
// scheduled start later than when it was queued.
func TestRunnerPoolPerTarget(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	var n atomic.Int64
	answer := func(w http.ResponseWriter, prefix string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"%s-%d","duplicate":false}`, prefix, n.Add(1))
	}
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		answer(w, "stuck")
	}))
	defer stuck.Close()
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, "fast") }))
	defer fast.Close()
	defer unblock() // before the servers close

	epoch := time.Now()
	addrs := []string{strings.TrimPrefix(stuck.URL, "http://"), strings.TrimPrefix(fast.URL, "http://")}
	r := NewRunner(context.Background(), epoch, testGenerator(t, "0a1b2c3d", 0.5), addrs, "m", "p", 2, 10*time.Second, 1000)
	plan := holdPlan(400, 250*time.Millisecond) // 100 requests, every other one to each
	rec := newRecorder(len(plan))
	r.Run(context.Background(), plan, time.Now(), rec)

	count := func() (fastOK, stuckOK int) {
		for _, res := range rec.step(0) {
			switch {
			case strings.HasPrefix(res.id, "fast-"):
				fastOK++
			case strings.HasPrefix(res.id, "stuck-"):
				stuckOK++
			}
		}
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fastOK, stuckOK := count()
		if stuckOK != 0 {
			t.Fatalf("%d answers from the stuck server", stuckOK)
		}
		if fastOK == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 50 answers from the fast server while the other was stuck: one pool for both?", fastOK)
		}
		time.Sleep(10 * time.Millisecond)
	}
	unblock()
	r.Wait()
	res := rec.step(0)
	if len(res) != 100 {
		t.Fatalf("%d results, want 100", len(res))
	}
	for _, x := range res {
		if !x.ok() || x.pace < 0 || x.lag < x.pace || x.lat < x.lag {
			t.Fatalf("result %+v: want 2xx and 0 ≤ pace ≤ lag ≤ lat", x)
		}
	}
}
