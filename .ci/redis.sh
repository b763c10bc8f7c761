#!/usr/bin/env bash
# Provides a Redis (≥ 7) for the tests, on loopback only.
#
#   bash .ci/redis.sh [start]      find or start a server; print KEY=value lines on stdout
#   bash .ci/redis.sh stop PIDFILE stop a server this script started (and remove its temp dir)
#
# start prints, one per line (values contain no spaces or quotes):
#   EVENTGATE_TEST_REDIS_URL=redis://127.0.0.1:<port>/0
#   EVENTGATE_TEST_REDIS_SERVER=<path of redis-server>   (end-to-end tests start private servers)
#   EVENTGATE_TEST_REDIS_PIDFILE=<pidfile>               (only when this script started a server)
#
# It reuses $EVENTGATE_TEST_REDIS_URL if that answers, else a server at 127.0.0.1:6379, else it
# starts a throwaway redis-server (no persistence) on a free loopback port, installing the Debian
# package redis-server first when the binary is missing and we are root. EVENTGATE_TEST_REDIS_FRESH=1
# always starts a throwaway server. Use from a script:
#
#   set -a; eval "$(bash .ci/redis.sh)"; set +a
#   trap '[ -z "${EVENTGATE_TEST_REDIS_PIDFILE:-}" ] || bash .ci/redis.sh stop "$EVENTGATE_TEST_REDIS_PIDFILE"' EXIT
#
# Diagnostics go to stderr. Tests only ever delete their own key prefix; nothing here flushes data.
set -euo pipefail

log() { echo "redis.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# redis_ping HOST PORT: true when a Redis answers PING there (redis-cli, else bash's /dev/tcp).
redis_ping() {
	local host=$1 port=$2
	if command -v redis-cli >/dev/null 2>&1; then
		[[ "$(timeout 3 redis-cli -h "$host" -p "$port" ping 2>/dev/null)" == PONG ]]
		return
	fi
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$0/$1" || exit 1
		printf "PING\r\n" >&3
		IFS= read -r -t 2 reply <&3 || exit 1
		[[ "$reply" == +PONG* ]]' "$host" "$port" 2>/dev/null
}

# major_version HOST PORT: the server's major version (0 if unknown).
major_version() {
	local v
	v=$(timeout 3 redis-cli -h "$1" -p "$2" info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p') || true
	echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}

# usable HOST PORT: answers PING and, when redis-cli can tell, is Redis 7 or newer (the log needs
# XINFO STREAM's max-deleted-entry-id).
usable() {
	redis_ping "$1" "$2" || return 1
	command -v redis-cli >/dev/null 2>&1 || return 0
	local major
	major=$(major_version "$1" "$2")
	if ((major < 7)); then
		log "Redis at $1:$2 is version $major.x; need 7 or newer"
		return 1
	fi
}

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

find_server_binary() {
	find_binary "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server /usr/sbin/redis-server /usr/local/bin/redis-server
}

free_port() {
	local port tries
	for tries in $(seq 1 200); do
		port=$((20000 + RANDOM % 20000))
		# A refused connection means nothing listens there.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

start_throwaway() {
	local bin=$1 port dir
	port=$(free_port) || die "no free loopback port found"
	dir=$(mktemp -d "${TMPDIR:-/tmp}/eventgate-redis.XXXXXX")
	"$bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
		--pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" >&2 ||
		die "redis-server failed to start (log: $dir/redis.log)"
	local i
	for i in $(seq 1 100); do
		if redis_ping 127.0.0.1 "$port" && [[ -s "$dir/redis.pid" ]]; then
			log "started throwaway redis-server on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"))"
			echo "EVENTGATE_TEST_REDIS_URL=redis://127.0.0.1:$port/0"
			echo "EVENTGATE_TEST_REDIS_PIDFILE=$dir/redis.pid"
			return 0
		fi
		sleep 0.1
	done
	die "redis-server on 127.0.0.1:$port did not answer (log: $dir/redis.log)"
}

cmd_start() {
	local bin=""
	bin=$(find_server_binary) || { apt_install redis-server && bin=$(find_server_binary); } || bin=""
	if [[ -n "$bin" ]]; then
		echo "EVENTGATE_TEST_REDIS_SERVER=$bin"
	else
		log "no redis-server binary: tests that start their own servers will skip or fail"
	fi

	if [[ "${EVENTGATE_TEST_REDIS_FRESH:-}" != 1 ]]; then
		local url=${EVENTGATE_TEST_REDIS_URL:-}
		if [[ "$url" =~ ^redis://(127\.0\.0\.1|localhost):([0-9]+)(/[0-9]+)?$ ]] &&
			usable 127.0.0.1 "${BASH_REMATCH[2]}"; then
			log "using $url"
			echo "EVENTGATE_TEST_REDIS_URL=$url"
			return 0
		fi
		if usable 127.0.0.1 6379; then
			log "using the Redis at 127.0.0.1:6379"
			echo "EVENTGATE_TEST_REDIS_URL=redis://127.0.0.1:6379/0"
			return 0
		fi
	fi
	[[ -n "$bin" ]] || die "no usable Redis at 127.0.0.1:6379 and no redis-server to start"
	start_throwaway "$bin"
}

cmd_stop() {
	local pidfile=${1:-}
	[[ -n "$pidfile" ]] || die "usage: $0 stop PIDFILE"
	[[ -f "$pidfile" ]] || { log "$pidfile: no such pidfile (already stopped?)"; return 0; }
	local pid dir i
	pid=$(cat "$pidfile")
	dir=$(dirname "$pidfile")
	[[ "$pid" =~ ^[0-9]+$ ]] || die "$pidfile: not a pid"
	# Only a redis-server this script started: its pidfile lives in our temp dir.
	[[ "$(basename "$dir")" == eventgate-redis.* ]] || die "$pidfile was not made by this script"
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && { log "pid $pid ignored TERM; killing"; kill -KILL "$pid" 2>/dev/null || true; }
	fi
	rm -rf -- "$dir"
	log "stopped redis-server pid $pid"
}

case "${1:-start}" in
start) cmd_start ;;
stop) cmd_stop "${2:-}" ;;
*) die "usage: $0 [start] | stop PIDFILE" ;;
esac
