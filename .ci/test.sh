#!/usr/bin/env bash
# The whole suite, as `go tool task test` runs it: find or start Redis and a Redis Cluster
# (.ci/redis-cluster.sh), then vet and race tests.
# Tests that need Redis fail (not skip) here, because EVENTGATE_TEST_REQUIRE_REDIS=1; so do the
# nginx tests (EVENTGATE_TEST_REQUIRE_NGINX=1; .ci/nginx.sh installs Debian's nginx when missing)
# and the browser tests (EVENTGATE_TEST_REQUIRE_CHROMIUM=1; .ci/chromium.sh installs chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

set -a
eval "$(bash .ci/redis.sh)"
eval "$(bash .ci/redis-cluster.sh)"
eval "$(bash .ci/nginx.sh)"
eval "$(bash .ci/chromium.sh)"
set +a
trap '[ -z "${EVENTGATE_TEST_REDIS_PIDFILE:-}" ] || bash .ci/redis.sh stop "$EVENTGATE_TEST_REDIS_PIDFILE"
[ -z "${EVENTGATE_TEST_REDIS_CLUSTER_DIR:-}" ] || bash .ci/redis-cluster.sh stop "$EVENTGATE_TEST_REDIS_CLUSTER_DIR"' EXIT
export EVENTGATE_TEST_REQUIRE_REDIS=1 EVENTGATE_TEST_REQUIRE_NGINX=1 EVENTGATE_TEST_REQUIRE_CHROMIUM=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m ./...
# The in-process store's store-agnostic end-to-end tests once more on the on-disk store: their
# servers get an EVENTGATE_DATA_DIR (cmd/eventgate/e2e_helpers_test.go, EVENTGATE_TEST_STORE).
EVENTGATE_TEST_STORE=disk go test -race -count=1 -timeout 10m \
	-run 'TestE2E(StreamHeaders|PublishDelivered|Batch|ResumeAfterDisconnect|SinceZeroAndLive|Filters|HistoryPaging|ErrorsAndIdempotency|ShutdownEndsStreams|Webhooks$|CLI)' ./cmd/eventgate/
