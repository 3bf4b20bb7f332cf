package api

import (
	"context"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// shownStore is the store as the API shows it: every state and batch it returns has the secrets
// of its jobs' run: settings (HTTP headers, environment variables) hidden. The scheduler reads
// the store directly and still gets them; the API never sends them to a client.
type shownStore struct{ batch.Store }

func hideState(st *batch.State, err error) (*batch.State, error) {
	if st == nil {
		return st, err
	}
	shown := *st
	shown.Jobs = st.Jobs.WithoutSecrets()
	return &shown, err
}

func (s shownStore) Load(ctx context.Context, wf *batch.Workflow, reset bool) (*batch.State, error) {
	return hideState(s.Store.Load(ctx, wf, reset))
}

func (s shownStore) State(ctx context.Context, wf string) (*batch.State, error) {
	return hideState(s.Store.State(ctx, wf))
}

func (s shownStore) Open(ctx context.Context, wf string, req batch.OpenRequest) (*batch.State, error) {
	return hideState(s.Store.Open(ctx, wf, req))
}

func (s shownStore) End(ctx context.Context, wf string, req batch.EndRequest) (*batch.State, error) {
	return hideState(s.Store.End(ctx, wf, req))
}

func (s shownStore) SetWatermark(ctx context.Context, wf, job string, from time.Time) (*batch.State, error) {
	return hideState(s.Store.SetWatermark(ctx, wf, job, from))
}

func (s shownStore) Batches(ctx context.Context, wf string, opts batch.ListOptions) ([]batch.Batch, error) {
	list, err := s.Store.Batches(ctx, wf, opts)
	for i := range list {
		list[i].Jobs = list[i].Jobs.WithoutSecrets()
	}
	return list, err
}

func (s shownStore) Batch(ctx context.Context, wf string, id int64) (*batch.Batch, error) {
	b, err := s.Store.Batch(ctx, wf, id)
	if b != nil {
		b.Jobs = b.Jobs.WithoutSecrets()
	}
	return b, err
}

func (s shownStore) SetPaused(ctx context.Context, wf string, paused bool, reason string) (*batch.State, error) {
	return hideState(s.Store.SetPaused(ctx, wf, paused, reason))
}
