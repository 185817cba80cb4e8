package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/parse"
)

// Publisher stores messages durably: jetstream.JetStream is one. The asynchronous form
// is used because it multiplexes many waiting publishes over one reply subscription:
// twice the throughput of the synchronous request per publish (BENCHMARKS.md). Its
// JetStream context should have a publish-async timeout (NewJetStream) so a
// future nobody waits for any more is cleaned up.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Marker remembers, past JetStream's duplicate window, which events were stored.
type Marker interface {
	// Seen reports whether MarkSeen was called for the event id.
	Seen(ctx context.Context, eventID string) (bool, error)
	// MarkSeen records that the event is durably stored at stream sequence seq.
	MarkSeen(ctx context.Context, eventID string, seq uint64) error
}

var (
	_ Publisher = (jetstream.JetStream)(nil)
	_ Marker    = (*RedisMarker)(nil)
)

// Handler serves POST /ingest/{provider}/{source} (and GET for Paytia).
type Handler struct {
	cfg     Config
	js      Publisher
	marker  Marker
	log     *zap.Logger
	sources map[string]*source
	mux     *http.ServeMux
	// marking counts the events whose seen marker may still be written: stores in
	// progress and markWhenStored goroutines still waiting (WaitLateAcks).
	marking atomic.Int64
}

// New returns a Handler publishing through js and remembering events in marker.
func New(cfg Config, js Publisher, marker Marker) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	if js == nil || marker == nil {
		return nil, errors.New("ingest: a publisher and a marker are required")
	}
	cfg = cfg.withDefaults()
	h := &Handler{
		cfg:     cfg,
		js:      js,
		marker:  marker,
		log:     cfg.Logger.Named("ingest"),
		sources: make(map[string]*source, len(cfg.Sources)),
		mux:     http.NewServeMux(),
	}
	for _, s := range cfg.Sources {
		h.sources[s.ID] = newSource(s)
	}
	h.mux.HandleFunc("/ingest/{provider}/{source}", h.serveIngest)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apierr.Write(w, apierr.New(apierr.NotFound, "no route "+r.URL.Path+"; providers post to /ingest/{provider}/{source}"))
	})
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Response is the body of a 200: the event id, and whether the callback had already
// been stored (a provider retry).
type Response struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

func (h *Handler) serveIngest(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Clock.Now()
	src, outcome := h.ingest(w, r)
	provider, source := "unknown", "unknown"
	if src != nil {
		provider, source = src.Provider, src.ID
	}
	h.cfg.Observer.IngestRequest(provider, source, outcome, h.cfg.Clock.Now().Sub(start))
}

// ingest answers one provider request; it returns the source (nil when the URL names
// none) and the outcome: "accepted", "duplicate", or the answer's error code.
func (h *Handler) ingest(w http.ResponseWriter, r *http.Request) (*source, string) {
	src, aerr := h.admit(w, r)
	if aerr != nil {
		return src, writeError(w, aerr)
	}
	raw, aerr := h.readInput(w, r, src)
	if aerr != nil {
		return src, writeError(w, aerr)
	}
	receivedAt := h.cfg.Clock.Now()
	ev, err := parseInput(src, raw, receivedAt)
	if err != nil {
		return src, writeError(w, h.reject(r, src, raw, receivedAt, err))
	}
	resp, aerr := h.store(r.Context(), ev)
	if aerr != nil {
		return src, writeError(w, aerr)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
	if resp.Duplicate {
		return src, "duplicate"
	}
	return src, "accepted"
}

func writeError(w http.ResponseWriter, e *apierr.Error) string {
	apierr.Write(w, e)
	return string(e.Code)
}

// admit resolves the source and checks method, client network and credentials.
// Nothing is stored for a request it refuses. The source is returned with an error
// too when the URL names a configured one (metrics label it).
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (*source, *apierr.Error) {
	provider := r.PathValue("provider")
	if provider != parse.ProviderPayMaya && provider != parse.ProviderPaytia {
		return nil, apierr.New(apierr.IngestUnknownProvider, fmt.Sprintf("unknown provider %q; want paymaya or paytia", provider))
	}
	src := h.sources[r.PathValue("source")]
	if src == nil || src.Provider != provider {
		return nil, apierr.New(apierr.IngestUnknownSource, fmt.Sprintf("no %s source %q", provider, r.PathValue("source")))
	}
	allowed := http.MethodPost
	if provider == parse.ProviderPaytia {
		allowed = "GET, POST"
	}
	if r.Method != http.MethodPost && !(provider == parse.ProviderPaytia && r.Method == http.MethodGet) {
		w.Header().Set("Allow", allowed)
		return src, apierr.New(apierr.MethodNotAllowed, r.Method+" is not accepted here; use "+allowed)
	}
	if len(src.allow) > 0 && !inAny(src.allow, clientAddr(r, h.cfg.TrustedProxies)) {
		return src, apierr.New(apierr.IngestForbiddenClient, "this client address may not post to source "+src.ID)
	}
	if !src.authenticated(r) {
		return src, apierr.New(apierr.IngestUnauthorized, "missing or wrong source token (HTTP Basic password, Bearer, or ?token=)")
	}
	return src, nil
}

// input is what a provider sent: the body, or for a Paytia GET the query string.
type input struct {
	method string
	body   []byte
	query  string // raw query with the token removed
}

// readInput checks the content type and reads the body within the size limit.
func (h *Handler) readInput(w http.ResponseWriter, r *http.Request, src *source) (input, *apierr.Error) {
	in := input{method: r.Method, query: withoutToken(r.URL.RawQuery)}
	if r.Method == http.MethodGet {
		return in, nil
	}
	want := "application/json"
	if src.Provider == parse.ProviderPaytia {
		want = "application/x-www-form-urlencoded"
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != want {
		return in, apierr.New(apierr.IngestUnsupportedMedia, fmt.Sprintf("Content-Type %q is not accepted from %s; send %s", r.Header.Get("Content-Type"), src.Provider, want))
	}
	limit := h.cfg.MaxBodyBytes
	tooLarge := func() *apierr.Error { // built only when needed: this is every request's path
		return apierr.New(apierr.IngestBodyTooLarge, "body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
	}
	if r.ContentLength > limit {
		return in, tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return in, tooLarge()
		}
		// The client went away or the read timed out: nothing complete to keep.
		return in, apierr.New(apierr.IngestReadFailed, "could not read the body: "+err.Error())
	}
	in.body = body
	return in, nil
}

func parseInput(src *source, in input, receivedAt time.Time) (*parse.Event, error) {
	if src.Provider == parse.ProviderPayMaya {
		return parse.PayMaya(in.body, src.Source, receivedAt)
	}
	raw := string(in.body)
	if in.method == http.MethodGet {
		raw = in.query
	}
	form, err := parse.Form(raw)
	if err != nil {
		return nil, err
	}
	return parse.Paytia(form, src.Source, receivedAt)
}

// store publishes the event unless it is known already, and marks it seen after the
// PubAck. It answers success only with a PubAck in hand.
func (h *Handler) store(ctx context.Context, ev *parse.Event) (Response, *apierr.Error) {
	if seen, err := h.seen(ctx, ev.ID); err != nil {
		// Redis is an optimisation here: JetStream's duplicate window still dedupes.
		h.log.Warn("seen marker look-up failed; publishing anyway", zap.String("event_id", ev.ID), zap.Error(err))
	} else if seen {
		return Response{ID: ev.ID, Duplicate: true}, nil
	}
	data, err := json.Marshal(ev)
	if err != nil {
		h.log.Error("marshal event", zap.String("event_id", ev.ID), zap.Error(err))
		return Response{}, apierr.New(apierr.Internal, "could not encode the event")
	}
	msg := &nats.Msg{
		Subject: h.cfg.Topology.EventSubject(ev.Provider, ev.Source, ev.Type),
		Data:    data,
		Header:  nats.Header{},
	}
	// The wait for the PubAck does not end when the provider hangs up: an event stored
	// after that must still get its seen marker, or a retry past JetStream's duplicate
	// window would store it twice. PublishTimeout still bounds the wait.
	bg := context.WithoutCancel(ctx)
	// Counted from here, not only once a late PubAck is waited for: a request still
	// storing when the listener's drain is cut short must not find the marker closed.
	h.marking.Add(1)
	defer h.marking.Add(-1)
	ack, aerr := h.publish(bg, msg, h.cfg.Topology.EventsStream(), ev.ID, true)
	if aerr != nil {
		return Response{}, aerr
	}
	// The event is durable; the marker only answers retries past the duplicate window,
	// so a failure here is logged, not returned, and never undoes the 200.
	h.markSeen(bg, ev.ID, ack.Sequence, false)
	return Response{ID: ev.ID, Duplicate: ack.Duplicate}, nil
}

// markSeen records that event id is stored at seq, within SeenTimeout; a failure is
// logged (late: after a PubAck that came after its request had given up).
func (h *Handler) markSeen(ctx context.Context, id string, seq uint64, late bool) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.SeenTimeout)
	defer cancel()
	if err := h.marker.MarkSeen(ctx, id, seq); err != nil {
		h.log.Warn("set seen marker", zap.String("event_id", id), zap.Bool("late", late), zap.Error(err))
	}
}

func (h *Handler) seen(ctx context.Context, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.SeenTimeout)
	defer cancel()
	return h.marker.Seen(ctx, id)
}

// publish sends msg with Nats-Msg-Id msgID to the stream its subject belongs to and
// waits for the PubAck, at most PublishTimeout. If the wait ends first and markLate is
// set, event msgID is marked seen should its PubAck still come (markWhenStored).
func (h *Handler) publish(ctx context.Context, msg *nats.Msg, stream, msgID string, markLate bool) (*jetstream.PubAck, *apierr.Error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	ack, err := h.awaitAck(ctx, msg, msgID, markLate)
	if err == nil {
		return ack, nil
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return nil, apierr.New(apierr.IngestBodyTooLarge, "the request is too large for the message store")
	}
	h.cfg.Observer.PublishFailed(stream)
	h.log.Warn("publish failed; provider told to retry", zap.String("subject", msg.Subject), zap.String("msg_id", msgID), zap.Error(err))
	e := apierr.New(apierr.IngestStorageUnavailable, "the event could not be stored durably; retry later")
	e.RetryAfter = h.cfg.RetryAfter
	return nil, e
}

// awaitAck publishes msg and waits for its PubAck until ctx ends.
func (h *Handler) awaitAck(ctx context.Context, msg *nats.Msg, msgID string, markLate bool) (*jetstream.PubAck, error) {
	// PublishMsgAsync blocks only while too many acks are pending, for at most its stall
	// wait, which is shorter than any sensible publish timeout.
	fut, err := h.js.PublishMsgAsync(msg, jetstream.WithMsgID(msgID))
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-fut.Ok():
		return ack, nil
	case err := <-fut.Err():
		return nil, err
	case <-ctx.Done():
		if markLate {
			h.marking.Add(1) // before the store's own count ends
			go func() {
				defer h.marking.Add(-1)
				h.markWhenStored(fut, msgID)
			}()
		}
		return nil, fmt.Errorf("no PubAck: %w", ctx.Err())
	}
}

// LateAckWait is how long after its request gave up a PubAck may still come and mark
// its event seen. The JetStream context's asynchronous publish timeout must cover
// PublishTimeout plus this (NewJetStream), or the client drops the late PubAck.
const LateAckWait = time.Minute

// NewJetStream is the JetStream context a Handler publishes through: its asynchronous
// publishes wait publishTimeout + LateAckWait for their PubAck, so one that comes after
// the request's own PublishTimeout still reaches markWhenStored.
func NewJetStream(nc *nats.Conn, publishTimeout time.Duration) (jetstream.JetStream, error) {
	return natsx.NewJetStream(nc, publishTimeout+LateAckWait, natsx.DefaultMaxPendingAcks)
}

// WaitLateAcks waits until every event being stored has been marked seen: requests
// still storing (a listener's drain cut short leaves them running), and events whose
// request gave up before their PubAck came (until marked, their PubAck failed, or
// LateAckWait passed); or until ctx ends, and returns how many were still waiting
// then. A shutdown calls it after the listeners have stopped and before the marker is
// closed: a PubAck that arrives after the marker is closed leaves its event unmarked,
// and the provider's retry (it was told 503) stores it again if it comes after
// JetStream's duplicate window.
func (h *Handler) WaitLateAcks(ctx context.Context) int {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		n := int(h.marking.Load())
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// markWhenStored marks an event seen if its PubAck arrives after its request gave up
// (the provider was told 503): the event is stored, and the provider's retry, maybe
// past JetStream's duplicate window, must find the marker. The future ends with the
// JetStream context's publish timeout at the latest; the timer is a bound for a
// Publisher without one.
func (h *Handler) markWhenStored(fut jetstream.PubAckFuture, id string) {
	t := time.NewTimer(LateAckWait)
	defer t.Stop()
	select {
	case ack := <-fut.Ok():
		h.markSeen(context.Background(), id, ack.Sequence, true)
	case <-fut.Err():
	case <-t.C:
	}
}
