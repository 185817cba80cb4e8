package deliver

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

// BenchmarkSend measures signed deliveries per second to a local sink through the
// guarded transport (loopback allow-listed). The goal for the full pipeline is
// ≥ 15,000 deliveries/s on a 2-core machine.
func BenchmarkSend(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(sink.Close)
	s := newTestSender(b, SenderConfig{Guard: NewGuard(loopbackAllow)})
	secret, err := ParseSecret(katSecret)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte(`{"k":"v"}`), 100) // ~1 KB event
	req := Request{URL: sink.URL + "/hook", MsgID: "evt_bench", Body: body, Signer: NewSigner(secret), Now: time.Unix(katTimestamp, 0),
		Headers: map[string]string{"X-Merchant": "bench"}}

	b.SetParallelism(16) // I/O bound: 16 goroutines per core
	b.ReportAllocs()
	b.ResetTimer()
	cpu := testenv.StartCPU(b, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if a := s.Send(b.Context(), req); Classify(a) != Delivered {
				b.Errorf("Send = %+v, want delivered", a)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
	cpu.Report(b, b.N, "send") // both ends: the sender and the sink
}
