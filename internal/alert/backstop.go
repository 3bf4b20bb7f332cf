package alert

import (
	"context"

	"github.com/batchy/batchy/internal/event"
)

// FeedID is the backstop's ID as an event.Feeder: the name of its lease and cursors in Redis.
const FeedID = "alerts"

// Backstop returns the event sink that raises alerts from the workflows' durable event streams,
// fed by an event.Feeder (ID FeedID, Recent set) on every replica, one of which holds its lease.
// Observe raises an alert at once, but in the process that made the transition: a replica that
// dies between the transition (already in the stream) and the claim would lose it. The backstop
// computes the same alerts under the same keys (alertsOf), so it raises what Observe did not claim
// and finds claimed, and leaves, what it did: each alert is raised once, whichever path claims it.
func (a *Alerter) Backstop() event.Sink { return backstop{a} }

type backstop struct{ a *Alerter }

var _ event.Sink = backstop{}

// Write raises the alerts the events call for and returns once each is claimed (or found claimed
// before): the feeder moves its cursor past the events only then, and retries them on an error.
// Delivery goes on in the background with its retries; a claim whose replica dies expires and
// another replica's Retry delivers the alert.
func (b backstop) Write(ctx context.Context, events []event.Event) error {
	alerts, perAttempt := alertsOf(events, false) // a fail read back says itself whether a run made it
	if len(alerts) == 0 && len(perAttempt) == 0 {
		return nil
	}
	return b.a.raiseAlerts(ctx, alerts, perAttempt)
}

// Close implements event.Sink: the deliveries belong to the Alerter.
func (backstop) Close() error { return nil }

// String implements event.Sink.
func (backstop) String() string { return FeedID }
