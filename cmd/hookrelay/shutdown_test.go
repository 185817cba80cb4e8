package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The shutdown test's knobs.
const (
	sdEvents        = 100             // callbacks in flight at SIGTERM
	sdBound         = 6 * time.Second // shutdown_timeout in the config
	sdExitSlack     = 3 * time.Second // allowed beyond the bound (NATS drain)
	sdQuickAnswer   = time.Second     // how long the "quick" half takes to answer
	sdHang          = time.Minute     // how long the other half would take
	sdRedeliverWait = 5 * time.Second // well under serve's 15 s AckWait: only a hand-back is that quick
	sdAdminToken    = "shutdown-test-admin-token-0123456789"
	sdSourceToken   = "shutdown-test-maya-token-0123456789"
	sdSecret        = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// TestShutdown: SIGTERM to `hookrelay serve` while 100 attempts to a slow merchant are
// in flight (SPEC §10). Half of them answer 1 s after they arrive, the others hang.
// The process must exit 0 within shutdown_timeout (+3 s); every attempt that finished
// must be recorded (done, one attempt, 200) and not be sent again; every unfinished one
// must be sent again at once (not after JetStream's 15-second AckWait) by the restarted
// process, with no attempt recorded for the one that was cut off.
func TestShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary twice")
	}
	bin := filepath.Join(t.TempDir(), "hookrelay")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Always in-process servers: serve uses the fixed stream names and key prefix.
	nt := testenv.NewInProcessNATS(t)
	mr := miniredis.RunT(t)

	m := newSDMerchant(t)
	cfgPath := filepath.Join(t.TempDir(), "hookrelay.yaml")
	writeSDConfig(t, cfgPath, m.srv.URL+"/hooks")
	env := sdEnv(nt.URL, "redis://"+mr.Addr())

	// Phase 1: 100 callbacks, half quick, half hanging; SIGTERM once all are in flight.
	p1 := startSDProcess(t, "phase1", bin, cfgPath, env)
	body := sdSeedBody(t)
	ids := make([]string, 0, sdEvents)
	for i := range sdEvents {
		ids = append(ids, p1.post(t, sdBody(t, body, i)))
	}
	if got := len(slices.Compact(slices.Sorted(slices.Values(ids)))); got != sdEvents {
		p1.dumpLog(t)
		t.Fatalf("ingest gave %d distinct event ids for %d distinct callbacks", got, sdEvents)
	}
	m.expect(ids...)
	if !sdPoll(15*time.Second, func() bool { return m.arrivedIn(1) == sdEvents }) {
		p1.dumpLog(t)
		t.Fatalf("phase 1: %d of %d deliveries reached the merchant within 15s", m.arrivedIn(1), sdEvents)
	}
	inFlight := m.inFlight()
	sigterm := p1.sigterm(t)
	t.Logf("phase 1: SIGTERM with %d requests in flight at the merchant (%d answered before)", inFlight, sdEvents-inFlight)

	// Stop taking provider requests: one posted just after SIGTERM must not be taken.
	time.Sleep(300 * time.Millisecond)
	if id, status, err := p1.tryPost(sdBody(t, body, sdEvents)); err == nil && status == http.StatusOK {
		m.expect(id)
		t.Errorf("a callback posted 300ms after SIGTERM was answered 200; serve must stop taking provider requests")
	}

	code, exitAt := p1.wait(t, sdBound+sdExitSlack+10*time.Second)
	took := exitAt.Sub(sigterm)
	t.Logf("phase 1: exit code %d, %v after SIGTERM (bound %v + %v)", code, took.Round(time.Millisecond), sdBound, sdExitSlack)
	if code != 0 {
		t.Errorf("phase 1: exit code %d after SIGTERM, want 0", code)
	}
	if took > sdBound+sdExitSlack {
		t.Errorf("phase 1: exit %v after SIGTERM, want ≤ shutdown_timeout %v + %v", took.Round(time.Millisecond), sdBound, sdExitSlack)
	}

	// Sort phase 1's arrivals: finished (answered well before the exit, so the response
	// surely reached serve before any cancel), unfinished (never answered), ambiguous.
	finished, unfinished, ambiguous := m.classify(exitAt.Add(-time.Second))
	t.Logf("phase 1: %d finished, %d unfinished, %d answered within 1s of exit (ambiguous)", len(finished), len(unfinished), len(ambiguous))
	var dup []string
	for _, id := range ids {
		if n := m.count(id, 1); n != 1 {
			dup = append(dup, fmt.Sprintf("%s: %d times", id, n))
		}
	}
	sdReport(t, "deliveries were not POSTed exactly once in phase 1", dup, len(ids))
	sdReport(t, fmt.Sprintf("quick attempts (answered %v after arrival, in flight at SIGTERM) were cut off instead of allowed to finish within the %v bound", sdQuickAnswer, sdBound),
		m.quickCutOff(sigterm), sdEvents/2)
	if len(unfinished) == 0 {
		t.Errorf("phase 1: no hanging request was left unfinished; the test did not exercise the cut-off")
	}

	// Phase 2: same NATS and Redis; the merchant answers at once.
	m.phase.Store(2)
	p2Start := time.Now()
	p2 := startSDProcess(t, "phase2", bin, cfgPath, env)
	allBack := sdPoll(sdRedeliverWait, func() bool {
		for _, id := range unfinished {
			if m.count(id, 2) == 0 {
				return false
			}
		}
		return true
	})
	if !allBack {
		var missing []string
		for _, id := range unfinished {
			if m.count(id, 2) == 0 {
				missing = append(missing, id)
			}
		}
		sdReport(t, fmt.Sprintf("deliveries cut off in phase 1 were not POSTed again within %v of the restart (JetStream's AckWait is 15 seconds: were their jobs handed back?)", sdRedeliverWait),
			missing, len(unfinished))
	} else {
		t.Logf("phase 2: all %d unfinished deliveries POSTed again within %v of the restart", len(unfinished), time.Since(p2Start).Round(time.Millisecond))
	}

	// Every delivery ends done; check the records through the admin API.
	views := map[string]deliver.DeliveryView{}
	adminErr := map[string]error{}
	sdPoll(10*time.Second, func() bool {
		all := true
		for _, id := range ids {
			if v, ok := views[id]; ok && v.State == "done" {
				continue
			}
			v, err := p2.delivery(id)
			views[id], adminErr[id] = v, err
			all = all && err == nil && v.State == "done"
		}
		return all
	})
	var errs, badFinished, repeated, badUnfinished, badAmbiguous []string
	for _, id := range ids {
		if adminErr[id] != nil {
			errs = append(errs, adminErr[id].Error())
		}
	}
	time.Sleep(time.Second) // room for any repeat of a finished one to show up
	for _, id := range finished {
		v := views[id]
		if v.State != "done" || len(v.Attempts) != 1 || v.Attempts[0].Status != http.StatusOK {
			badFinished = append(badFinished, fmt.Sprintf("%s: state %q, attempts %s", id, v.State, sdAttempts(v)))
		}
		if n := m.count(id, 2); n != 0 {
			repeated = append(repeated, fmt.Sprintf("%s: %d times", id, n))
		}
	}
	for _, id := range unfinished {
		v := views[id]
		if v.State != "done" || len(v.Attempts) != 1 || v.Attempts[0].Status != http.StatusOK {
			badUnfinished = append(badUnfinished, fmt.Sprintf("%s: state %q, attempts %s", id, v.State, sdAttempts(v)))
		}
	}
	for _, id := range ambiguous {
		v := views[id]
		if v.State != "done" || len(v.Attempts) == 0 || v.Attempts[len(v.Attempts)-1].Status != http.StatusOK {
			badAmbiguous = append(badAmbiguous, fmt.Sprintf("%s: state %q, attempts %s", id, v.State, sdAttempts(v)))
		}
	}
	sdReport(t, "admin API errors", errs, len(ids))
	sdReport(t, "finished in phase 1 but not recorded as done with exactly one attempt, status 200", badFinished, len(finished))
	sdReport(t, "finished in phase 1 but POSTed again after the restart (attempt not recorded before exit)", repeated, len(finished))
	sdReport(t, "cut off in phase 1 but not done with exactly one attempt, status 200, after the restart (a cut-off attempt must not be recorded)", badUnfinished, len(unfinished))
	sdReport(t, "answered within 1s of exit but not done with a last attempt of status 200", badAmbiguous, len(ambiguous))
	if stray := m.stray(); len(stray) > 0 {
		t.Errorf("the merchant got webhook-ids that were never posted: %v", stray)
	}

	sigterm2 := p2.sigterm(t)
	code2, exit2 := p2.wait(t, sdBound+sdExitSlack+10*time.Second)
	if code2 != 0 || exit2.Sub(sigterm2) > sdBound+sdExitSlack {
		t.Errorf("phase 2: exit code %d, %v after SIGTERM; want 0 within %v", code2, exit2.Sub(sigterm2).Round(time.Millisecond), sdBound+sdExitSlack)
	}
	if m.badSignatures.Load() > 0 {
		t.Errorf("%d deliveries failed signature verification", m.badSignatures.Load())
	}
	if t.Failed() {
		p1.dumpLog(t)
		p2.dumpLog(t)
	}
}

// sdArrival is one POST the merchant got.
type sdArrival struct {
	phase      int32
	quick      bool // phase 1: answers after sdQuickAnswer (else hangs)
	at         time.Time
	answered   bool
	answeredAt time.Time
	done       bool // the handler has returned
}

// sdMerchant is the slow merchant: it verifies every signature independently and
// records what arrived and whether it was answered.
type sdMerchant struct {
	srv           *httptest.Server
	phase         atomic.Int32
	n             atomic.Int64 // phase 1 arrivals, for the quick/hang split
	badSignatures atomic.Int64
	quit          chan struct{}

	mu  sync.Mutex
	got map[string][]*sdArrival
	ids map[string]bool // posted event ids (set by the test)
}

func newSDMerchant(t *testing.T) *sdMerchant {
	t.Helper()
	verifier, err := standardwebhooks.NewWebhook(sdSecret)
	if err != nil {
		t.Fatal(err)
	}
	m := &sdMerchant{quit: make(chan struct{}), got: map[string][]*sdArrival{}}
	m.phase.Store(1)
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(b, r.Header); err != nil {
			m.badSignatures.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		a := &sdArrival{phase: m.phase.Load(), at: time.Now()}
		wait := time.Duration(0)
		if a.phase == 1 {
			a.quick = m.n.Add(1)%2 == 1
			wait = sdHang
			if a.quick {
				wait = sdQuickAnswer
			}
		}
		id := r.Header.Get("webhook-id")
		m.mu.Lock()
		m.got[id] = append(m.got[id], a)
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			a.done = true
			m.mu.Unlock()
		}()
		if wait > 0 {
			timer := time.NewTimer(wait)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return // the client went away: not answered
			case <-m.quit:
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok")
		w.(http.Flusher).Flush()
		m.mu.Lock()
		a.answered, a.answeredAt = true, time.Now()
		m.mu.Unlock()
	}))
	t.Cleanup(m.srv.Close)
	t.Cleanup(func() { close(m.quit) }) // runs before Close: release hanging handlers
	return m
}

// arrivedIn is the number of distinct webhook-ids that arrived in phase.
func (m *sdMerchant) arrivedIn(phase int32) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, as := range m.got {
		if slices.ContainsFunc(as, func(a *sdArrival) bool { return a.phase == phase }) {
			n++
		}
	}
	return n
}

// inFlight is the number of requests whose handler has not returned.
func (m *sdMerchant) inFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, as := range m.got {
		for _, a := range as {
			if !a.done {
				n++
			}
		}
	}
	return n
}

// count is how many times id arrived in phase.
func (m *sdMerchant) count(id string, phase int32) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range m.got[id] {
		if a.phase == phase {
			n++
		}
	}
	return n
}

// classify sorts phase 1's ids: finished (answered by cutoff), unfinished (never
// answered), ambiguous (answered after cutoff: the response may not have reached
// serve before it cancelled).
func (m *sdMerchant) classify(cutoff time.Time) (finished, unfinished, ambiguous []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, as := range m.got {
		i := slices.IndexFunc(as, func(a *sdArrival) bool { return a.phase == 1 })
		if i < 0 {
			continue
		}
		switch a := as[i]; {
		case !a.answered:
			unfinished = append(unfinished, id)
		case !a.answeredAt.After(cutoff):
			finished = append(finished, id)
		default:
			ambiguous = append(ambiguous, id)
		}
	}
	slices.Sort(finished)
	slices.Sort(unfinished)
	slices.Sort(ambiguous)
	return finished, unfinished, ambiguous
}

// quickCutOff lists the quick requests that arrived before SIGTERM but were not
// answered: they needed sdQuickAnswer, far less than the bound.
func (m *sdMerchant) quickCutOff(sigterm time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, as := range m.got {
		for _, a := range as {
			if a.phase == 1 && a.quick && a.at.Before(sigterm) && !a.answered {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// expect adds posted event ids.
func (m *sdMerchant) expect(ids ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[string]bool{}
	}
	for _, id := range ids {
		m.ids[id] = true
	}
}

// stray lists webhook-ids that were never posted by the test.
func (m *sdMerchant) stray() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.got {
		if !m.ids[id] {
			out = append(out, id)
		}
	}
	return out
}

// sdProcess is one `hookrelay serve` subprocess.
type sdProcess struct {
	name          string
	cmd           *exec.Cmd
	logPath       string
	ingest, admin string
	exited        chan struct{}
	exitAt        time.Time
	waitErr       error
	dumped        bool
}

// sdFreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func sdFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeSDConfig(t *testing.T, path, merchantURL string) {
	t.Helper()
	cfg := fmt.Sprintf(`# TestShutdown
listen: "${HOOKRELAY_LISTEN}"
admin: {listen: "${HOOKRELAY_ADMIN_LISTEN}", token: %q}
nats: {url: "${NATS_URL}"}
redis: {url: "${REDIS_URL}"}
log: {format: json, level: info}
shutdown_timeout: %s
sources:
  - {id: acme-maya, provider: paymaya, merchant: acme, token: %q}
endpoints:
  - id: acme-orders
    merchant: acme
    url: %q
    types: ["payment.*"]
    secret: %q
    max_in_flight: %d
delivery: {timeout: 30s, allow_cidrs: ["127.0.0.0/8"]}
`, sdAdminToken, sdBound, sdSourceToken, merchantURL, sdSecret, sdEvents+20)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sdEnv is the test's environment without anything that would point serve elsewhere
// (a developer's NATS_URL, REDIS_URL, HOOKRELAY_*), plus the in-process servers.
func sdEnv(natsURL, redisURL string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "NATS_URL" || k == "REDIS_URL" || strings.HasPrefix(k, "HOOKRELAY_") || strings.HasPrefix(k, "ACME_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NATS_URL="+natsURL, "REDIS_URL="+redisURL)
}

// startSDProcess starts serve with fresh listen ports and waits until both listeners
// answer. It is killed at the end of the test if it is still running.
func startSDProcess(t *testing.T, name, bin, cfgPath string, env []string) *sdProcess {
	t.Helper()
	p := &sdProcess{name: name, logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	p.ingest, p.admin = sdFreeAddr(t), sdFreeAddr(t)
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	p.cmd.Env = append(slices.Clone(env), "HOOKRELAY_LISTEN="+p.ingest, "HOOKRELAY_ADMIN_LISTEN="+p.admin)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.exitAt = time.Now()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	client := &http.Client{Timeout: time.Second}
	ready := sdPoll(30*time.Second, func() bool {
		select {
		case <-p.exited:
			return true
		default:
		}
		resp, err := client.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		c, err := net.DialTimeout("tcp", p.ingest, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	select {
	case <-p.exited:
		p.dumpLog(t)
		t.Fatalf("%s: serve exited before it was ready: %v", name, p.waitErr)
	default:
	}
	if !ready {
		p.dumpLog(t)
		t.Fatalf("%s: serve not ready within 30s", name)
	}
	return p
}

// post sends one PayMaya callback and returns the event id; it must be answered 200.
func (p *sdProcess) post(t *testing.T, body []byte) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.ingest+"/ingest/paymaya/acme-maya", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("", sdSourceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.dumpLog(t)
		t.Fatalf("post callback: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &ans) != nil || ans.ID == "" || ans.Duplicate {
		p.dumpLog(t)
		t.Fatalf("post callback: %d %s", resp.StatusCode, raw)
	}
	return ans.ID
}

// tryPost sends one callback on a fresh connection and reports the answer.
func (p *sdProcess) tryPost(body []byte) (string, int, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.ingest+"/ingest/paymaya/acme-maya", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("", sdSourceToken)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var ans struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	return ans.ID, resp.StatusCode, nil
}

// delivery is the delivery of event id to the one endpoint, from the admin API.
func (p *sdProcess) delivery(id string) (deliver.DeliveryView, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.admin+"/v1/events/"+id+"/deliveries", nil)
	req.Header.Set("Authorization", "Bearer "+sdAdminToken)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return deliver.DeliveryView{}, fmt.Errorf("deliveries of %s: %w", id, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans struct {
		Deliveries []deliver.DeliveryView `json:"deliveries"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &ans) != nil || len(ans.Deliveries) != 1 {
		return deliver.DeliveryView{}, fmt.Errorf("deliveries of %s: %d %s", id, resp.StatusCode, raw)
	}
	return ans.Deliveries[0], nil
}

func (p *sdProcess) sigterm(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", p.name, err)
	}
	return at
}

// wait waits up to limit for the process to exit, then kills it; it returns the
// exit code (-1 when killed) and when it exited.
func (p *sdProcess) wait(t *testing.T, limit time.Duration) (int, time.Time) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s: still running %v after SIGTERM; killed", p.name, limit)
		return -1, p.exitAt
	}
	return p.cmd.ProcessState.ExitCode(), p.exitAt
}

// dumpLog prints the log's shutdown-related lines and its tail (once).
func (p *sdProcess) dumpLog(t *testing.T) {
	t.Helper()
	if p == nil || p.dumped {
		return
	}
	p.dumped = true
	f, err := os.Open(p.logPath)
	if err != nil {
		t.Logf("%s log: %v", p.name, err)
		return
	}
	defer f.Close()
	var lines, notable []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		lines = append(lines, l)
		if !strings.Contains(l, "delivery.attempted") || !strings.Contains(l, `"status":200`) {
			if strings.Contains(l, "shut") || strings.Contains(l, "redeliver") || strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) || strings.Contains(l, "delivery.attempted") {
				notable = append(notable, l)
			}
		}
	}
	if len(notable) > 40 {
		notable = append(notable[:20], append([]string{fmt.Sprintf("… %d more …", len(notable)-40)}, notable[len(notable)-20:]...)...)
	}
	t.Logf("%s log: %d lines; shutdown, warnings, errors and non-200 attempts:\n%s", p.name, len(lines), strings.Join(notable, "\n"))
	tail := lines[max(0, len(lines)-30):]
	t.Logf("%s log tail:\n%s", p.name, strings.Join(tail, "\n"))
}

// sdSeedBody is PayMaya's sample webhook as a map.
func sdSeedBody(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../parse/testdata/paymaya/webhook-payment-success.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// sdBody is the seed with payment id number i (a distinct event per i).
func sdBody(t *testing.T, seed map[string]any, i int) []byte {
	t.Helper()
	m := make(map[string]any, len(seed))
	for k, v := range seed {
		m[k] = v
	}
	m["id"] = fmt.Sprintf("5f1e1df5-b58f-481b-89cb-%012d", i)
	m["requestReferenceNumber"] = fmt.Sprintf("sd-%d", i)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdReport fails t with how many of n went wrong and the first few.
func sdReport(t *testing.T, what string, bad []string, n int) {
	t.Helper()
	if len(bad) == 0 {
		return
	}
	slices.Sort(bad)
	shown := bad[:min(len(bad), 5)]
	t.Errorf("%d of %d %s; e.g.\n\t%s", len(bad), n, what, strings.Join(shown, "\n\t"))
}

func sdAttempts(v deliver.DeliveryView) string {
	var parts []string
	for _, a := range v.Attempts {
		parts = append(parts, fmt.Sprintf("#%d status %d %s %q", a.Attempt, a.Status, a.Outcome, a.Error))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// sdPoll calls cond every 50ms until it is true or d has passed.
func sdPoll(d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
