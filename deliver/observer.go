package deliver

import "time"

// PublishObserver is told of failed publishes (metrics).
type PublishObserver interface {
	// PublishFailed: a JetStream publish to stream failed.
	PublishFailed(stream string)
}

// Observer is told what the workers do (metrics).
type Observer interface {
	PublishObserver
	// Attempted: one attempt to endpoint finished after d; outcome is "delivered",
	// "retry" (rescheduled), or "dead" (410 Gone, or the schedule is exhausted).
	Attempted(endpoint, outcome string, d time.Duration)
	// InFlight: delta (+1 or -1) POSTs to endpoint running now.
	InFlight(endpoint string, delta int)
}

type nopObserver struct{}

func (nopObserver) PublishFailed(string)                    {}
func (nopObserver) Attempted(string, string, time.Duration) {}
func (nopObserver) InFlight(string, int)                    {}
