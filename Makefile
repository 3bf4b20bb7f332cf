BENCH_FLAGS ?=

.PHONY: bench

# bench measures batchy on this machine (about 2-3 minutes) and rewrites docs/benchmarks.md;
# e.g. make bench BENCH_FLAGS="--duration 5s".
bench:
	go run ./bench $(BENCH_FLAGS)
