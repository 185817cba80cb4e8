package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/parse"
)

// Endpoint store errors.
var (
	ErrEndpointNotFound = errors.New("deliver: endpoint not found")
	ErrEndpointExists   = errors.New("deliver: endpoint already exists")
	// ErrEndpointChanged: the endpoint changed since it was read (optimistic lock).
	ErrEndpointChanged = errors.New("deliver: endpoint changed concurrently")
)

// EndpointStore keeps endpoints in a JetStream key-value bucket, one key per endpoint,
// so they survive restarts (also in embedded dev mode, where Redis does not) and every
// replica sees changes as they happen (Watch).
type EndpointStore struct {
	kv    jetstream.KeyValue
	clock clock.Clock
}

// OpenEndpointStore creates or updates the bucket, with replicas copies like the
// streams (0 or 1: one), and returns the store.
func OpenEndpointStore(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, c clock.Clock) (*EndpointStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "hookrelay: merchant endpoints",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("endpoint bucket %s: %w", bucket, err)
	}
	return &EndpointStore{kv: kv, clock: clock.Or(c)}, nil
}

// Create stores a new endpoint, stamping its times and defaults.
func (s *EndpointStore) Create(ctx context.Context, e Endpoint) (Endpoint, error) {
	now := s.clock.Now().UTC()
	e.CreatedAt, e.UpdatedAt = now, now
	b, err := encodeEndpoint(&e)
	if err != nil {
		return Endpoint{}, err
	}
	if _, err := s.kv.Create(ctx, e.ID, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Endpoint{}, ErrEndpointExists
		}
		return Endpoint{}, fmt.Errorf("create endpoint %s: %w", e.ID, err)
	}
	return e, nil
}

// encodeEndpoint fills e's defaults, validates it and encodes it for the bucket.
func encodeEndpoint(e *Endpoint) ([]byte, error) {
	if e.MaxInFlight == 0 {
		e.MaxInFlight = DefaultMaxInFlight
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Get returns one endpoint.
func (s *EndpointStore) Get(ctx context.Context, id string) (Endpoint, error) {
	e, _, err := s.get(ctx, id)
	return e, err
}

func (s *EndpointStore) get(ctx context.Context, id string) (Endpoint, uint64, error) {
	if !natsx.ValidID(id) {
		return Endpoint{}, 0, ErrEndpointNotFound
	}
	entry, err := s.kv.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Endpoint{}, 0, ErrEndpointNotFound
		}
		return Endpoint{}, 0, fmt.Errorf("get endpoint %s: %w", id, err)
	}
	var e Endpoint
	if err := json.Unmarshal(entry.Value(), &e); err != nil {
		return Endpoint{}, 0, fmt.Errorf("decode endpoint %s: %w", id, err)
	}
	return e, entry.Revision(), nil
}

// Update applies change to the stored endpoint atomically: if another writer changed
// it in between, it returns ErrEndpointChanged and stores nothing. The id and creation
// time cannot change.
func (s *EndpointStore) Update(ctx context.Context, id string, change func(*Endpoint) error) (Endpoint, error) {
	e, rev, err := s.get(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	created := e.CreatedAt
	if err := change(&e); err != nil {
		return Endpoint{}, err
	}
	e.ID, e.CreatedAt, e.UpdatedAt = id, created, s.clock.Now().UTC()
	b, err := encodeEndpoint(&e)
	if err != nil {
		return Endpoint{}, err
	}
	if _, err := s.kv.Update(ctx, id, b, rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) { // wrong last revision
			return Endpoint{}, ErrEndpointChanged
		}
		return Endpoint{}, fmt.Errorf("update endpoint %s: %w", id, err)
	}
	return e, nil
}

// Delete removes an endpoint. Deliveries already scheduled for it are not touched here.
func (s *EndpointStore) Delete(ctx context.Context, id string) error {
	if _, _, err := s.get(ctx, id); err != nil {
		return err
	}
	return s.kv.Delete(ctx, id)
}

// List returns every endpoint, ordered by id.
func (s *EndpointStore) List(ctx context.Context) ([]Endpoint, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	var out []Endpoint
	for id := range lister.Keys() {
		e, err := s.Get(ctx, id)
		if errors.Is(err, ErrEndpointNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Seed creates the endpoints of the config file that the store does not have yet.
// Endpoints already stored keep their run-time state (an on-call engineer may have
// disabled one or rotated its secret); Seed reports their ids so start-up can log them.
func (s *EndpointStore) Seed(ctx context.Context, es []Endpoint) (kept []string, err error) {
	for _, e := range es {
		if _, err := s.Create(ctx, e); errors.Is(err, ErrEndpointExists) {
			kept = append(kept, e.ID)
		} else if err != nil {
			return kept, fmt.Errorf("seed endpoint %s: %w", e.ID, err)
		}
	}
	return kept, nil
}

// EndpointSet is a live, in-memory copy of the store for the hot path: fan-out asks it
// which endpoints an event goes to without a round trip. Watch keeps it current.
type EndpointSet struct {
	mu      sync.RWMutex
	byID    map[string]*Endpoint
	ready   chan struct{}
	changed chan struct{} // one pending signal at most
}

// Watch starts keeping a live EndpointSet until ctx ends. It returns once the set holds
// every endpoint stored at the time of the call.
func (s *EndpointStore) Watch(ctx context.Context) (*EndpointSet, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch endpoints: %w", err)
	}
	set := &EndpointSet{byID: map[string]*Endpoint{}, ready: make(chan struct{}), changed: make(chan struct{}, 1)}
	go set.follow(w)
	select {
	case <-set.ready:
		return set, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (set *EndpointSet) follow(w jetstream.KeyWatcher) {
	defer w.Stop()
	readyOnce := sync.OnceFunc(func() { close(set.ready) })
	for entry := range w.Updates() {
		if entry == nil { // the initial values have all been delivered
			readyOnce()
			continue
		}
		set.mu.Lock()
		switch entry.Operation() {
		case jetstream.KeyValuePut:
			var e Endpoint
			if json.Unmarshal(entry.Value(), &e) == nil {
				set.byID[entry.Key()] = &e
			}
		default: // delete or purge
			delete(set.byID, entry.Key())
		}
		set.mu.Unlock()
		select {
		case set.changed <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// Changed signals (coalesced) that the set changed.
func (set *EndpointSet) Changed() <-chan struct{} { return set.changed }

// All returns every endpoint, ordered by id.
func (set *EndpointSet) All() []Endpoint {
	set.mu.RLock()
	defer set.mu.RUnlock()
	out := make([]Endpoint, 0, len(set.byID))
	for _, e := range set.byID {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Get returns the endpoint with id, if the set has it.
func (set *EndpointSet) Get(id string) (Endpoint, bool) {
	set.mu.RLock()
	defer set.mu.RUnlock()
	e, ok := set.byID[id]
	if !ok {
		return Endpoint{}, false
	}
	return *e, true
}

// Matching returns the ids of the endpoints ev goes to, ordered by id.
func (set *EndpointSet) Matching(ev *parse.Event) []string {
	set.mu.RLock()
	defer set.mu.RUnlock()
	var ids []string
	for id, e := range set.byID {
		if e.Matches(ev) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
