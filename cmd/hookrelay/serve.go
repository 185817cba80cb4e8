package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/configs"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/schedule"
)

// The metrics feed every observer.
var (
	_ ingest.Observer   = (*metrics.Metrics)(nil)
	_ deliver.Observer  = (*metrics.Metrics)(nil)
	_ schedule.Observer = (*metrics.Metrics)(nil)
)

// handBackMargin is how long before the shutdown bound the attempts still running
// are cut short and handed back, leaving time to nak their jobs and drain NATS.
const handBackMargin = 2 * time.Second

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the built-in configs/dev.yaml)")
	listen := fs.String("listen", "", "provider listener address (overrides listen)")
	natsURL := fs.String("nats-url", "", "NATS URL (overrides NATS_URL and nats.url; empty = embedded)")
	redisURL := fs.String("redis-url", "", "Redis URL (overrides REDIS_URL and redis.url; empty = embedded)")
	logFormat := fs.String("log-format", "", "json or console (overrides log.format)")
	roles := fs.String("roles", "", "comma-separated roles to run: ingest,deliver,schedule (overrides HOOKRELAY_ROLES and roles; default all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath, configs.Dev, os.Getenv)
	if err != nil {
		return err
	}
	for dst, v := range map[*string]string{&cfg.Listen: *listen, &cfg.NATS.URL: *natsURL, &cfg.Redis.URL: *redisURL, &cfg.Log.Format: *logFormat} {
		if v != "" {
			*dst = v
		}
	}
	if *roles != "" {
		cfg.Roles = splitRoles(*roles)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid config:\n%w", err)
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	return runServe(ctx, cfg, log, nil)
}

// listening is where serve's listeners accept connections.
type listening struct {
	Ingest string // providers; empty without the ingest role
	Admin  string // on-call
}

// runServe runs the roles of cfg until ctx is cancelled, then shuts down in order:
// stop taking provider requests, stop taking delivery jobs and let running attempts
// finish (cut short and handed back shortly before cfg.ShutdownTimeout), drain NATS,
// close Redis. ready, if not nil, receives the listeners' addresses once they accept
// connections (tests). Every process serves the admin listener, whatever its roles.
func runServe(ctx context.Context, cfg *Config, log *zap.Logger, ready chan<- listening) error {
	roles := cfg.roleSet()
	deps, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer deps.close(log)
	deps.metrics = metrics.New()

	// Delivery runs first so its workers are up before providers are let in; it stops
	// after the listener (SPEC §10: stop taking requests, then finish attempts).
	dctx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDelivery()
	dl, err := startDelivery(dctx, cfg, deps, roles, log)
	if err != nil {
		return err
	}
	defer dl.store.Close() // after the admin listener, which reads the schedule too
	ic, err := cfg.ingestConfig()
	if err != nil {
		return err
	}
	ic.Logger, ic.Observer = log, deps.metrics
	marker := ingest.NewRedisMarker(deps.rdb, rkeys.Keyspace{Prefix: cfg.Redis.Prefix})
	defer marker.Close() // after the listener has drained (defers run last-in first-out)
	// The handler is built in every process: the admin API reprocesses rejected bodies
	// through it.
	h, err := ingest.New(ic, deps.ingestJS, marker)
	if err != nil {
		return err
	}
	adminSrv, adminLn, err := startAdmin(ctx, cfg, deps, dl, h, log)
	if err != nil {
		return err
	}
	defer adminSrv.close()
	defer adminLn.Close() // if returning before it is served (Shutdown closes it otherwise)
	serveErr := make(chan error, 2)
	var srv *http.Server
	addrs := listening{Admin: adminLn.Addr().String()}
	if roles[RoleIngest] {
		srv = ingest.NewServer(cfg.Listen, h)
		srv.ErrorLog = httpErrorLog(log, "provider")
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
		addrs.Ingest = ln.Addr().String()
		log.Info("receiving provider webhooks", zap.String("listen", addrs.Ingest), zap.Int("sources", len(cfg.Sources)))
		go func() { serveErr <- fmt.Errorf("provider listener: %w", srv.Serve(ln)) }()
	}
	go func() { serveErr <- fmt.Errorf("admin listener: %w", adminSrv.http.Serve(adminLn)) }()
	log.Info("serving", zap.Strings("roles", roleNames(roles)))
	if ready != nil {
		ready <- addrs
	}

	var runErr error // a listener that failed; the shutdown below still runs in order
	select {
	case runErr = <-serveErr:
		log.Error("a listener failed; shutting down", zap.Error(runErr))
	case <-ctx.Done():
	}
	bound := cfg.ShutdownTimeout.D()
	log.Info("shutting down: no new requests; finishing in-flight ones", zap.Duration("bound", bound))
	start := time.Now()
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(bound))
	defer cancel()
	// Attempts still running at handBackAt are handed back; the provider listener's
	// drain ends by then too, so a slow upload cannot push the hand-back past the bound.
	handBackAt := start.Add(max(bound-handBackMargin, bound/2))
	if srv != nil {
		pctx, pcancel := context.WithDeadline(sctx, handBackAt)
		if err := srv.Shutdown(pctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("provider listener did not drain in time", zap.Error(err))
		}
		pcancel()
	}
	stopDelivery()
	handBack := time.NewTimer(time.Until(handBackAt))
	defer handBack.Stop()
	select {
	case <-dl.done:
	case <-handBack.C:
		log.Warn("attempts still running at the shutdown bound are cut short and handed back; they are attempted again at once, elsewhere or after a restart")
		dl.handBack()
		select {
		case <-dl.done:
		case <-sctx.Done():
			log.Warn("delivery did not stop in time; unfinished attempts come again after restart")
		}
	}
	// The admin listener stays up until delivery has stopped, so /readyz and /metrics
	// answer during the drain.
	if err := adminSrv.http.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("admin listener did not drain in time", zap.Error(err))
	}
	// Events whose PubAck came after their provider was told 503 are marked seen
	// before the marker closes (deferred above), within what is left of the bound.
	if n := h.WaitLateAcks(sctx); n > 0 {
		log.Warn("events stored after their provider was told to retry may have no seen marker; a retry after JetStream's duplicate window stores them again",
			zap.Int("events", n))
	}
	return runErr
}

func roleNames(roles map[string]bool) []string {
	var out []string
	for _, r := range allRoles {
		if roles[r] {
			out = append(out, r)
		}
	}
	return out
}

// delivery is what startDelivery runs; the admin API reads and changes it.
type delivery struct {
	done      <-chan struct{} // closed when all have stopped
	endpoints *deliver.EndpointStore
	store     *schedule.Store
	sched     *schedule.Scheduler // nil without the schedule role
	worker    *deliver.Worker     // nil without the deliver role
	wake      *wake
	index     *deliver.EventIndex
	set       *deliver.EndpointSet
}

// A worker marks its jobs in progress every jobKeepAlive, so a worker that dies (a
// SIGKILL, a lost machine) leaves its jobs to the others within jobAckWait, whatever
// delivery.timeout is (hookload's fault runs showed 2 minutes without it).
const (
	jobAckWait   = 15 * time.Second
	jobKeepAlive = 5 * time.Second
)

// wake is the schedule's Notifier across processes. It wakes this process's schedule
// loop at once, and every schedule process's through a core NATS message (a loop
// asleep elsewhere would otherwise look only within schedule.WakeHorizon: hookload's
// fault runs, with the roles in separate processes and a compressed schedule, saw
// retries start up to a second late).
type wake struct {
	nc      *nats.Conn
	subject string
	local   *schedule.Scheduler // nil without the schedule role
}

func (w *wake) Notify() {
	if w.local != nil {
		w.local.Notify()
	}
	_ = w.nc.Publish(w.subject, nil) // best effort: without it, the horizon still holds
}

// handBack cuts short the attempts still running (see deliver.Worker.HandBack).
func (d *delivery) handBack() {
	if d.worker != nil {
		d.worker.HandBack()
	}
}

// startDelivery seeds the configured endpoints and opens the stores every role reads,
// then runs what roles ask for until ctx ends: fan-out and the workers (deliver), the
// schedule loop (schedule). done closes when all have stopped (in-flight attempts
// finished and recorded, or handed back).
func startDelivery(ctx context.Context, cfg *Config, d *deps, roles map[string]bool, log *zap.Logger) (_ *delivery, err error) {
	topo := natsx.Topology{}
	eps, err := cfg.endpoints()
	if err != nil {
		return nil, err
	}
	endpoints, err := deliver.OpenEndpointStore(ctx, d.js, topo.EndpointsBucket(), cfg.NATS.Replicas, nil)
	if err != nil {
		return nil, err
	}
	kept, err := endpoints.Seed(ctx, eps)
	if err != nil {
		return nil, err
	}
	if len(kept) > 0 {
		log.Info("endpoints already in the run-time store keep their stored settings", zap.Strings("ids", kept))
	}
	set, err := endpoints.Watch(ctx)
	if err != nil {
		return nil, err
	}
	streams := cfg.streamConfig().WithDefaults()
	store, err := schedule.NewStore(d.rdb, schedule.StoreConfig{
		Keys: rkeys.Keyspace{Prefix: cfg.Redis.Prefix}, Policy: cfg.retryPolicy(), KeepDead: streams.DeadMaxAge,
	})
	if err != nil {
		return nil, err
	}
	keys := rkeys.Keyspace{Prefix: cfg.Redis.Prefix}
	index := deliver.NewEventIndex(d.rdb, keys, streams.EventsMaxAge)
	dl := &delivery{endpoints: endpoints, store: store, index: index, set: set}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	runs := map[string]func(context.Context) error{}
	if roles[RoleSchedule] {
		disp, err := deliver.NewDispatcher(ctx, deliver.DispatcherConfig{JS: d.js, Topology: topo, Endpoints: set, Store: store, Logger: log, Observer: d.metrics})
		if err != nil {
			return nil, err
		}
		if dl.sched, err = schedule.New(schedule.Config{Store: store, Dispatch: disp, Parallel: 32, Logger: log, Observer: d.metrics}); err != nil {
			return nil, err
		}
		runs["schedule"] = dl.sched.Run
		// The subscription lives as long as the connection; a Notify after the loop
		// has stopped is a no-op.
		if _, err := d.nc.Subscribe(topo.ScheduleWakeSubject(), func(*nats.Msg) { dl.sched.Notify() }); err != nil {
			return nil, err
		}
		// The schedule's sizes describe the shared Redis: reported by the processes
		// that run the schedule, not by every one.
		d.metrics.ScrapeGauges(map[string]string{
			"hookrelay_pending_retries":   "Deliveries waiting in Redis for a retry (or a replay) to come due.",
			"hookrelay_dead_letters_open": "Dead deliveries not replayed since, within the dead letters' max age.",
		}, 5*time.Second, func(ctx context.Context) (map[string]float64, error) {
			c, err := store.Count(ctx, time.Now())
			if err != nil {
				return nil, err
			}
			return map[string]float64{"hookrelay_pending_retries": float64(c.Pending), "hookrelay_dead_letters_open": float64(c.Dead)}, nil
		})
	}
	dl.wake = &wake{nc: d.nc, subject: topo.ScheduleWakeSubject(), local: dl.sched}
	var sender *deliver.Sender
	if roles[RoleDeliver] {
		fan, err := deliver.NewFanout(ctx, deliver.FanoutConfig{JS: d.js, Topology: topo, Endpoints: set, Schedule: store, Index: index, Logger: log, Observer: d.metrics})
		if err != nil {
			return nil, err
		}
		allow, err := cfg.deliveryAllow()
		if err != nil {
			return nil, err
		}
		if sender, err = deliver.NewSender(deliver.SenderConfig{Guard: deliver.NewGuard(allow), Timeout: cfg.Delivery.Timeout.D()}); err != nil {
			return nil, err
		}
		if dl.worker, err = deliver.NewWorker(deliver.WorkerConfig{
			JS: d.js, Topology: topo, Endpoints: set, Store: store, Sender: sender, Notify: dl.wake, Logger: log,
			Observer: d.metrics, AckWait: jobAckWait, KeepAlive: jobKeepAlive,
		}); err != nil {
			return nil, err
		}
		runs["fan-out"], runs["deliver"] = fan.Run, dl.worker.Run
	}
	done := make(chan struct{})
	dl.done = done
	var wg sync.WaitGroup
	for name, run := range runs {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				log.Error(name+" stopped", zap.Error(err))
			}
		})
	}
	go func() {
		wg.Wait()
		if sender != nil {
			sender.Close()
		}
		close(done)
	}()
	if roles[RoleDeliver] {
		log.Info("delivering to merchant endpoints", zap.Int("endpoints", len(set.All())), zap.Int("max_attempts", store.Policy().MaxAttempts()))
	}
	return dl, nil
}

// adminServer is the on-call API and its listener's server.
type adminServer struct {
	api  *admin.Server
	http *http.Server
}

func (a *adminServer) close() { a.api.Close() }

// startAdmin builds the admin API (SPEC §8) and listens on admin.listen; Serve is the
// caller's.
func startAdmin(ctx context.Context, cfg *Config, d *deps, dl *delivery, h *ingest.Handler, log *zap.Logger) (*adminServer, net.Listener, error) {
	topo := natsx.Topology{}
	letters, err := deliver.NewDeadLetterStore(ctx, deliver.DeadLetterConfig{
		JS: d.js, Topology: topo, Schedule: dl.store, Endpoints: dl.endpoints, Notify: dl.wake,
	})
	if err != nil {
		return nil, nil, err
	}
	events, err := deliver.NewEvents(ctx, deliver.EventsConfig{JS: d.js, Topology: topo, Index: dl.index, Schedule: dl.store, Endpoints: dl.endpoints})
	if err != nil {
		return nil, nil, err
	}
	quarantine, err := ingest.NewQuarantine(ctx, d.js, h)
	if err != nil {
		return nil, nil, err
	}
	redriver, err := deliver.NewRedriver(ctx, deliver.RedriveConfig{
		JS: d.js, Topology: topo, Endpoints: dl.set, Schedule: dl.store, Index: dl.index, Notify: dl.wake,
	})
	if err != nil {
		return nil, nil, err
	}
	api, err := admin.New(admin.Config{
		Rejected: quarantine, Redrive: redriver,
		Token: cfg.Admin.Token, Endpoints: dl.endpoints, Letters: letters, Events: events, Live: dl.set, Logger: log,
		Ready: admin.Readiness(d.nc, d.rdb), Metrics: d.metrics.Handler(zap.NewStdLog(log.Named("metrics"))),
	})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		api.Close()
		return nil, nil, fmt.Errorf("listen %s (admin): %w", cfg.Admin.Listen, err)
	}
	log.Info("on-call admin API", zap.String("listen", ln.Addr().String()))
	hs := api.HTTPServer(cfg.Admin.Listen)
	hs.ErrorLog = httpErrorLog(log, "admin")
	return &adminServer{api: api, http: hs}, ln, nil
}

// httpErrorLog sends an http.Server's own messages (TLS and protocol errors, a handler
// panic) to zap as warnings, so they are JSON lines like the rest, not plain text on
// stderr.
func httpErrorLog(log *zap.Logger, listener string) *stdlog.Logger {
	l, _ := zap.NewStdLogAt(log.Named("http").With(zap.String("listener", listener)), zapcore.WarnLevel) // errs only for an invalid level
	return l
}

// deps are the connections every role needs, and the metrics they all feed.
type deps struct {
	metrics *metrics.Metrics
	ns      *server.Server // embedded JetStream, if any
	nc      *nats.Conn
	js      jetstream.JetStream // async publishes give up after the publish timeout
	// ingestJS is the receivers' (ingest.NewJetStream): async publishes wait longer,
	// for a late PubAck.
	ingestJS jetstream.JetStream
	rdb      *redis.Client
	mini     *miniredis.Miniredis // embedded Redis, if any
}

// connect starts or reaches NATS and Redis, retrying with backoff for up to a minute,
// and creates or updates the streams.
func connect(ctx context.Context, cfg *Config, log *zap.Logger) (_ *deps, err error) {
	d := &deps{}
	defer func() {
		if err != nil {
			d.close(log)
		}
	}()
	retry := func(what string, op func() error) error {
		b := backoff.NewExponentialBackOff()
		b.MaxElapsedTime = time.Minute
		return backoff.RetryNotify(op, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
			log.Warn(what+" failed; retrying", zap.Error(err), zap.Duration("in", wait))
		})
	}
	natsOpts := []nats.Option{
		nats.Name("hookrelay"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil on a deliberate close or drain
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted())) }),
	}
	if cfg.NATS.URL == "" {
		if err := os.MkdirAll(cfg.NATS.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("nats data dir: %w", err)
		}
		d.ns, err = natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: cfg.NATS.DataDir})
		if err != nil {
			return nil, err
		}
		log.Info("embedded JetStream started", zap.String("data_dir", cfg.NATS.DataDir))
		if d.nc, err = natsx.ConnectEmbedded(d.ns, natsOpts...); err != nil {
			return nil, fmt.Errorf("connect embedded nats: %w", err)
		}
	} else if err := retry("connect to NATS", func() error {
		d.nc, err = nats.Connect(cfg.NATS.URL, natsOpts...)
		return err
	}); err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	if v := d.nc.ConnectedServerVersion(); natsx.OlderThan(v, natsx.MinServerVersion) {
		log.Warn("nats-server older than "+natsx.MinServerVersion+": under load it can leave a consumer's pull unanswered, which stalls fan-out or an endpoint's deliveries until the pull is made again (up to 30 s); upgrade the server",
			zap.String("server_version", v))
	}
	publishTimeout := cfg.Ingest.PublishTimeout.D()
	if publishTimeout <= 0 {
		publishTimeout = ingest.DefaultPublishTimeout
	}
	if d.js, err = natsx.NewJetStream(d.nc, publishTimeout, natsx.DefaultMaxPendingAcks); err != nil {
		return nil, err
	}
	// The receivers' own context keeps a PubAck that comes after its request gave up,
	// so the stored event still gets its seen marker.
	if d.ingestJS, err = ingest.NewJetStream(d.nc, publishTimeout); err != nil {
		return nil, err
	}
	if err := retry("create streams", func() error {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return natsx.EnsureStreams(sctx, d.js, natsx.Topology{}, cfg.streamConfig())
	}); err != nil {
		return nil, err
	}

	redisURL := cfg.Redis.URL
	if redisURL == "" {
		if d.mini, err = miniredis.Run(); err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		redisURL = "redis://" + d.mini.Addr()
		log.Warn("!!! EMBEDDED IN-MEMORY REDIS: retry state and seen markers are lost when this process stops. " +
			"Set REDIS_URL (or redis.url) for anything but a demo. !!!")
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	d.rdb = redis.NewClient(opt)
	if err := retry("reach Redis", func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return d.rdb.Ping(pctx).Err()
	}); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return d, nil
}

func (d *deps) close(log *zap.Logger) {
	if d.nc != nil {
		if err := d.nc.Drain(); err != nil {
			log.Warn("nats drain", zap.Error(err))
		}
		// Drain is asynchronous; give it a bounded moment to flush pending acks.
		for deadline := time.Now().Add(5 * time.Second); !d.nc.IsClosed() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if d.ns != nil {
		d.ns.Shutdown()
		d.ns.WaitForShutdown()
	}
	if d.rdb != nil {
		_ = d.rdb.Close()
	}
	if d.mini != nil {
		d.mini.Close()
	}
}

func newLogger(c LogConfig) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.DisableStacktrace = true
	return zc.Build()
}
