#!/usr/bin/env bash
# Benchmarks, as `go tool task bench` runs them. Loopback only; Redis found or started as in tests.
set -euo pipefail
cd "$(dirname "$0")/.."

set -a
eval "$(bash .ci/redis.sh)"
set +a
trap '[ -z "${EVENTGATE_TEST_REDIS_PIDFILE:-}" ] || bash .ci/redis.sh stop "$EVENTGATE_TEST_REDIS_PIDFILE"' EXIT

go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-2s}" ./streams/ ./handlers/ ./store/
