package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/internal/natsx"
)

// letterError maps the dead-letter store's errors to answers.
func letterError(seq string, err error) *apierr.Error {
	switch {
	case errors.Is(err, deliver.ErrDeadLetterNotFound):
		return apierr.New(apierr.AdminNotFound, "no dead letter "+seq)
	case errors.Is(err, deliver.ErrAlreadyReplayed):
		return apierr.New(apierr.AdminAlreadyDone, "dead letter "+seq+" was already replayed; its delivery is no longer dead from that schedule")
	case errors.Is(err, deliver.ErrNotReplayable):
		// err reads "deliver: dead letter cannot be replayed: <why>"; keep the why.
		why := strings.TrimPrefix(err.Error(), deliver.ErrNotReplayable.Error()+": ")
		return apierr.New(apierr.AdminConflict, "dead letter "+seq+" cannot be replayed: "+why)
	}
	return internal("dead letter "+seq, err)
}

// letterFilter reads the dead-letter filters of SPEC §8 from the query.
func letterFilter(r *http.Request, fe *filterErrors) deliver.LetterFilter {
	q := r.URL.Query()
	f := deliver.LetterFilter{Endpoint: q.Get("endpoint"), Type: q.Get("type"), State: q.Get("state")}
	f.Since = timeParam(r, "since", fe)
	f.Until = timeParam(r, "until", fe)
	checkFilter(f, fe)
	return f
}

func checkFilter(f deliver.LetterFilter, fe *filterErrors) {
	if f.Endpoint != "" && !natsx.ValidID(f.Endpoint) {
		fe.add("endpoint", "not an endpoint id")
	}
	if f.State != "" && f.State != deliver.LetterOpen && f.State != deliver.LetterReplayed {
		fe.add("state", "want open or replayed")
	}
	if f.Type != "" && !strings.Contains(f.Type, ".") {
		fe.add("type", "want an event type such as payment.failed")
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		fe.add("until", "must be after since")
	}
}

func (s *Server) listLetters(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var fe filterErrors
	f := letterFilter(r, &fe)
	limit := limitParam(r, &fe)
	after := cursorParam(r, 'd', &fe)
	if e := fe.err(); e != nil {
		return e
	}
	letters, next, err := s.cfg.Letters.List(r.Context(), f, after, limit)
	if err != nil {
		return internal("list dead letters", err)
	}
	writeJSON(w, http.StatusOK, seqPage(letters, 'd', next))
	return nil
}

// seqParam reads a dead letter's id (its stream sequence) from the path.
func seqParam(r *http.Request) (uint64, string) {
	v := r.PathValue("seq")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, v
	}
	return n, v
}

func (s *Server) getLetter(w http.ResponseWriter, r *http.Request) *apierr.Error {
	seq, raw := seqParam(r)
	l, err := s.cfg.Letters.Get(r.Context(), seq)
	if err != nil {
		return letterError(raw, err)
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) replayLetter(w http.ResponseWriter, r *http.Request) *apierr.Error {
	seq, raw := seqParam(r)
	l, err := s.cfg.Letters.Replay(r.Context(), seq)
	if err != nil {
		return letterError(raw, err)
	}
	s.log.Info("dead letter replayed", zap.Uint64("seq", seq), zap.String("delivery_id", l.ID))
	writeJSON(w, http.StatusAccepted, l)
	return nil
}

// bulkBody is the body of POST /v1/deadletters/replay: the filter of the list route
// (only open letters are replayed) and dry_run, which counts without replaying.
type bulkBody struct {
	Endpoint string     `json:"endpoint"`
	Type     string     `json:"type"`
	Since    *time.Time `json:"since"`
	Until    *time.Time `json:"until"`
	DryRun   bool       `json:"dry_run"`
}

// DryRun is the answer to a dry-run bulk replay.
type DryRun struct {
	DryRun  bool `json:"dry_run"`
	Matched int  `json:"matched"` // open letters the filter selects now
}

func (s *Server) bulkReplay(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var b bulkBody
	if e := decodeBody(r, &b, false); e != nil {
		return e
	}
	f := deliver.LetterFilter{Endpoint: b.Endpoint, Type: b.Type, State: deliver.LetterOpen}
	if b.Since != nil {
		f.Since = *b.Since
	}
	if b.Until != nil {
		f.Until = *b.Until
	}
	var fe filterErrors
	checkFilter(f, &fe)
	if len(fe) > 0 {
		return &apierr.Error{Code: apierr.AdminInvalidField, Message: "the filter is invalid", FieldErrors: fe}
	}
	if b.DryRun {
		n := 0
		if _, err := s.cfg.Letters.Scan(r.Context(), f, 0, func(deliver.StoredLetter) bool { n++; return true }); err != nil {
			return internal("count dead letters", err)
		}
		writeJSON(w, http.StatusOK, DryRun{DryRun: true, Matched: n})
		return nil
	}
	job := s.replays.start(f)
	w.Header().Set("Location", "/v1/replays/"+job.ID)
	writeJSON(w, http.StatusAccepted, job)
	return nil
}

func (s *Server) getReplay(w http.ResponseWriter, r *http.Request) *apierr.Error {
	id := r.PathValue("job")
	p, ok := s.replays.get(id)
	if !ok {
		return apierr.New(apierr.AdminNotFound, "no replay job "+id+" on this instance (jobs live with the process that runs them)")
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// ReplayJob is a bulk replay's progress.
type ReplayJob struct {
	ID              string     `json:"id"`
	State           string     `json:"state"` // running, done, failed, cancelled
	Endpoint        string     `json:"endpoint,omitempty"`
	Type            string     `json:"type,omitempty"`
	Since           *time.Time `json:"since,omitempty"`
	Until           *time.Time `json:"until,omitempty"`
	Matched         int        `json:"matched"`          // open letters found so far
	Replayed        int        `json:"replayed"`         // revived by this job
	AlreadyReplayed int        `json:"already_replayed"` // revived by someone else first
	Failed          int        `json:"failed"`
	// Truncated: the job stopped at the bulk limit (MaxBulkReplay); letters may be
	// left, and running it again replays them.
	Truncated  bool       `json:"truncated,omitempty"`
	Errors     []string   `json:"errors,omitempty"` // the first few failures
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// replayJobs runs bulk replays in the background and keeps their progress.
type replayJobs struct {
	s      *Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*ReplayJob
	ids  []string // oldest first, for trimming
}

// keptJobs is how many finished jobs' progress stays readable.
const keptJobs = 100

func newReplayJobs(s *Server) *replayJobs {
	ctx, cancel := context.WithCancel(context.Background())
	return &replayJobs{s: s, ctx: ctx, cancel: cancel, jobs: map[string]*ReplayJob{}}
}

func (j *replayJobs) start(f deliver.LetterFilter) ReplayJob {
	var b [8]byte
	_, _ = rand.Read(b[:])
	job := &ReplayJob{ID: "rpl_" + hex.EncodeToString(b[:]), State: "running", Endpoint: f.Endpoint, Type: f.Type, StartedAt: j.s.cfg.Clock.Now().UTC()}
	if !f.Since.IsZero() {
		job.Since = &f.Since
	}
	if !f.Until.IsZero() {
		job.Until = &f.Until
	}
	j.mu.Lock()
	j.jobs[job.ID] = job
	j.ids = append(j.ids, job.ID)
	for len(j.ids) > keptJobs {
		old := j.jobs[j.ids[0]]
		if old.State == "running" {
			break
		}
		delete(j.jobs, j.ids[0])
		j.ids = j.ids[1:]
	}
	snap := *job
	j.mu.Unlock()
	j.s.log.Info("bulk replay started", zap.String("job", job.ID), zap.String("endpoint", f.Endpoint), zap.String("type", f.Type))
	j.wg.Go(func() { j.run(job, f) })
	return snap
}

func (j *replayJobs) run(job *ReplayJob, f deliver.LetterFilter) {
	update := func(change func()) {
		j.mu.Lock()
		change()
		j.mu.Unlock()
	}
	endpoints := map[string]error{} // endpoint id → CheckEndpoint's answer
	_, err := j.s.cfg.Letters.Scan(j.ctx, f, 0, func(l deliver.StoredLetter) bool {
		ctx, cancel := context.WithTimeout(j.ctx, 10*time.Second)
		err, checked := endpoints[l.Endpoint.ID]
		if !checked {
			err = j.s.cfg.Letters.CheckEndpoint(ctx, l.Endpoint.ID)
			if err == nil || errors.Is(err, deliver.ErrNotReplayable) {
				endpoints[l.Endpoint.ID] = err
			}
		}
		if err == nil {
			err = j.s.cfg.Letters.ReplayLetter(ctx, &l)
		}
		cancel()
		update(func() {
			job.Matched++
			switch {
			case err == nil:
				job.Replayed++
			case errors.Is(err, deliver.ErrAlreadyReplayed):
				job.AlreadyReplayed++
			default:
				job.Failed++
				if len(job.Errors) < 10 {
					job.Errors = append(job.Errors, "letter "+strconv.FormatUint(l.Seq, 10)+": "+err.Error())
				}
			}
		})
		if job.Matched >= j.s.cfg.MaxBulkReplay {
			update(func() { job.Truncated = true })
			return false
		}
		return j.ctx.Err() == nil
	})
	now := j.s.cfg.Clock.Now().UTC()
	update(func() {
		job.FinishedAt = &now
		switch {
		case j.ctx.Err() != nil:
			job.State = "cancelled"
		case err != nil:
			job.State = "failed"
			job.Errors = append(job.Errors, err.Error())
		default:
			job.State = "done"
		}
	})
	j.s.log.Info("bulk replay ended", zap.String("job", job.ID), zap.String("state", job.State),
		zap.Int("replayed", job.Replayed), zap.Int("already_replayed", job.AlreadyReplayed), zap.Int("failed", job.Failed))
}

func (j *replayJobs) get(id string) (ReplayJob, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	job, ok := j.jobs[id]
	if !ok {
		return ReplayJob{}, false
	}
	snap := *job
	snap.Errors = append([]string(nil), job.Errors...)
	return snap, true
}

// Close stops running bulk replays (their progress says cancelled) and waits for them.
func (s *Server) Close() {
	s.replays.cancel()
	s.replays.wg.Wait()
}
