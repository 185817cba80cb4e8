package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// t0 is the first attempt's time in every test; whole milliseconds, as Redis keeps.
var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// newStore returns a Store on miniredis, or on the real Redis when
// HOOKRELAY_TEST_REDIS_URL is set, under a key prefix of the test's own.
func newStore(t testing.TB, p Policy) (*Store, *testenv.Redis) {
	t.Helper()
	r := testenv.NewRedis(t)
	st, err := NewStore(r.Client, StoreConfig{Keys: rkeys.Keyspace{Prefix: r.Prefix}, Policy: p})
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return st, r
}

func delivery(id string, due time.Time) Delivery {
	return Delivery{ID: id, Payload: []byte(`{"id":"` + id + `"}`), First: due, Due: due, Attempt: 1}
}

func mustSchedule(t testing.TB, st *Store, d Delivery) {
	t.Helper()
	r, err := st.Schedule(context.Background(), d)
	if err != nil || !r.Created {
		t.Fatalf("Schedule(%s) = %+v, %v, want created", d.ID, r, err)
	}
}

func mustClaim(t testing.TB, st *Store, now time.Time, max int) []Claimed {
	t.Helper()
	c, err := st.Claim(context.Background(), now, max, 30*time.Second)
	if err != nil {
		t.Fatalf("Claim(%v, %d): %v", now, max, err)
	}
	return c
}

// claimOne claims at now and wants exactly delivery id.
func claimOne(t testing.TB, st *Store, now time.Time, id string) Claimed {
	t.Helper()
	c := mustClaim(t, st, now, 10)
	if len(c) != 1 || c[0].ID != id {
		t.Fatalf("Claim(%v) = %+v, want just %s", now, c, id)
	}
	return c[0]
}

func mustGet(t testing.TB, st *Store, id string) State {
	t.Helper()
	s, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return s
}

func mustAttempts(t testing.TB, st *Store, id string) []string {
	t.Helper()
	log, err := st.Attempts(context.Background(), id)
	if err != nil {
		t.Fatalf("Attempts(%s): %v", id, err)
	}
	out := []string{}
	for _, r := range log {
		out = append(out, string(r))
	}
	return out
}

func wantState(t testing.TB, st *Store, want State) {
	t.Helper()
	if diff := cmp.Diff(want, mustGet(t, st, want.ID)); diff != "" {
		t.Errorf("Get(%s) mismatch (-want +got):\n%s", want.ID, diff)
	}
}

func TestScheduleAndGet(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	payload := []byte("bin\x00ary\xff{}")
	d := Delivery{ID: "evt_x:endpoint-1", Payload: payload, First: t0, Due: t0.Add(3 * m), Attempt: 3}
	mustSchedule(t, st, d)
	wantState(t, st, State{ID: d.ID, Name: StatePending, Attempt: 3, First: t0, Due: t0.Add(3 * m), Payload: payload})

	if _, err := st.Get(ctx, "evt_y:endpoint-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if got := mustAttempts(t, st, d.ID); len(got) != 0 {
		t.Errorf("Attempts(%s) = %q, want none", d.ID, got)
	}
	before1970 := time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, bad := range []Delivery{
		{ID: "a", First: before1970, Due: t0, Attempt: 1},
		{ID: "a", First: t0, Due: before1970, Attempt: 1},
		{Payload: payload, First: t0, Due: t0, Attempt: 1},
		{ID: "a", First: t0, Due: t0},
		{ID: "a", Due: t0, Attempt: 1},
	} {
		if _, err := st.Schedule(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Schedule(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestScheduleIdempotent: a known id is never recreated or reset, whatever its state.
func TestScheduleIdempotent(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, st *Store, id string) // from pending
		want  StateName
	}{
		{"pending", func(t *testing.T, st *Store, id string) {}, StatePending},
		{"leased", func(t *testing.T, st *Store, id string) { claimOne(t, st, t0, id) }, StateLeased},
		{"queued", func(t *testing.T, st *Store, id string) {
			claimOne(t, st, t0, id)
			if ok, err := st.Queued(context.Background(), id, 1); !ok || err != nil {
				t.Fatalf("Queued = %v, %v", ok, err)
			}
		}, StateQueued},
		{"done", func(t *testing.T, st *Store, id string) {
			claimOne(t, st, t0, id)
			if ok, err := st.Succeed(context.Background(), id, 1, []byte("ok")); !ok || err != nil {
				t.Fatalf("Succeed = %v, %v", ok, err)
			}
		}, StateDone},
		{"dead", func(t *testing.T, st *Store, id string) {
			claimOne(t, st, t0, id)
			if ok, err := st.Kill(context.Background(), id, 1, time.Unix(1e9, 0), []byte("410")); !ok || err != nil {
				t.Fatalf("Kill = %v, %v", ok, err)
			}
		}, StateDead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := newStore(t, DefaultPolicy())
			id := "evt_1:ep-1"
			mustSchedule(t, st, delivery(id, t0))
			tt.setup(t, st, id)
			before := mustGet(t, st, id)
			if before.Name != tt.want {
				t.Fatalf("state = %s, want %s", before.Name, tt.want)
			}
			again := Delivery{ID: id, Payload: []byte("other"), First: t0.Add(h), Due: t0.Add(h), Attempt: 1}
			r, err := st.Schedule(context.Background(), again)
			if err != nil || r.Created || r.State != tt.want || r.Attempt != 1 || !r.First.Equal(t0) {
				t.Fatalf("Schedule again = %+v, %v, want not created, %s, attempt 1, first %v", r, err, tt.want, t0)
			}
			wantState(t, st, before)
		})
	}
}

func TestClaim(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	for i := range 150 {
		mustSchedule(t, st, delivery(fmt.Sprintf("evt_%03d:ep", i), t0.Add(time.Duration(i)*time.Millisecond)))
	}
	mustSchedule(t, st, delivery("later:ep", t0.Add(h)))

	if c := mustClaim(t, st, t0.Add(-time.Millisecond), 100); len(c) != 0 {
		t.Errorf("Claim(before due) = %d deliveries, want 0", len(c))
	}
	first := mustClaim(t, st, t0.Add(m), 1000)
	if len(first) != MaxClaim {
		t.Fatalf("Claim(max 1000) = %d deliveries, want %d (the bound)", len(first), MaxClaim)
	}
	want := Claimed{ID: "evt_000:ep", Payload: []byte(`{"id":"evt_000:ep"}`), Attempt: 1, Due: t0, First: t0}
	if diff := cmp.Diff(want, first[0]); diff != "" {
		t.Errorf("Claim()[0] mismatch (-want +got):\n%s", diff)
	}
	for i, c := range first {
		if wantID := fmt.Sprintf("evt_%03d:ep", i); c.ID != wantID {
			t.Errorf("Claim()[%d].ID = %s, want %s (earliest first)", i, c.ID, wantID)
		}
	}
	wantState(t, st, State{ID: "evt_000:ep", Name: StateLeased, Attempt: 1, First: t0, Due: t0.Add(m + 30*s), Payload: want.Payload})

	if rest := mustClaim(t, st, t0.Add(m), 1000); len(rest) != 50 {
		t.Errorf("second Claim = %d deliveries, want 50", len(rest))
	}
	if c := mustClaim(t, st, t0.Add(m), 1000); len(c) != 0 {
		t.Errorf("third Claim = %d deliveries, want 0 (later:ep is not due)", len(c))
	}
	if c := mustClaim(t, st, t0.Add(h), 0); len(c) != 0 {
		t.Errorf("Claim(max 0) = %d deliveries, want 0", len(c))
	}
	if _, err := st.Claim(context.Background(), t0, 1, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Claim(lease 0) = %v, want ErrInvalid", err)
	}
}

func TestClaimConcurrent(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	const n, workers = 400, 8
	for i := range n {
		mustSchedule(t, st, delivery(fmt.Sprintf("evt_%d:ep", i), t0))
	}
	var (
		mu   sync.Mutex
		got  = map[string]int{}
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for range workers {
		wg.Go(func() {
			for {
				c, err := st.Claim(context.Background(), t0, 7, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(c) == 0 {
					return
				}
				mu.Lock()
				for _, d := range c {
					got[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Claim: %v", err)
	}
	if len(got) != n {
		t.Errorf("claimed %d distinct deliveries, want %d", len(got), n)
	}
	for id, k := range got {
		if k != 1 {
			t.Errorf("%s claimed %d times, want once", id, k)
		}
	}
}

func TestFailReschedulesFromFirst(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	id := "evt_1:ep-1"
	mustSchedule(t, st, delivery(id, t0))
	c := claimOne(t, st, t0, id)

	// The attempt ended late (40s after it was due): the next due still counts from First.
	got, err := st.Fail(ctx, id, c.Attempt, t0.Add(40*s), []byte("rec1"))
	if err != nil {
		t.Fatalf("Fail: %v", err)
	}
	if diff := cmp.Diff(FailResult{Outcome: Rescheduled, Attempt: 2, Due: t0.Add(1 * m)}, got); diff != "" {
		t.Errorf("Fail(1) mismatch (-want +got):\n%s", diff)
	}
	wantState(t, st, State{ID: id, Name: StatePending, Attempt: 2, First: t0, Due: t0.Add(1 * m), Payload: c.Payload})

	c = claimOne(t, st, t0.Add(m), id)
	if c.Attempt != 2 || !c.Due.Equal(t0.Add(m)) || !c.First.Equal(t0) {
		t.Errorf("Claim = %+v, want attempt 2 due %v first %v", c, t0.Add(m), t0)
	}
	// Recorded hours late (a Redis outage): the next due is now, not in the past.
	late := t0.Add(5 * h)
	got, err = st.Fail(ctx, id, 2, late, []byte("rec2"))
	if err != nil {
		t.Fatalf("Fail: %v", err)
	}
	if diff := cmp.Diff(FailResult{Outcome: Rescheduled, Attempt: 3, Due: late}, got); diff != "" {
		t.Errorf("Fail(2) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"rec1", "rec2"}, mustAttempts(t, st, id)); diff != "" {
		t.Errorf("Attempts mismatch (-want +got):\n%s", diff)
	}
}

func TestFailUntilDead(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	id := "evt_1:ep-1"
	d := delivery(id, t0)
	d.Attempt, d.Due = 14, t0.Add(146*h)
	mustSchedule(t, st, d)
	claimOne(t, st, d.Due, id)
	got, err := st.Fail(ctx, id, 14, d.Due, []byte("last"))
	if err != nil || got.Outcome != Dead {
		t.Fatalf("Fail(14) = %+v, %v, want Dead", got, err)
	}
	wantState(t, st, State{ID: id, Name: StateDead, Attempt: 14, First: t0, Payload: d.Payload})
	if c := mustClaim(t, st, t0.Add(30*24*h), 10); len(c) != 0 {
		t.Errorf("Claim after dead = %+v, want none", c)
	}
	if at, ok, err := st.NextWake(ctx); ok || err != nil {
		t.Errorf("NextWake() = %v, %v, %v, want nothing", at, ok, err)
	}
}

// TestFence: every fenced call with the wrong attempt, or on a delivery that is not
// leased, changes nothing.
func TestFence(t *testing.T) {
	ctx := context.Background()
	ops := []struct {
		name string
		call func(st *Store, id string, attempt int) (bool, error)
	}{
		{"Fail", func(st *Store, id string, attempt int) (bool, error) {
			r, err := st.Fail(ctx, id, attempt, t0, []byte("x"))
			return r.Outcome != Stale, err
		}},
		{"Succeed", func(st *Store, id string, attempt int) (bool, error) {
			return st.Succeed(ctx, id, attempt, []byte("x"))
		}},
		{"Kill", func(st *Store, id string, attempt int) (bool, error) {
			return st.Kill(ctx, id, attempt, time.Unix(1e9, 0), []byte("x"))
		}},
		{"Release", func(st *Store, id string, attempt int) (bool, error) { return st.Release(ctx, id, attempt, t0.Add(h)) }},
	}
	cases := []struct {
		name    string
		claim   bool
		attempt int
	}{
		{"older attempt", true, 1},
		{"newer attempt", true, 3},
		{"not leased", false, 2},
	}
	for _, op := range ops {
		for _, tc := range cases {
			t.Run(op.name+"/"+tc.name, func(t *testing.T) {
				st, _ := newStore(t, DefaultPolicy())
				id := "evt_1:ep-1"
				d := delivery(id, t0)
				d.Attempt, d.Due = 2, t0.Add(m)
				mustSchedule(t, st, d)
				if tc.claim {
					claimOne(t, st, d.Due, id)
				}
				before := mustGet(t, st, id)
				ok, err := op.call(st, id, tc.attempt)
				if err != nil || ok {
					t.Fatalf("%s(attempt %d) = %v, %v, want stale", op.name, tc.attempt, ok, err)
				}
				wantState(t, st, before)
				if got := mustAttempts(t, st, id); len(got) != 0 {
					t.Errorf("Attempts = %q, want none", got)
				}
			})
		}
		t.Run(op.name+"/unknown id", func(t *testing.T) {
			st, _ := newStore(t, DefaultPolicy())
			if ok, err := op.call(st, "nope", 1); err != nil || ok {
				t.Errorf("%s(unknown) = %v, %v, want stale", op.name, ok, err)
			}
		})
	}
}

func TestSucceed(t *testing.T) {
	st, r := newStore(t, DefaultPolicy())
	ctx := context.Background()
	id := "evt_1:ep-1"
	mustSchedule(t, st, delivery(id, t0))
	claimOne(t, st, t0, id)
	if ok, err := st.Succeed(ctx, id, 1, []byte("200")); !ok || err != nil {
		t.Fatalf("Succeed = %v, %v, want true", ok, err)
	}
	wantState(t, st, State{ID: id, Name: StateDone, Attempt: 1, First: t0})
	if diff := cmp.Diff([]string{"200"}, mustAttempts(t, st, id)); diff != "" {
		t.Errorf("Attempts mismatch (-want +got):\n%s", diff)
	}
	if ok, err := st.Succeed(ctx, id, 1, []byte("200")); ok || err != nil {
		t.Errorf("Succeed again = %v, %v, want stale", ok, err)
	}
	for _, key := range []string{st.keys.SchedFinished(id), st.keys.SchedAttempts(id)} {
		ttl, err := r.Client.PTTL(ctx, key).Result()
		if err != nil || ttl <= DefaultDoneTTL-time.Minute || ttl > DefaultDoneTTL {
			t.Errorf("PTTL(%s) = %v, %v, want about %v", key, ttl, err, DefaultDoneTTL)
		}
	}
	if at, ok, err := st.NextWake(ctx); ok || err != nil {
		t.Errorf("NextWake() = %v, %v, %v, want nothing", at, ok, err)
	}
}

func TestKillAndRevive(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	id := "evt_1:ep-1"
	d := delivery(id, t0)
	mustSchedule(t, st, d)
	claimOne(t, st, t0, id)
	if r, err := st.Fail(ctx, id, 1, t0, []byte("500")); err != nil || r.Outcome != Rescheduled {
		t.Fatalf("Fail = %+v, %v", r, err)
	}
	claimOne(t, st, t0.Add(m), id)
	if ok, err := st.Kill(ctx, id, 2, time.Unix(1e9, 0), []byte("410")); !ok || err != nil {
		t.Fatalf("Kill = %v, %v, want true", ok, err)
	}
	wantState(t, st, State{ID: id, Name: StateDead, Attempt: 2, First: t0, Payload: d.Payload})

	if ok, err := st.Revive(ctx, id, t0, t0.Add(h), 0); !errors.Is(err, ErrInvalid) || ok {
		t.Errorf("Revive(attempt 0) = %v, %v, want ErrInvalid", ok, err)
	}
	if ok, err := st.Revive(ctx, id, t0, time.Unix(-5, 0), 1); !errors.Is(err, ErrInvalid) || ok {
		t.Errorf("Revive(before 1970) = %v, %v, want ErrInvalid", ok, err)
	}
	now := t0.Add(48 * h)
	if ok, err := st.Revive(ctx, id, t0.Add(m), now, 1); ok || err != nil {
		t.Errorf("Revive(another schedule's death) = %v, %v, want false", ok, err)
	}
	if ok, err := st.Revive(ctx, id, t0, now, 1); !ok || err != nil {
		t.Fatalf("Revive = %v, %v, want true", ok, err)
	}
	wantState(t, st, State{ID: id, Name: StatePending, Attempt: 1, First: now, Due: now, Payload: d.Payload})
	if ok, err := st.Revive(ctx, id, time.Time{}, now, 1); ok || err != nil {
		t.Errorf("Revive of a pending delivery = %v, %v, want false", ok, err)
	}
	c := claimOne(t, st, now, id)
	if r, err := st.Fail(ctx, id, c.Attempt, now, []byte("503")); err != nil || !r.Due.Equal(now.Add(m)) {
		t.Errorf("Fail after revive = %+v, %v, want due %v (fresh schedule)", r, err, now.Add(m))
	}
	if diff := cmp.Diff([]string{"500", "410", "503"}, mustAttempts(t, st, id)); diff != "" {
		t.Errorf("Attempts mismatch (-want +got):\n%s", diff)
	}
	if ok, err := st.Revive(ctx, "unknown", time.Time{}, now, 1); ok || err != nil {
		t.Errorf("Revive(unknown) = %v, %v, want false", ok, err)
	}
}

func TestReviveOnceUnderConcurrency(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	id := "evt_1:ep-1"
	mustSchedule(t, st, delivery(id, t0))
	claimOne(t, st, t0, id)
	if ok, err := st.Kill(context.Background(), id, 1, time.Unix(1e9, 0), nil); !ok || err != nil {
		t.Fatalf("Kill = %v, %v", ok, err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		revived int
	)
	for range 8 {
		wg.Go(func() {
			ok, err := st.Revive(context.Background(), id, t0, t0.Add(h), 1)
			if err != nil {
				t.Errorf("Revive: %v", err)
			}
			if ok {
				mu.Lock()
				revived++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if revived != 1 {
		t.Errorf("Revive succeeded %d times, want once", revived)
	}
	if c := mustClaim(t, st, t0.Add(h), 10); len(c) != 1 {
		t.Errorf("Claim after revive = %d deliveries, want 1", len(c))
	}
}

func TestRelease(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	id := "evt_1:ep-1"
	d := delivery(id, t0)
	mustSchedule(t, st, d)
	claimOne(t, st, t0, id)
	if ok, err := st.Release(ctx, id, 1, t0.Add(10*m)); !ok || err != nil {
		t.Fatalf("Release = %v, %v, want true", ok, err)
	}
	wantState(t, st, State{ID: id, Name: StatePending, Attempt: 1, First: t0, Due: t0.Add(10 * m), Payload: d.Payload})
	if c := mustClaim(t, st, t0.Add(10*m-time.Millisecond), 10); len(c) != 0 {
		t.Errorf("Claim before the release's due = %+v, want none", c)
	}
	if c := claimOne(t, st, t0.Add(10*m), id); c.Attempt != 1 {
		t.Errorf("Claim after release: attempt %d, want 1 (not counted)", c.Attempt)
	}
}

func TestReclaim(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	for i := range 3 {
		mustSchedule(t, st, delivery(fmt.Sprintf("evt_%d:ep", i), t0))
	}
	if c := mustClaim(t, st, t0, 10); len(c) != 3 { // leased until t0+30s
		t.Fatalf("Claim = %d, want 3", len(c))
	}
	if ok, err := st.Succeed(ctx, "evt_2:ep", 1, nil); !ok || err != nil {
		t.Fatalf("Succeed = %v, %v", ok, err)
	}
	if n, err := st.Reclaim(ctx, t0.Add(30*s-time.Millisecond), 10); n != 0 || err != nil {
		t.Errorf("Reclaim(before expiry) = %d, %v, want 0", n, err)
	}
	now := t0.Add(31 * s)
	if n, err := st.Reclaim(ctx, now, 1); n != 1 || err != nil {
		t.Errorf("Reclaim(max 1) = %d, %v, want 1", n, err)
	}
	if n, err := st.Reclaim(ctx, now, 10); n != 1 || err != nil {
		t.Errorf("Reclaim = %d, %v, want 1 (the done one is not leased)", n, err)
	}
	wantState(t, st, State{ID: "evt_0:ep", Name: StatePending, Attempt: 1, First: t0, Due: now, Payload: []byte(`{"id":"evt_0:ep"}`)})
	if c := mustClaim(t, st, now, 10); len(c) != 2 || c[0].Attempt != 1 {
		t.Errorf("Claim after reclaim = %+v, want 2 deliveries at attempt 1", c)
	}
}

func TestNextWake(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	if at, ok, err := st.NextWake(ctx); ok || err != nil {
		t.Fatalf("NextWake(empty) = %v, %v, %v, want nothing", at, ok, err)
	}
	mustSchedule(t, st, delivery("a", t0.Add(5*m)))
	mustSchedule(t, st, delivery("b", t0.Add(2*m)))
	check := func(want time.Time) {
		t.Helper()
		at, ok, err := st.NextWake(ctx)
		if err != nil || !ok || !at.Equal(want) {
			t.Errorf("NextWake() = %v, %v, %v, want %v", at, ok, err, want)
		}
	}
	check(t0.Add(2 * m))
	claimOne(t, st, t0.Add(2*m), "b") // leased until 2m30s
	check(t0.Add(2*m + 30*s))
	if ok, err := st.Succeed(ctx, "b", 1, nil); !ok || err != nil {
		t.Fatalf("Succeed = %v, %v", ok, err)
	}
	check(t0.Add(5 * m))
}

func TestAttemptLogCapped(t *testing.T) {
	p := Policy{ThenEvery: s, GiveUpAfter: 200 * s}
	st, _ := newStore(t, p)
	ctx := context.Background()
	id := "evt_1:ep-1"
	mustSchedule(t, st, delivery(id, t0))
	for a := 1; a <= 130; a++ {
		now, _ := p.Due(t0, a)
		c := claimOne(t, st, now, id)
		if c.Attempt != a {
			t.Fatalf("Claim at %v: attempt %d, want %d", now, c.Attempt, a)
		}
		if r, err := st.Fail(ctx, id, a, now, fmt.Appendf(nil, "rec%d", a)); err != nil || r.Outcome != Rescheduled {
			t.Fatalf("Fail(%d) = %+v, %v", a, r, err)
		}
	}
	got := mustAttempts(t, st, id)
	if len(got) != MaxAttemptLog || got[0] != "rec31" || got[len(got)-1] != "rec130" {
		t.Errorf("Attempts = %d records %q … %q, want %d records rec31 … rec130", len(got), got[0], got[len(got)-1], MaxAttemptLog)
	}
}

func TestStoreConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  StoreConfig
		ok   bool
	}{
		{"zero is the default", StoreConfig{}, true},
		{"test policy", StoreConfig{Policy: testPolicy(), DoneTTL: h}, true},
		{"bad policy", StoreConfig{Policy: Policy{ThenEvery: s}}, false},
		{"negative ttl", StoreConfig{DoneTTL: -h}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
	if _, err := NewStore(nil, StoreConfig{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewStore(nil) = %v, want ErrInvalid", err)
	}
}

// TestHoldAndUnhold: a held delivery leaves the schedule (no claim, no record) until
// its group is released, then is pending with the same attempt, due at the release.
func TestHoldAndUnhold(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	a, b, c := "evt_a:ep-1", "evt_b:ep-1", "evt_c:ep-2"
	for _, id := range []string{a, b, c} {
		mustSchedule(t, st, delivery(id, t0))
	}
	claimed := mustClaim(t, st, t0, 10)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d, want 3", len(claimed))
	}
	if ok, err := st.Queued(ctx, b, 1); !ok || err != nil {
		t.Fatalf("Queued = %v, %v", ok, err)
	}
	for _, h := range []struct{ id, group string }{{a, "ep-1"}, {b, "ep-1"}, {c, "ep-2"}} {
		if ok, err := st.Hold(ctx, h.id, 1, h.group, t0); !ok || err != nil {
			t.Fatalf("Hold(%s) = %v, %v", h.id, ok, err)
		}
	}
	if ok, err := st.Hold(ctx, a, 1, "ep-1", t0); ok || err != nil {
		t.Errorf("Hold of a held delivery = %v, %v, want stale", ok, err)
	}
	wantState(t, st, State{ID: a, Name: StateHeld, Attempt: 1, First: t0, Payload: delivery(a, t0).Payload})
	if ok, err := st.Succeed(ctx, a, 1, []byte("200")); ok || err != nil {
		t.Errorf("Succeed of a held delivery = %v, %v, want stale", ok, err)
	}
	later := t0.Add(48 * h)
	if c := mustClaim(t, st, later, 10); len(c) != 0 {
		t.Fatalf("claimed %d held deliveries", len(c))
	}
	if n, err := st.Reclaim(ctx, later, 10); n != 0 || err != nil {
		t.Fatalf("Reclaim = %d, %v, want 0", n, err)
	}
	if n, err := st.Unhold(ctx, "ep-1", later); n != 2 || err != nil {
		t.Fatalf("Unhold(ep-1) = %d, %v, want 2", n, err)
	}
	if n, err := st.Unhold(ctx, "ep-1", later); n != 0 || err != nil {
		t.Fatalf("Unhold(ep-1) again = %d, %v, want 0", n, err)
	}
	wantState(t, st, State{ID: a, Name: StatePending, Attempt: 1, First: t0, Due: later, Payload: delivery(a, t0).Payload})
	if got := mustClaim(t, st, later, 10); len(got) != 2 {
		t.Fatalf("claimed %d after Unhold, want 2", len(got))
	}
	if s := mustGet(t, st, c); s.Name != StateHeld {
		t.Errorf("other group's delivery = %s, want held", s.Name)
	}
	if gs, err := st.HeldGroups(ctx); err != nil || len(gs) != 1 || gs[0] != "ep-2" {
		t.Errorf("HeldGroups = %v, %v, want [ep-2]", gs, err)
	}
}

// TestUnholdMany: a group with more held deliveries than one batch is released whole,
// and leaves the set of held groups.
func TestUnholdMany(t *testing.T) {
	st, _ := newStore(t, DefaultPolicy())
	ctx := context.Background()
	const n = 2*MaxClaim + 7
	for i := range n {
		mustSchedule(t, st, delivery(fmt.Sprintf("evt_%d:ep-1", i), t0))
	}
	held := 0
	for c := mustClaim(t, st, t0, MaxClaim); len(c) > 0; c = mustClaim(t, st, t0, MaxClaim) {
		for _, d := range c {
			if ok, err := st.Hold(ctx, d.ID, d.Attempt, "ep-1", t0); !ok || err != nil {
				t.Fatalf("Hold(%s) = %v, %v", d.ID, ok, err)
			}
			held++
		}
	}
	if held != n {
		t.Fatalf("held %d, want %d", held, n)
	}
	if gs, err := st.HeldGroups(ctx); err != nil || len(gs) != 1 {
		t.Fatalf("HeldGroups = %v, %v, want [ep-1]", gs, err)
	}
	if got, err := st.Unhold(ctx, "ep-1", t0.Add(h)); got != n || err != nil {
		t.Fatalf("Unhold = %d, %v, want %d", got, err, n)
	}
	if gs, err := st.HeldGroups(ctx); err != nil || len(gs) != 0 {
		t.Errorf("HeldGroups after Unhold = %v, %v, want none", gs, err)
	}
	if c := mustClaim(t, st, t0.Add(h), MaxClaim); len(c) != MaxClaim {
		t.Errorf("claimed %d after Unhold, want %d", len(c), MaxClaim)
	}
}

// TestScheduleMany: one pipeline for many deliveries; an invalid one fails alone, a
// known one is reported as known, and a Redis that lost its script cache (SCRIPT
// FLUSH, as after a restart or failover) is served by loading the script once.
func TestScheduleMany(t *testing.T) {
	st, r := newStore(t, DefaultPolicy())
	ctx := context.Background()
	mustSchedule(t, st, delivery("evt_known:ep-1", t0))
	if err := r.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ds := []Delivery{
		{ID: "evt_a:ep-1", Payload: []byte("e:1"), First: t0, Due: t0, Attempt: 1, Queued: true},
		{ID: "", First: t0, Due: t0, Attempt: 1},
		{ID: "evt_known:ep-1", Payload: []byte("e:9"), First: t0.Add(h), Due: t0.Add(h), Attempt: 1},
		{ID: "evt_b:ep-1", Payload: []byte("e:2"), First: t0, Due: t0.Add(m), Attempt: 1},
	}
	out, errs := st.ScheduleMany(ctx, ds)
	if errs[0] != nil || !out[0].Created || out[0].State != StateQueued {
		t.Errorf("new queued: %+v, %v", out[0], errs[0])
	}
	if !errors.Is(errs[1], ErrInvalid) {
		t.Errorf("invalid: %v, want ErrInvalid", errs[1])
	}
	if errs[2] != nil || out[2].Created || out[2].State != StatePending || !out[2].First.Equal(t0) {
		t.Errorf("known: %+v, %v, want not created, pending, first %v", out[2], errs[2], t0)
	}
	if errs[3] != nil || !out[3].Created {
		t.Errorf("new pending: %+v, %v", out[3], errs[3])
	}
	wantState(t, st, State{ID: "evt_b:ep-1", Name: StatePending, Attempt: 1, First: t0, Due: t0.Add(m), Payload: []byte("e:2")})
}

// TestSlotCollision: two ids whose slot keys collide get fields of their own (the
// scripts probe and compare the stored id), through their whole life.
func TestSlotCollision(t *testing.T) {
	st, r := newStore(t, DefaultPolicy())
	ctx := context.Background()
	id := "evt_mine:ep-1"
	b, f := slotKey(id)
	// Another delivery already sits in id's field (as if its hash collided).
	if err := r.Client.HSet(ctx, st.keys.SchedBucketIDs(b), f, "evt_other:ep-9").Err(); err != nil {
		t.Fatal(err)
	}
	mustSchedule(t, st, delivery(id, t0))
	if got, _ := r.Client.HGet(ctx, st.keys.SchedBucketIDs(b), f+"1").Result(); got != id {
		t.Fatalf("field %s1 holds %q, want %s", f, got, id)
	}
	c := claimOne(t, st, t0, id)
	if ok, err := st.Succeed(ctx, id, c.Attempt, []byte("200")); !ok || err != nil {
		t.Fatalf("Succeed = %v, %v", ok, err)
	}
	wantState(t, st, State{ID: id, Name: StateDone, Attempt: 1, First: t0})
	if got, _ := r.Client.HGet(ctx, st.keys.SchedBucketIDs(b), f).Result(); got != "evt_other:ep-9" {
		t.Errorf("the other delivery's field holds %q", got)
	}
	// With every probe slot taken by others, Schedule refuses rather than overwrite.
	id2 := "evt_full:ep-1"
	b2, f2 := slotKey(id2)
	for _, suffix := range []string{"", "1", "2", "3"} {
		r.Client.HSet(ctx, st.keys.SchedBucketIDs(b2), f2+suffix, "evt_x"+suffix+":ep-9")
	}
	if _, err := st.Schedule(ctx, delivery(id2, t0)); err == nil {
		t.Error("Schedule with every slot taken succeeded")
	}
}

// TestCount: pending counts deliveries waiting for a due time (not leased, queued or
// finished ones); dead counts deliveries dead by exhaustion or Kill until revived,
// within KeepDead of now; a new death makes the dead set forget those past KeepDead.
func TestCount(t *testing.T) {
	st, r := newStore(t, Policy{Delays: []time.Duration{time.Minute}, GiveUpAfter: time.Hour})
	ctx := context.Background()
	countOn := func(st *Store, now time.Time) Counts {
		t.Helper()
		c, err := st.Count(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	count := func(now time.Time, _ time.Duration) Counts { t.Helper(); return countOn(st, now) }
	if c := count(t0, 0); c != (Counts{}) {
		t.Fatalf("empty: Count = %+v", c)
	}
	const n = 2500 // more than one page of buckets
	for i := range n {
		due := t0.Add(10*time.Hour + time.Duration(i)*time.Millisecond)
		if i < 2 {
			due = t0.Add(time.Duration(i) * time.Millisecond)
		}
		mustSchedule(t, st, delivery(fmt.Sprintf("evt_%d:ep", i), due))
	}
	if c := count(t0, 0); c != (Counts{Pending: n}) {
		t.Fatalf("after %d scheduled: Count = %+v", n, c)
	}
	// Two leased: one fails for good (the policy has 2 attempts), one is killed.
	a, b := "evt_0:ep", "evt_1:ep"
	claimOne(t, st, t0, a)
	claimOne(t, st, t0.Add(time.Millisecond), b)
	if c := count(t0, 0); c.Pending != n-2 {
		t.Fatalf("two leased: Count = %+v, want pending %d", c, n-2)
	}
	if r, err := st.Fail(ctx, a, 1, t0, nil); err != nil || r.Outcome != Rescheduled {
		t.Fatalf("Fail = %+v, %v", r, err)
	}
	claimOne(t, st, t0.Add(time.Minute), a)
	if r, err := st.Fail(ctx, a, 2, t0.Add(time.Minute), nil); err != nil || r.Outcome != Dead {
		t.Fatalf("Fail attempt 2 = %+v, %v, want dead", r, err)
	}
	if ok, err := st.Kill(ctx, b, 1, t0.Add(2*time.Hour), nil); !ok || err != nil {
		t.Fatalf("Kill = %v, %v", ok, err)
	}
	if c := count(t0.Add(2*time.Hour), 0); c != (Counts{Pending: n - 2, Dead: 2}) {
		t.Fatalf("one exhausted, one killed: Count = %+v", c)
	}
	if ok, err := st.Revive(ctx, a, t0, t0.Add(3*time.Hour), 1); !ok || err != nil {
		t.Fatalf("Revive = %v, %v", ok, err)
	}
	if c := count(t0.Add(3*time.Hour), 0); c != (Counts{Pending: n - 1, Dead: 1}) {
		t.Fatalf("revived: Count = %+v", c)
	}
	// b died at t0+2h: kept 2h later with a 3h cut-off, forgotten with a 1h one.
	keeping := func(keep time.Duration) *Store {
		t.Helper()
		s, err := NewStore(r.Client, StoreConfig{Keys: rkeys.Keyspace{Prefix: r.Prefix}, Policy: st.Policy(), KeepDead: keep})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	keep3h, keep1h := keeping(3*time.Hour), keeping(time.Hour)
	if c := countOn(keep3h, t0.Add(4*time.Hour)); c.Dead != 1 {
		t.Fatalf("within keep: Count = %+v, want dead 1", c)
	}
	if c := countOn(keep1h, t0.Add(4*time.Hour)); c.Dead != 0 {
		t.Fatalf("past keep: Count = %+v, want dead 0", c)
	}
	// A death at t0+4h with a 1h keep forgets b's (t0+2h) from the set itself.
	x := "evt_x:ep"
	mustSchedule(t, keep1h, delivery(x, t0.Add(2*time.Hour))) // due before the revived a
	claimOne(t, keep1h, t0.Add(2*time.Hour), x)
	if ok, err := keep1h.Kill(ctx, x, 1, t0.Add(4*time.Hour), nil); !ok || err != nil {
		t.Fatalf("Kill = %v, %v", ok, err)
	}
	if members, err := r.Client.ZRange(ctx, rkeys.Keyspace{Prefix: r.Prefix}.SchedDead(), 0, -1).Result(); err != nil || len(members) != 1 || members[0] != x {
		t.Fatalf("dead set = %v, %v; want just %s", members, err, x)
	}
}

// TestEveryTransitionDropsTheLease: each fenced transition out of a lease takes the
// delivery out of the leased set, and one out of queued (never in it) leaves the set
// as it is, so the set holds exactly the live leases.
func TestEveryTransitionDropsTheLease(t *testing.T) {
	ops := []struct {
		name string
		do   func(ctx context.Context, st *Store, id string) (bool, error)
	}{
		{"succeed", func(ctx context.Context, st *Store, id string) (bool, error) {
			return st.Succeed(ctx, id, 1, []byte("r"))
		}},
		{"fail", func(ctx context.Context, st *Store, id string) (bool, error) {
			r, err := st.Fail(ctx, id, 1, t0, []byte("r"))
			return r.Outcome == Rescheduled, err
		}},
		{"kill", func(ctx context.Context, st *Store, id string) (bool, error) {
			return st.Kill(ctx, id, 1, t0, []byte("r"))
		}},
		{"release", func(ctx context.Context, st *Store, id string) (bool, error) {
			return st.Release(ctx, id, 1, t0.Add(m))
		}},
		{"queued", func(ctx context.Context, st *Store, id string) (bool, error) { return st.Queued(ctx, id, 1) }},
		{"hold", func(ctx context.Context, st *Store, id string) (bool, error) { return st.Hold(ctx, id, 1, "ep", t0) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			st, r := newStore(t, DefaultPolicy())
			ctx := context.Background()
			leased := func() int64 {
				t.Helper()
				n, err := r.Client.ZCard(ctx, st.keys.SchedLeased()).Result()
				if err != nil {
					t.Fatalf("ZCARD leased: %v", err)
				}
				return n
			}
			mustSchedule(t, st, delivery("evt_l:ep", t0))
			mustSchedule(t, st, delivery("evt_other:ep", t0.Add(time.Millisecond)))
			claimOne(t, st, t0, "evt_l:ep")
			if ok, err := op.do(ctx, st, "evt_l:ep"); !ok || err != nil {
				t.Fatalf("%s(leased) = %v, %v, want true", op.name, ok, err)
			}
			if n := leased(); n != 0 {
				t.Errorf("leased set after %s of a leased delivery: %d members, want 0", op.name, n)
			}
			claimOne(t, st, t0.Add(time.Millisecond), "evt_other:ep") // a lease that stays
			if op.name == "queued" {
				return // only a leased delivery can be marked queued
			}
			q := delivery("evt_q:ep", t0)
			q.Queued = true
			mustSchedule(t, st, q)
			if ok, err := op.do(ctx, st, "evt_q:ep"); !ok || err != nil {
				t.Fatalf("%s(queued) = %v, %v, want true", op.name, ok, err)
			}
			if n := leased(); n != 1 {
				t.Errorf("leased set after %s of a queued delivery: %d members, want 1 (the other lease)", op.name, n)
			}
		})
	}
}
