package admin

import (
	"errors"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/internal/natsx"
)

// maxReprocess bounds one reprocess-all request.
const maxReprocess = 10_000

func rejectedError(seq string, err error) *apierr.Error {
	if errors.Is(err, ingest.ErrRejectionNotFound) {
		return apierr.New(apierr.AdminNotFound, "no rejected request "+seq)
	}
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.IngestStorageUnavailable { // JetStream did not confirm
		return apierr.New(apierr.AdminUnavailable, "rejected request "+seq+": "+ae.Message)
	}
	return internal("rejected request "+seq, err)
}

func (s *Server) listRejected(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var fe filterErrors
	source := r.URL.Query().Get("source")
	if source != "" && !natsx.ValidID(source) {
		fe.add("source", "not a source id")
	}
	limit := limitParam(r, &fe)
	after := cursorParam(r, 'r', &fe)
	if e := fe.err(); e != nil {
		return e
	}
	rs, next, err := s.cfg.Rejected.List(r.Context(), source, after, limit)
	if err != nil {
		return internal("list rejected requests", err)
	}
	writeJSON(w, http.StatusOK, seqPage(rs, 'r', next))
	return nil
}

func (s *Server) getRejected(w http.ResponseWriter, r *http.Request) *apierr.Error {
	seq, raw := seqParam(r)
	rj, err := s.cfg.Rejected.Get(r.Context(), seq)
	if err != nil {
		return rejectedError(raw, err)
	}
	writeJSON(w, http.StatusOK, rj)
	return nil
}

// reprocessRejected runs one kept request through the current parser. The answer is
// 200 with the outcome: stored, duplicate (stored before), or still_rejected with the
// parser's error.
func (s *Server) reprocessRejected(w http.ResponseWriter, r *http.Request) *apierr.Error {
	seq, raw := seqParam(r)
	res, err := s.cfg.Rejected.Reprocess(r.Context(), seq)
	if err != nil {
		return rejectedError(raw, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// reprocessBody is the body of POST /v1/rejected/reprocess.
type reprocessBody struct {
	Source   string `json:"source"`    // required: one source at a time
	AfterSeq uint64 `json:"after_seq"` // go on after this kept request (a truncated answer's last)
}

// ReprocessSummary answers POST /v1/rejected/reprocess.
type ReprocessSummary struct {
	Source        string `json:"source"`
	Stored        int    `json:"stored"`
	Duplicate     int    `json:"duplicate"`
	StillRejected int    `json:"still_rejected"`
	// Truncated: the request stopped at its limit (10,000); Results[len-1].Seq is the
	// cursor to go on from (after_seq).
	Truncated bool                     `json:"truncated,omitempty"`
	Results   []ingest.ReprocessResult `json:"results"`
}

func (s *Server) reprocessAllRejected(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var b reprocessBody
	if e := decodeBody(r, &b, false); e != nil {
		return e
	}
	if !natsx.ValidID(b.Source) {
		return &apierr.Error{Code: apierr.AdminInvalidField, Message: "the request is invalid",
			FieldErrors: []apierr.FieldError{{Field: "source", Error: "want the id of a source"}}}
	}
	results, more, err := s.cfg.Rejected.ReprocessAll(r.Context(), b.Source, b.AfterSeq, maxReprocess)
	if err != nil {
		return rejectedError("of source "+b.Source, err)
	}
	sum := ReprocessSummary{Source: b.Source, Results: results, Truncated: more}
	if sum.Results == nil {
		sum.Results = []ingest.ReprocessResult{}
	}
	for _, res := range results {
		switch res.Outcome {
		case ingest.Reprocessed:
			sum.Stored++
		case ingest.WasDuplicate:
			sum.Duplicate++
		default:
			sum.StillRejected++
		}
	}
	s.log.Info("rejected requests reprocessed", zap.String("source", b.Source), zap.Int("stored", sum.Stored),
		zap.Int("duplicate", sum.Duplicate), zap.Int("still_rejected", sum.StillRejected), zap.String("of", strconv.Itoa(len(results))))
	writeJSON(w, http.StatusOK, sum)
	return nil
}
