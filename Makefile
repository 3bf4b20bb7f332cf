BENCH_FLAGS ?=

.PHONY: bench

# bench measures batchy on this machine (about 5 minutes) and rewrites docs/benchmarks.md;
# e.g. make bench BENCH_FLAGS="--duration 5s --workflows 1000".
bench:
	go run ./bench $(BENCH_FLAGS)
