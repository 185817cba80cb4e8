package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/configs"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// backends returns the NATS URL (always an in-process server: serve uses fixed stream
// names), the Redis URL (miniredis, or the real one with HOOKRELAY_TEST_REDIS_URL) and
// a key prefix of the test's own, for processes that share them.
func backends(t *testing.T) (nats *testenv.NATS, redisURL, prefix string) {
	t.Helper()
	nats = testenv.NewInProcessNATS(t)
	rd := testenv.NewRedis(t)
	redisURL = os.Getenv(testenv.EnvRedis)
	if rd.Mini != nil {
		redisURL = "redis://" + rd.Mini.Addr()
	}
	return nats, redisURL, rd.Prefix
}

// startProcess runs serve with cfg (validated) until the test ends.
func startProcess(t *testing.T, cfg *Config) listening {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return runServed(t, cfg, zap.NewNop()).listening
}

// roleConfig is the dev config of one process in a multi-process test: its roles,
// the shared NATS and Redis (under the test's prefix), the demo endpoint at merchant,
// and the retry schedule.
func roleConfig(t *testing.T, natsURL, redisURL, prefix, merchant string, retry RetryConfig, roles ...string) *Config {
	t.Helper()
	cfg, err := loadConfig("", configs.Dev, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Roles = roles
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.NATS.URL, cfg.Redis.URL, cfg.Redis.Prefix = natsURL, redisURL, prefix
	cfg.Endpoints[0].URL = merchant + "/hooks"
	cfg.Retry = retry
	return cfg
}

// TestRoles: three processes, one role each, against one NATS and one Redis. An event
// taken by the ingest process is not delivered until a deliver process runs; its
// failed first attempt is not retried until a schedule process runs; then it is. Only
// the ingest process listens for providers; each serves the admin listener.
func TestRoles(t *testing.T) {
	ns, redisURL, prefix := backends(t)

	verifier, err := standardwebhooks.NewWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := 0
	arrived := make(chan int, 10)
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(b, r.Header); err != nil {
			t.Errorf("signature: %v", err)
		}
		mu.Lock()
		attempts++
		n := attempts
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		arrived <- n
	}))
	defer merchant.Close()

	config := func(roles ...string) *Config {
		retry := RetryConfig{Delays: []Duration{Duration(time.Second)}, GiveUpAfter: Duration(time.Minute)}
		return roleConfig(t, ns.URL, redisURL, prefix, merchant.URL, retry, roles...)
	}
	quiet := func(what string, d time.Duration) {
		t.Helper()
		select {
		case n := <-arrived:
			t.Fatalf("%s: the merchant got attempt %d", what, n)
		case <-time.After(d):
		}
	}
	await := func(what string, want int) {
		t.Helper()
		select {
		case n := <-arrived:
			if n != want {
				t.Fatalf("%s: attempt %d, want %d", what, n, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no attempt within 15s", what)
		}
	}

	in := startProcess(t, config(RoleIngest))
	if in.Ingest == "" || in.Admin == "" {
		t.Fatalf("ingest process listens on %+v, want both listeners", in)
	}
	postPayMaya(t, in.Ingest, samplePayMaya(t))
	quiet("ingest role alone", 1500*time.Millisecond)

	dl := startProcess(t, config(RoleDeliver))
	if dl.Ingest != "" {
		t.Errorf("deliver process listens for providers on %s", dl.Ingest)
	}
	await("deliver role started", 1)
	quiet("first attempt failed; retry due in 1s; no schedule role", 3*time.Second)

	sc := startProcess(t, config(RoleSchedule))
	if sc.Ingest != "" {
		t.Errorf("schedule process listens for providers on %s", sc.Ingest)
	}
	await("schedule role started", 2)
	for _, l := range []listening{in, dl, sc} {
		resp, err := http.Get("http://" + l.Admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s/readyz = %d", l.Admin, resp.StatusCode)
		}
	}
	quiet("delivered", 500*time.Millisecond)
}

// TestRolesConfig: flags > env > file for roles, and a bad role is named.
func TestRolesConfig(t *testing.T) {
	file := []byte("roles: [ingest]\nadmin: {token: 0123456789abcdef}\n")
	path := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	cfg, err := loadConfig(path, nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if got := roleNames(cfg.roleSet()); strings.Join(got, ",") != "ingest" {
		t.Errorf("file: roles %v, want [ingest]", got)
	}
	env["HOOKRELAY_ROLES"] = "deliver, schedule"
	if cfg, err = loadConfig(path, nil, getenv); err != nil {
		t.Fatal(err)
	}
	if got := roleNames(cfg.roleSet()); strings.Join(got, ",") != "deliver,schedule" {
		t.Errorf("env over file: roles %v, want [deliver schedule]", got)
	}
	cfg.Roles = nil
	if got := roleNames(cfg.roleSet()); strings.Join(got, ",") != "ingest,deliver,schedule" {
		t.Errorf("none given: roles %v, want all three", got)
	}
	cfg.Roles = []string{"ingest", "worker"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `roles[1] "worker"`) {
		t.Errorf("Validate with role worker = %v, want an error naming roles[1]", err)
	}
}

// TestScheduleWakeAcrossProcesses: with the deliver and schedule roles in separate
// processes, a retry due sooner than the schedule loop's own look-ahead (a second)
// starts on time: the worker that failed the attempt wakes the other process's loop
// over NATS. Without the wake, each retry would wait for the loop's next look, up to
// a second late: events 450ms apart leave the loop asleep with nothing due, so
// without the wake each retry would come about 550ms after its due time.
func TestScheduleWakeAcrossProcesses(t *testing.T) {
	ns, redisURL, prefix := backends(t)
	const delay = 200 * time.Millisecond
	var mu sync.Mutex
	first := map[string]time.Time{}
	late := make(chan time.Duration, 100)
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		now := time.Now()
		mu.Lock()
		t1, seen := first[id]
		if !seen {
			first[id] = now
		}
		mu.Unlock()
		if !seen {
			w.WriteHeader(http.StatusServiceUnavailable) // the retry is due in 200ms
			return
		}
		late <- now.Sub(t1) - delay
	}))
	defer merchant.Close()
	retry := RetryConfig{Delays: []Duration{Duration(delay)}, GiveUpAfter: Duration(time.Minute)}
	in := startProcess(t, roleConfig(t, ns.URL, redisURL, prefix, merchant.URL, retry, RoleIngest, RoleDeliver))
	startProcess(t, roleConfig(t, ns.URL, redisURL, prefix, merchant.URL, retry, RoleSchedule))
	body := samplePayMaya(t)
	const n = 8
	for i := range n {
		b := strings.Replace(string(body), "5f1e1df5-b58f-481b-89cb-8dd41afcf771", fmt.Sprintf("5f1e1df5-b58f-481b-89cb-%012d", i), 1)
		postPayMaya(t, in.Ingest, []byte(b))
		time.Sleep(450 * time.Millisecond)
	}
	var worst time.Duration
	for range n {
		select {
		case l := <-late:
			worst = max(worst, l)
		case <-time.After(15 * time.Second):
			t.Fatal("a retry did not come within 15s")
		}
	}
	t.Logf("latest retry: %v after its due time", worst)
	if worst > 400*time.Millisecond {
		t.Errorf("a retry started %v after its due time; want well under the loop's 1s look-ahead", worst)
	}
}
