package ingest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// BenchmarkIngest sends one new PayMaya callback per iteration through the real handler
// (auth, limits, parse, seen look-up, publish, PubAck wait, seen marker) into an
// in-process JetStream with file storage. Redis is miniredis, or the real one when
// HOOKRELAY_TEST_REDIS_URL is set. Requests run concurrently, as providers send them.
//
//	go test ./ingest -run '^$' -bench Ingest -benchtime 100000x
func BenchmarkIngest(b *testing.B) {
	n := testenv.NewInProcessNATS(b)
	rd := testenv.NewRedis(b)
	if err := natsx.EnsureStreams(context.Background(), n.JS, n.Topo, natsx.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	marker := ingest.NewRedisMarker(rd.Client, rkeys.Keyspace{Prefix: rd.Prefix})
	b.Cleanup(marker.Close)
	h, err := ingest.New(ingest.Config{
		Sources:  []ingest.Source{{ID: "acme-maya", Provider: "paymaya", Merchant: "acme", Token: mayaToken}},
		Topology: n.Topo,
		Observer: metrics.New(), // as serve runs it
	}, n.JS, marker)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.SetParallelism(64) // 64 × GOMAXPROCS concurrent requests in flight
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(seq.Add(1))
			body := `{"id":"bench-` + strconv.Itoa(i) + `","isPaid":true,"status":"PAYMENT_SUCCESS","amount":"100","currency":"PHP","createdAt":"2018-09-26T08:37:16Z","updatedAt":"2018-09-26T08:39:17Z","requestReferenceNumber":"6319921","receiptNumber":"703717440845","canVoid":true,"canRefund":false}`
			req := httptest.NewRequest(http.MethodPost, "/ingest/paymaya/acme-maya", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.SetBasicAuth("", mayaToken)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "callbacks/s")
}
