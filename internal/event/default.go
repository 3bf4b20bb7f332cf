package event

import "io"

// RegistryOptions configures DefaultRegistry.
type RegistryOptions struct {
	// Stdout is where stdout:// writes; nil means os.Stdout.
	Stdout io.Writer
}

// DefaultRegistry returns a registry of the secondary sinks: file, stdout, postgres (also
// postgresql) and nats. The caller registers redis, whose sink needs the store's client.
func DefaultRegistry(opts RegistryOptions) *Registry {
	r := NewRegistry()
	r.Register("file", openFileSink)
	r.Register("stdout", stdoutFactory(opts.Stdout))
	r.Register("postgres", openPostgresSink)
	r.Register("postgresql", openPostgresSink)
	r.Register("nats", openNATSSink)
	return r
}
