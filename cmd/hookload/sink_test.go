package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestSinkPolicy: the sink's answers follow the shares, are sticky (200 stays 200:
// later POSTs are duplicates; 410 stays 410), always-failing events fail every time,
// a hang lasts until the client gives up, and every POST is logged with its end.
func TestSinkPolicy(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 24))
	pol := SinkPolicy{Fail: perMillion(0.2), TooMany: perMillion(0.1), Hang: perMillion(0.05), Gone: perMillion(0.05), Dead: perMillion(0.05), CheckBody: true}
	epoch := time.Now()
	s, err := NewSink(epoch, []string{"sink-1"}, []string{secret}, pol, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wh, _ := standardwebhooks.NewWebhook(secret)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	post := func(id, bodyID string) int {
		body := []byte(fmt.Sprintf(`{"id":%q,"type":"payment.success"}`, bodyID))
		now := time.Now()
		sig, _ := wh.Sign(id, now, body)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL()+"/hooks/sink-1", bytes.NewReader(body))
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		resp, err := client.Do(req)
		if err != nil {
			return 0 // the client gave up: a hang
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	counts := map[int]int{}
	const n = 2000
	for i := range n {
		id := fmt.Sprintf("evt_%d", i)
		first := post(id, id)
		counts[first]++
		again := post(id, id)
		switch {
		case s.alwaysFails(id) && (first != 500 || again != 500):
			t.Fatalf("%s always fails: answered %d, %d", id, first, again)
		case first == 200 && again != 200, first == 410 && again != 410:
			t.Fatalf("%s: %d then %d: not sticky", id, first, again)
		}
	}
	// First POSTs: 5% always fail (500), the rest by the shares.
	within := func(got int, share float64) bool {
		want := share * n
		return float64(got) > 0.6*want && float64(got) < 1.4*want
	}
	if !within(counts[500], 0.05+0.95*0.2) || !within(counts[429], 0.95*0.1) || !within(counts[0], 0.95*0.05) || !within(counts[410], 0.95*0.05) || !within(counts[200], 0.95*0.6) {
		t.Errorf("first answers %v for %d events", counts, n)
	}
	c := s.counts()
	if c.Posts != 2*n || c.Answered["hung"] < 1 || c.BadSig != 0 {
		t.Errorf("counts %+v", c)
	}
	if c.Duplicates != int64(counts[200]) {
		t.Errorf("duplicates %d, want one per event first answered 200 (%d)", c.Duplicates, counts[200])
	}
	// Every POST is logged, in order, with an end at or after its arrival.
	s.each(func(ep, id string, a arrival) {
		if len(a.log) != 2 || a.log[0].End < a.log[0].At || a.log[1].At < a.log[0].At {
			t.Fatalf("%s log %+v", id, a.log)
		}
	})
	// A body whose event id is not the webhook-id is refused.
	if got := post("evt_x", "evt_y"); got != http.StatusBadRequest || s.counts().BadBody != 1 {
		t.Errorf("mismatched body: %d, bad bodies %d", got, s.counts().BadBody)
	}
}
