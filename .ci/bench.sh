#!/usr/bin/env bash
# Benchmarks, as `go tool task bench` runs them. Loopback only; Redis found or started as in tests.
# EVENTGATE_BENCH_CONNS (default 10000) and EVENTGATE_BENCH_SECONDS (default 5) size the load runs.
# EVENTGATE_BENCH_LOAD=1 adds the fan-out load benchmark (BenchmarkLoad: clients in a process of
# their own, Redis, HTTP publisher; a few minutes), EVENTGATE_BENCH_LOAD_COUNT (default 3) times:
# see docs/performance.md#fan-out-under-load for its other knobs.
set -euo pipefail
cd "$(dirname "$0")/.."

set -a
eval "$(bash .ci/redis.sh)"
eval "$(bash .ci/redis-cluster.sh)"
set +a
trap '[ -z "${EVENTGATE_TEST_REDIS_PIDFILE:-}" ] || bash .ci/redis.sh stop "$EVENTGATE_TEST_REDIS_PIDFILE"
[ -z "${EVENTGATE_TEST_REDIS_CLUSTER_DIR:-}" ] || bash .ci/redis-cluster.sh stop "$EVENTGATE_TEST_REDIS_CLUSTER_DIR"' EXIT

# Core, framing and store micro-benchmarks.
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-2s}" ./streams/ ./handlers/ ./store/
# Loopback load against the real binary: memory per idle connection, broadcast latency.
go test -run '^$' -bench 'IdleConnections|Broadcast' -benchtime 1x -timeout 30m ./cmd/eventgate/
# The on-disk store through the binary: 16 publishing clients (acknowledged = fsync'd), start-up
# on a full log (docs/storage.md).
go test -run '^$' -bench 'DiskPublish16' -benchtime 60000x -count 3 -timeout 10m ./cmd/eventgate/
go test -run '^$' -bench 'DiskStartup' -benchtime 3x -timeout 10m ./cmd/eventgate/
if [ "${EVENTGATE_BENCH_LOAD:-}" = 1 ]; then
	# Opt-in: subscribers in a separate process, eventgate on Redis and the floor (bench/floor).
	# Rounds rather than -count: each round measures floor, SSE and WebSocket back to back, so a
	# ratio compares runs made under the same load from the rest of the machine.
	for _ in $(seq "${EVENTGATE_BENCH_LOAD_COUNT:-3}"); do
		go test -run '^$' -bench '^BenchmarkLoad$' -benchtime 1x -timeout 60m ./cmd/eventgate/
	done
fi
