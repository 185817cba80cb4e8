package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
)

// adminClient reads hookrelay's admin API (SPEC §8) the way on-call does, from
// whichever hookrelay process answers: every process serves it.
type adminClient struct {
	c     *cluster
	token string
	http  *http.Client
}

func newAdminClient(c *cluster, token string) *adminClient {
	return &adminClient{c: c, token: token, http: &http.Client{Timeout: 10 * time.Second}}
}

// get GETs path into out, trying each running hookrelay process until one answers 200.
func (a *adminClient) get(ctx context.Context, path string, out any) error {
	var errs []error
	for _, p := range a.c.all() {
		if p.kind != "hookrelay" || p.done() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.admin+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := a.http.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		resp.Body.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: reading %s: %w", p.name, path, err))
			continue
		}
		if resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: GET %s: %d %.300s", p.name, path, resp.StatusCode, b))
			continue
		}
		return json.Unmarshal(b, out)
	}
	if len(errs) == 0 {
		return errors.New("no hookrelay process is running to ask")
	}
	return errors.Join(errs...)
}

// letter is what hookload keeps of a dead letter.
type letter struct {
	FinalAttempt int
	Attempts     int
}

// deadLetters lists every open dead letter by delivery id (event id + ":" + endpoint
// id), page by page.
func (a *adminClient) deadLetters(ctx context.Context) (map[string]letter, error) {
	out := map[string]letter{}
	cursor := ""
	for {
		var page struct {
			Items []struct {
				ID           string            `json:"id"`
				FinalAttempt int               `json:"final_attempt"`
				Attempts     []json.RawMessage `json:"attempts"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		q := url.Values{"state": {"open"}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := a.get(ctx, "/v1/deadletters?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			out[it.ID] = letter{FinalAttempt: it.FinalAttempt, Attempts: len(it.Attempts)}
		}
		if page.NextCursor == "" || len(page.Items) == 0 {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// deliveryLog is one delivery's schedule anchor and recorded attempts, ns since the
// run's epoch.
type deliveryLog struct {
	First    int64
	Attempts []loggedAttempt
}

// deliveryLogs reads GET /v1/events/{id}/deliveries for each id (workers at once),
// keyed by delivery id. Ids it could not read are counted in the error.
func (a *adminClient) deliveryLogs(ctx context.Context, epoch time.Time, ids []string, workers int) (map[string]deliveryLog, error) {
	out := make(map[string]deliveryLog, len(ids))
	var mu sync.Mutex
	var failed int
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for id := range work {
				var v struct {
					Deliveries []struct {
						Endpoint string    `json:"endpoint"`
						First    time.Time `json:"first_attempt_at"`
						Attempts []struct {
							Attempt int       `json:"attempt"`
							Start   time.Time `json:"start"`
						} `json:"attempts"`
					} `json:"deliveries"`
				}
				var err error
				for try := range 3 { // a process may be restarting or busy
					if err = a.get(ctx, "/v1/events/"+url.PathEscape(id)+"/deliveries", &v); err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(time.Duration(try+1) * 500 * time.Millisecond)
				}
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				}
				for _, d := range v.Deliveries {
					l := deliveryLog{First: d.First.Sub(epoch).Nanoseconds()}
					for _, at := range d.Attempts {
						l.Attempts = append(l.Attempts, loggedAttempt{N: at.Attempt, Start: at.Start.Sub(epoch).Nanoseconds()})
					}
					out[deliver.DeliveryID(id, d.Endpoint)] = l
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if failed > 0 {
		return out, fmt.Errorf("%d of %d events' deliveries could not be read: %w", failed, len(ids), firstErr)
	}
	return out, ctx.Err()
}
