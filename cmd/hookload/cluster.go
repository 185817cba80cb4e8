package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// proc is one child process: nats-server, redis-server or hookrelay serve.
type proc struct {
	name    string // nats, redis, hookrelay-ingest-1, …
	cmd     *exec.Cmd
	logPath string
	ingest  string   // host:port, hookrelay with the ingest role
	admin   string   // host:port, hookrelay
	roles   []string // hookrelay's roles

	// what started it, to start it again after a kill
	kind, bin string
	args, env []string

	exited  chan struct{}
	exitAt  time.Time
	waitErr error

	// stopSig asks the process to stop: SIGTERM, except for nats-server, which before
	// 2.10 exits 1 on SIGTERM by design and 0 on SIGINT (both shut down cleanly).
	stopSig syscall.Signal

	mu       sync.Mutex
	stopping bool // a SIGTERM (or kill) was sent on purpose
}

// startProc runs bin with args and env, its stdout and stderr into logPath; kind is
// nats, redis or hookrelay (nats-server stops on SIGINT). The child gets
// its own process group, so a Ctrl-C at the terminal reaches only hookload, which then
// stops the children in order; and it is killed if hookload dies.
func startProc(name, kind, bin string, args, env []string, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, logPath: logPath, exited: make(chan struct{}), stopSig: syscall.SIGTERM, kind: kind, bin: bin, args: args, env: env}
	if kind == "nats" {
		p.stopSig = syscall.SIGINT
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.exitAt = time.Now()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// done reports whether the process has exited.
func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// intended reports whether the process was told to stop.
func (p *proc) intended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// signal sends sig, marking the stop as intended.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if p.done() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// stopResult is how a process ended.
type stopResult struct {
	Name     string        `json:"name"`
	Signal   string        `json:"signal"`
	ExitCode int           `json:"exit_code"` // -1: killed by a signal
	Took     time.Duration `json:"took_ns"`   // from SIGTERM to exit
	Killed   bool          `json:"killed"`    // did not exit within the bound: SIGKILL
	CPU      float64       `json:"cpu_s"`     // user + system, the whole life (rusage)
	MaxRSSKB int64         `json:"max_rss_kb"`
	Err      string        `json:"error,omitempty"` // sending the stop signal failed
}

// stop sends SIGTERM (stopSig), waits up to bound, then SIGKILL.
func (p *proc) stop(bound time.Duration) stopResult {
	r := stopResult{Name: p.name, Signal: p.stopSig.String()}
	at := time.Now()
	if err := p.signal(p.stopSig); err != nil {
		r.Err = err.Error()
	}
	select {
	case <-p.exited:
	case <-time.After(bound):
		r.Killed = true
		_ = p.signal(syscall.SIGKILL)
		<-p.exited
	}
	r.Took = p.exitAt.Sub(at)
	return p.result(r)
}

// result fills in the exit status and the rusage of an exited process.
func (p *proc) result(r stopResult) stopResult {
	st := p.cmd.ProcessState
	if st == nil {
		return r
	}
	r.ExitCode = st.ExitCode()
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		r.CPU = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
		r.MaxRSSKB = ru.Maxrss // kB on Linux
	}
	return r
}

// logTail is the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ports hands out loopback ports that were free a moment ago, never the machine's
// shared NATS (4222) and Redis (6379) nor one given out before. They are taken below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range), so that while a killed
// process is down no outgoing connection can be given its port as a local one and
// keep it from starting again.
type ports struct {
	mu   sync.Mutex
	used map[int]bool
}

func (ps *ports) next() (int, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.used == nil {
		ps.used = map[int]bool{4222: true, 6379: true, 8080: true, 8081: true}
	}
	low := ephemeralLow()
	for range 1000 {
		port := 0 // no room below the ephemeral range: let the kernel choose
		if low > 11000 {
			port = 10000 + mrand.IntN(low-10000)
		}
		if ps.used[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !ps.used[port] {
			ps.used[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when it
// can't be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

func (ps *ports) addr() (string, error) {
	p, err := ps.next()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// cluster is the system under test: one nats-server, one redis-server, the hookrelay
// processes.
type cluster struct {
	dir      string
	root     string // the module's directory
	ports    ports
	nats     *proc
	redis    *proc
	relays   []*proc
	natsURL  string
	redisURL string
	cfgPath  string
	bins     struct{ nats, redis, relay string }
	// mu guards relays, nats and redis, which a restart replaces.
	mu      sync.Mutex
	baseEnv []string
	// shutdown is hookrelay's shutdown_timeout.
	shutdown time.Duration
	logf     func(format string, args ...any)
}

// findNATS returns a nats-server binary: want if given ("build" forces a build), else
// the one on PATH, else /usr/sbin/nats-server, else one built from the module's
// nats-server dependency.
func (c *cluster) findNATS(ctx context.Context, want string) (string, error) {
	if want != "" && want != "build" {
		return want, nil
	}
	if want == "" {
		if p, err := exec.LookPath("nats-server"); err == nil {
			return p, nil
		}
		if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
			return "/usr/sbin/nats-server", nil
		}
	}
	out := filepath.Join(c.dir, "bin", "nats-server")
	c.logf("building nats-server from the module's github.com/nats-io/nats-server/v2")
	return out, c.goBuild(ctx, out, "github.com/nats-io/nats-server/v2")
}

// goBuild builds pkg into out from the module's directory.
func (c *cluster) goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = c.root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// cleanEnv is hookload's environment without anything that would point a child
// elsewhere (a developer's NATS_URL, REDIS_URL, HOOKRELAY_*).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "NATS_URL" || k == "REDIS_URL" || strings.HasPrefix(k, "HOOKRELAY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// startNATS starts nats-server with JetStream on its own port and store, and waits
// until JetStream answers.
func (c *cluster) startNATS(ctx context.Context) error {
	port, err := c.ports.next()
	if err != nil {
		return err
	}
	conf := filepath.Join(c.dir, "nats.conf")
	if err := writeFile(conf, natsConfig); err != nil {
		return err
	}
	store := filepath.Join(c.dir, "data", "nats")
	if err := os.MkdirAll(store, 0o750); err != nil {
		return err
	}
	args := []string{"-c", conf, "-js", "-sd", store, "-p", strconv.Itoa(port), "-a", "127.0.0.1"}
	c.nats, err = startProc("nats", "nats", c.bins.nats, args, c.baseEnv, filepath.Join(c.dir, "logs", "nats.log"))
	if err != nil {
		return err
	}
	c.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	return c.natsReady(ctx, c.nats)
}

// natsReady waits until nats-server p answers JetStream requests.
func (c *cluster) natsReady(ctx context.Context, p *proc) error {
	return c.waitReady(ctx, p, 30*time.Second, func(ctx context.Context) error {
		nc, err := nats.Connect(c.natsURL, nats.Timeout(time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.AccountInfo(ctx)
		return err
	})
}

// findRedis returns the redis-server on PATH.
func findRedis() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server is not installed (not on PATH); hookload runs a real Redis with AOF: install it (e.g. apt-get install redis-server) and run again")
	}
	return bin, nil
}

// startRedis starts redis-server (c.bins.redis) with AOF (appendfsync everysec) in
// its own directory.
func (c *cluster) startRedis(ctx context.Context) error {
	port, err := c.ports.next()
	if err != nil {
		return err
	}
	dir := filepath.Join(c.dir, "data", "redis")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--appendonly", "yes",
		"--appendfsync", "everysec", "--dir", dir, "--save", "", "--maxmemory-policy", "noeviction"}
	c.redis, err = startProc("redis", "redis", c.bins.redis, args, c.baseEnv, filepath.Join(c.dir, "logs", "redis.log"))
	if err != nil {
		return err
	}
	c.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	return c.redisReady(ctx, c.redis)
}

// redisReady waits until redis-server p answers PING (after loading its AOF).
func (c *cluster) redisReady(ctx context.Context, p *proc) error {
	return c.waitReady(ctx, p, 30*time.Second, func(ctx context.Context) error {
		opt, err := redis.ParseURL(c.redisURL)
		if err != nil {
			return err
		}
		opt.MaxRetries = -1
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		return rdb.Ping(ctx).Err()
	})
}

// startRelays starts the hookrelay processes of specs. The first starts alone (it
// creates the streams and seeds the endpoints), the others together once it is ready.
func (c *cluster) startRelays(ctx context.Context, specs []procSpec) error {
	type todo struct {
		name  string
		roles []string
	}
	var all []todo
	for _, s := range specs {
		for i := range s.Count {
			all = append(all, todo{fmt.Sprintf("hookrelay-%s-%d", s.name(), i+1), s.Roles})
		}
	}
	start := func(t todo) (*proc, error) {
		env := slices.Clone(c.baseEnv)
		env = append(env, "NATS_URL="+c.natsURL, "REDIS_URL="+c.redisURL) // the roles go as --roles
		admin, err := c.ports.addr()
		if err != nil {
			return nil, err
		}
		env = append(env, "HOOKRELAY_ADMIN_LISTEN="+admin)
		var ingest string
		if slices.Contains(t.roles, "ingest") {
			if ingest, err = c.ports.addr(); err != nil {
				return nil, err
			}
			env = append(env, "HOOKRELAY_LISTEN="+ingest)
		}
		args := []string{"serve", "--config", c.cfgPath, "--roles", strings.Join(t.roles, ",")}
		p, err := startProc(t.name, "hookrelay", c.bins.relay, args, env, filepath.Join(c.dir, "logs", t.name+".log"))
		if err != nil {
			return nil, err
		}
		p.ingest, p.admin, p.roles = ingest, admin, t.roles
		return p, nil
	}
	ready := func(p *proc) error { return c.relayReady(ctx, p) }
	for i, t := range all {
		p, err := start(t)
		if err != nil {
			return err
		}
		c.relays = append(c.relays, p)
		if i == 0 {
			if err := ready(p); err != nil {
				return err
			}
		}
	}
	errs := make([]error, len(c.relays))
	var wg sync.WaitGroup
	for i, p := range c.relays[1:] {
		wg.Go(func() { errs[i+1] = ready(p) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// relayReady waits until hookrelay process p answers /readyz with 200 and, with the
// ingest role, takes connections on its provider listener.
func (c *cluster) relayReady(ctx context.Context, p *proc) error {
	client := &http.Client{Timeout: time.Second}
	return c.waitReady(ctx, p, 60*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.admin+"/readyz", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %d", resp.StatusCode)
		}
		if p.ingest != "" {
			conn, err := net.DialTimeout("tcp", p.ingest, time.Second)
			if err != nil {
				return err
			}
			conn.Close()
		}
		return nil
	})
}

// waitReady polls check every 100ms until it succeeds, p exits or limit passes.
func (c *cluster) waitReady(ctx context.Context, p *proc, limit time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if p.done() {
			return fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail(20))
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %v: %v; log %s:\n%s", p.name, limit, last, p.logPath, p.logTail(20))
}

// restart starts old (killed, exited) again, the same binary, arguments, environment
// (ports, data) and log, waits until it is ready and puts it in old's place.
func (c *cluster) restart(ctx context.Context, old *proc) (*proc, error) {
	p, err := startProc(old.name, old.kind, old.bin, old.args, old.env, old.logPath)
	if err != nil {
		return nil, err
	}
	p.ingest, p.admin, p.roles = old.ingest, old.admin, old.roles
	c.mu.Lock()
	switch {
	case old == c.nats:
		c.nats = p
	case old == c.redis:
		c.redis = p
	default:
		for i, r := range c.relays {
			if r == old {
				c.relays[i] = p
			}
		}
	}
	c.mu.Unlock()
	switch p.kind {
	case "nats":
		err = c.natsReady(ctx, p)
	case "redis":
		err = c.redisReady(ctx, p)
	default:
		err = c.relayReady(ctx, p)
	}
	return p, err
}

// all lists every process, hookrelay first.
func (c *cluster) all() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.relays)
	for _, p := range []*proc{c.redis, c.nats} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// ingestAddrs are the provider listeners.
func (c *cluster) ingestAddrs() []string {
	var out []string
	for _, p := range c.all() {
		if p.ingest != "" {
			out = append(out, p.ingest)
		}
	}
	return out
}

// unexpectedExit returns a process that exited without being told to.
func (c *cluster) unexpectedExit() *proc {
	for _, p := range c.all() {
		if p.done() && !p.intended() {
			return p
		}
	}
	return nil
}

// saveMetrics keeps each hookrelay process's /metrics in the run dir and returns them.
func (c *cluster) saveMetrics() []string {
	var out []string
	client := &http.Client{Timeout: 5 * time.Second}
	for _, p := range c.all() {
		if p.done() {
			continue
		}
		resp, err := client.Get("http://" + p.admin + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = os.WriteFile(filepath.Join(c.dir, "logs", p.name+".metrics.txt"), b, 0o644)
		out = append(out, string(b))
	}
	return out
}

// stopAll stops hookrelay (all processes at once, SIGTERM, then waits up to its
// shutdown_timeout + 10s), then Redis (SIGTERM), then NATS (SIGINT, see stopSig), and
// reports how each ended.
func (c *cluster) stopAll(onStop func(*proc)) []stopResult {
	var out []stopResult
	results := make([]stopResult, len(c.relays))
	var wg sync.WaitGroup
	for i, p := range c.relays {
		onStop(p)
		wg.Go(func() { results[i] = p.stop(c.shutdown + 10*time.Second) })
	}
	wg.Wait()
	out = append(out, results...)
	for _, p := range []*proc{c.redis, c.nats} {
		if p != nil {
			onStop(p)
			out = append(out, p.stop(30*time.Second))
		}
	}
	return out
}

// killAll SIGKILLs whatever still runs (hookload is failing).
func (c *cluster) killAll() {
	for _, p := range c.all() {
		if !p.done() {
			_ = p.signal(syscall.SIGKILL)
			<-p.exited
		}
	}
}
