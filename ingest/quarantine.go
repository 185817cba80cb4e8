package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/apierr"
)

// ErrRejectionNotFound: no kept request has this sequence.
var ErrRejectionNotFound = errors.New("ingest: rejected request not found")

// Rejection is a request kept on HOOKRELAY_REJECTED, as the admin API shows it.
type Rejection struct {
	Seq uint64 `json:"seq"`
	RejectedRequest
	Body string `json:"body"` // the request body as sent (providers send text: JSON or a form)
}

// Outcomes of Reprocess.
const (
	Reprocessed   = "stored"         // the current parser accepts it: the event is stored
	WasDuplicate  = "duplicate"      // accepted, and the event was stored before
	StillRejected = "still_rejected" // the current parser refuses it too
)

// ReprocessResult is what reprocessing one kept request did.
type ReprocessResult struct {
	Seq     uint64        `json:"seq"`
	Outcome string        `json:"outcome"`
	EventID string        `json:"event_id,omitempty"`
	Error   *apierr.Error `json:"error,omitempty"` // why it is still rejected
}

// Quarantine reads HOOKRELAY_REJECTED and runs kept requests through the current
// parser, so a parser fix recovers what providers sent while it was broken. A
// reprocessed request is stored as the provider's own retry would be: with its
// original received time, deduplicated by event id, never twice.
type Quarantine struct {
	h      *Handler
	stream jetstream.Stream
}

// NewQuarantine opens HOOKRELAY_REJECTED for h (whose sources and publisher it uses).
func NewQuarantine(ctx context.Context, js jetstream.JetStream, h *Handler) (*Quarantine, error) {
	st, err := js.Stream(ctx, h.cfg.Topology.RejectedStream())
	if err != nil {
		return nil, fmt.Errorf("rejected stream: %w", err)
	}
	return &Quarantine{h: h, stream: st}, nil
}

// Get returns the kept request with sequence seq.
func (q *Quarantine) Get(ctx context.Context, seq uint64) (Rejection, error) {
	if seq == 0 {
		return Rejection{}, ErrRejectionNotFound
	}
	m, err := q.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Rejection{}, ErrRejectionNotFound
	}
	if err != nil {
		return Rejection{}, fmt.Errorf("read rejected %d: %w", seq, err)
	}
	return decodeRejection(m)
}

func decodeRejection(m *jetstream.RawStreamMsg) (Rejection, error) {
	r := Rejection{Seq: m.Sequence, Body: string(m.Data)}
	if err := json.Unmarshal([]byte(m.Header.Get(RejectedHeader)), &r.RejectedRequest); err != nil {
		return Rejection{}, fmt.Errorf("rejected %d: no readable %s header: %w", m.Sequence, RejectedHeader, err)
	}
	return r, nil
}

// List returns up to limit kept requests of source (all sources when empty) with
// sequences above after, oldest first, and the cursor for more (0 when none).
func (q *Quarantine) List(ctx context.Context, source string, after uint64, limit int) ([]Rejection, uint64, error) {
	var out []Rejection
	next, err := q.Scan(ctx, source, after, func(r Rejection) bool {
		out = append(out, r)
		return len(out) < limit
	})
	return out, next, err
}

// Scan calls fn for each kept request of source (all when empty) above after, oldest
// first, until fn returns false or the stream as it was when Scan began is exhausted;
// it returns the sequence to continue after (0 when exhausted).
func (q *Quarantine) Scan(ctx context.Context, source string, after uint64, fn func(Rejection) bool) (uint64, error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("rejected stream: %w", err)
	}
	last := info.State.LastSeq
	subject := q.h.cfg.Topology.RejectedSubject("*", "*")
	if source != "" {
		subject = q.h.cfg.Topology.RejectedSubject("*", source)
	}
	for seq := max(after+1, info.State.FirstSeq); seq <= last; {
		m, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read rejected from %d: %w", seq, err)
		}
		if m.Sequence > last {
			return 0, nil
		}
		seq = m.Sequence + 1
		r, err := decodeRejection(m)
		if err != nil {
			continue
		}
		if !fn(r) {
			if m.Sequence >= last {
				return 0, nil
			}
			return m.Sequence, nil
		}
	}
	return 0, nil
}

// Reprocess runs kept request seq through the current parser and, if it is accepted
// now, stores its event like a fresh callback received at the original time.
func (q *Quarantine) Reprocess(ctx context.Context, seq uint64) (ReprocessResult, error) {
	r, err := q.Get(ctx, seq)
	if err != nil {
		return ReprocessResult{}, err
	}
	return q.reprocess(ctx, r)
}

func (q *Quarantine) reprocess(ctx context.Context, r Rejection) (ReprocessResult, error) {
	res := ReprocessResult{Seq: r.Seq}
	src := q.h.sources[r.Source]
	if src == nil || src.Provider != r.Provider {
		res.Outcome = StillRejected
		res.Error = apierr.New(apierr.IngestUnknownSource, fmt.Sprintf("no %s source %q in the configuration now", r.Provider, r.Source))
		return res, nil
	}
	ev, err := parseInput(src, input{method: r.Method, body: []byte(r.Body), query: r.Query}, r.ReceivedAt.Time)
	if err != nil {
		res.Outcome, res.Error = StillRejected, parseAnswer(err)
		return res, nil
	}
	resp, aerr := q.h.store(ctx, ev)
	if aerr != nil {
		return res, aerr
	}
	res.EventID = resp.ID
	res.Outcome = Reprocessed
	if resp.Duplicate {
		res.Outcome = WasDuplicate
	}
	q.h.log.Info("rejected request reprocessed", zap.Uint64("seq", r.Seq), zap.String("source", r.Source),
		zap.String("outcome", res.Outcome), zap.String("event_id", res.EventID))
	return res, nil
}

// ReprocessAll reprocesses the kept requests of source (all sources when empty) after
// sequence after, at most limit, and returns each result in order; more says the
// limit stopped it with requests left (go on after the last result's Seq).
func (q *Quarantine) ReprocessAll(ctx context.Context, source string, after uint64, limit int) (_ []ReprocessResult, more bool, _ error) {
	var out []ReprocessResult
	var ferr error
	next, err := q.Scan(ctx, source, after, func(r Rejection) bool {
		res, err := q.reprocess(ctx, r)
		if err != nil {
			ferr = err
			return false
		}
		out = append(out, res)
		return len(out) < limit
	})
	if err == nil {
		err = ferr
	}
	return out, next != 0 && err == nil, err
}
