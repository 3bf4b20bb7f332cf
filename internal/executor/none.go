package executor

import "context"

// noneExecutor runs nothing: the batch stays open until an external tool closes or fails it.
type noneExecutor struct{}

// NewNone is the none factory; it takes no settings.
func NewNone(m map[string]any) (Executor, error) {
	if err := newSettings("none", m).done(); err != nil {
		return nil, err
	}
	return noneExecutor{}, nil
}

// String names the executor, for logs.
func (noneExecutor) String() string { return "none" }

// Run returns at once with Detached set.
func (noneExecutor) Run(context.Context, Task) Result { return Result{Detached: true} }

// Interface guards.
var (
	_ Executor = (*execExecutor)(nil)
	_ Executor = (*httpExecutor)(nil)
	_ Executor = noneExecutor{}
)
