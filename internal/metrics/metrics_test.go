package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type lines []string

func (l *lines) Println(v ...any) { *l = append(*l, fmt.Sprintln(v...)) }

// TestScrapeGaugeFails: a gauge read at scrape time that fails (Redis down) is left
// out of that scrape and reported to the error log; the other series are served, 200.
// When the read works again, the gauges are back.
func TestScrapeGaugeFails(t *testing.T) {
	m := New()
	m.IngestRequest("paymaya", "acme-maya", "accepted", time.Millisecond)
	fail := true
	m.ScrapeGauges(map[string]string{"hookrelay_pending_retries": "pending"}, time.Second,
		func(context.Context) (map[string]float64, error) {
			if fail {
				return nil, errors.New("redis: connection refused")
			}
			return map[string]float64{"hookrelay_pending_retries": 7}, nil
		})
	var errLog lines
	h := m.Handler(&errLog)
	scrape := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	code, body := scrape()
	if code != 200 || !strings.Contains(body, `hookrelay_ingest_requests_total{outcome="accepted",provider="paymaya",source="acme-maya"} 1`) {
		t.Errorf("scrape with a failing gauge = %d:\n%s", code, body)
	}
	if strings.Contains(body, "hookrelay_pending_retries ") {
		t.Errorf("the failing gauge was served:\n%s", body)
	}
	if len(errLog) == 0 || !strings.Contains(strings.Join(errLog, ""), "connection refused") {
		t.Errorf("error log = %q, want the read's error", errLog)
	}
	fail = false
	if _, body := scrape(); !strings.Contains(body, "hookrelay_pending_retries 7") {
		t.Errorf("gauge not back once the read works:\n%s", body)
	}
}
