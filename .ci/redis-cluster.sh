#!/usr/bin/env bash
# Provides a Redis Cluster (3 masters + 3 replicas) for the tests, on loopback only.
#
#   bash .ci/redis-cluster.sh [start]   find or start a cluster; print KEY='value' lines on stdout
#   bash .ci/redis-cluster.sh stop DIR  stop a cluster this script started (and remove DIR)
#   bash .ci/redis-cluster.sh restart DIR PORT   start a killed node of it again
#
# start prints, one per line (the URL holds '&', so values are single-quoted for eval):
#   EVENTGATE_TEST_REDIS_CLUSTER_URL='redis://127.0.0.1:<p1>?addr=127.0.0.1:<p2>&addr=...'
#   EVENTGATE_TEST_REDIS_CLUSTER_DIR='<dir>'     (only when this script started the cluster)
#
# It reuses $EVENTGATE_TEST_REDIS_CLUSTER_URL when its first node answers with cluster_state:ok;
# else it starts six throwaway redis-server processes (cluster mode, no persistence) on free
# loopback ports in a temp dir, joins them with `redis-cli --cluster create --cluster-replicas 1`,
# and waits until every node says cluster_state:ok and every master has its replica in sync.
# EVENTGATE_TEST_REDIS_CLUSTER_FRESH=1 always starts a new one (the failover test does: it kills
# a master). EVENTGATE_TEST_REDIS_CLUSTER_NODE_TIMEOUT (ms, default 1000) is cluster-node-timeout:
# a dead master is replaced after about twice that. Use from a script:
#
#   set -a; eval "$(bash .ci/redis-cluster.sh)"; set +a
#   trap '[ -z "${EVENTGATE_TEST_REDIS_CLUSTER_DIR:-}" ] || bash .ci/redis-cluster.sh stop "$EVENTGATE_TEST_REDIS_CLUSTER_DIR"' EXIT
#
# Diagnostics go to stderr. Nothing here flushes data of a cluster it did not start.
set -euo pipefail

log() { echo "redis-cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

cli() { timeout 5 redis-cli -h 127.0.0.1 "$@"; }

# cluster_ok PORT: the node there says cluster_state:ok.
cluster_ok() { cli -p "$1" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'; }

# closed PORT: nothing listens there (a refused connection).
closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_ports N: N distinct loopback ports p whose cluster bus port p+10000 is free too. Both stay
# below the kernel's ephemeral range: a port there may be the local end of some outgoing
# connection, which a connect test cannot see and which makes redis-server's bind fail.
free_ports() {
	local n=$1 port tries picked=" " ephemeral span
	ephemeral=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	span=$((ephemeral - 10000 - 10000))
	((span > 1000)) || span=1000
	for tries in $(seq 1 500); do
		port=$((10000 + RANDOM % span))
		[[ "$picked" == *" $port "* || "$picked" == *" $((port + 10000)) "* ]] && continue
		closed "$port" && closed $((port + 10000)) || continue
		picked+="$port "
		(($(wc -w <<<"$picked") == n)) && { echo "$picked"; return 0; }
	done
	return 1
}

# start_node DIR PORT: start (or restart, rejoining with its nodes.conf) the node of PORT.
start_node() {
	local dir=$1 p=$2
	# cluster-replica-validity-factor 0: a replica may always take over (it was in sync a moment
	# ago; a test must not wait for a manual failover). repl-diskless-sync-delay 0: a replica's
	# first sync starts at once, not after Redis's default 5 s.
	"$(cat "$dir/bin")" --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
		--cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" \
		--cluster-node-timeout "$(cat "$dir/node-timeout")" --cluster-replica-validity-factor 0 \
		--repl-diskless-sync-delay 0 \
		--pidfile "$dir/$p/redis.pid" --dir "$dir/$p" --logfile "$dir/$p/redis.log" >&2
}

cmd_start() {
	local url=${EVENTGATE_TEST_REDIS_CLUSTER_URL:-}
	if [[ "${EVENTGATE_TEST_REDIS_CLUSTER_FRESH:-}" != 1 && "$url" =~ ^redis://127\.0\.0\.1:([0-9]+) ]] &&
		cluster_ok "${BASH_REMATCH[1]}"; then
		log "using $url"
		echo "EVENTGATE_TEST_REDIS_CLUSTER_URL='$url'"
		return 0
	fi
	local bin
	bin=$(find_binary "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server) ||
		{ apt_install redis-server && bin=$(find_binary /usr/bin/redis-server); } ||
		die "no redis-server binary (install the redis-server Debian package)"
	command -v redis-cli >/dev/null || die "no redis-cli (install the redis-tools Debian package)"
	local attempt
	for attempt in 1 2 3; do
		# Another process may take a port between the check and the bind: pick new ones.
		start_cluster "$bin" && return 0
		log "attempt $attempt failed"
	done
	die "could not start a Redis Cluster"
}

# start_cluster BIN: start the six nodes and join them; false (all stopped) when a node fails to
# start, e.g. because its port was taken meanwhile.
start_cluster() {
	local bin=$1 timeout=${EVENTGATE_TEST_REDIS_CLUSTER_NODE_TIMEOUT:-1000} ports dir p
	ports=$(free_ports 6) || die "no six free loopback ports found"
	dir=$(mktemp -d "${TMPDIR:-/tmp}/eventgate-redis-cluster.XXXXXX")
	echo "$bin" >"$dir/bin"
	echo "$timeout" >"$dir/node-timeout"
	for p in $ports; do
		mkdir "$dir/$p"
		start_node "$dir" "$p" || { log "redis-server on port $p failed to start"; cmd_stop "$dir"; return 1; }
	done
	local i nodes=()
	for p in $ports; do
		for i in $(seq 1 200); do
			[[ "$(cli -p "$p" ping 2>/dev/null)" == PONG ]] && break
			sleep 0.05
		done
		if [[ "$(cli -p "$p" ping 2>/dev/null)" != PONG ]]; then
			tail -3 "$dir/$p/redis.log" >&2
			log "redis-server on port $p does not answer"
			cmd_stop "$dir"
			return 1
		fi
		nodes+=("127.0.0.1:$p")
	done
	cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
		{ cat "$dir/create.log" >&2; cmd_stop "$dir"; die "redis-cli --cluster create failed"; }
	# Every node agrees, and every master's replica finished its first sync (a test may WAIT 1).
	local ready=""
	for i in $(seq 1 200); do
		ready=1
		for p in $ports; do
			cluster_ok "$p" || { ready=""; break; }
			if cli -p "$p" info replication 2>/dev/null | tr -d '\r' | grep -qx 'role:master'; then
				cli -p "$p" info replication | tr -d '\r' | grep -q '^slave0:.*state=online' || { ready=""; break; }
			fi
		done
		[[ -n "$ready" ]] && break
		sleep 0.05
	done
	[[ -n "$ready" ]] || { cmd_stop "$dir"; die "cluster on ports $ports did not reach cluster_state:ok"; }
	set -- $ports
	log "started a Redis Cluster on 127.0.0.1 ports $ports ($dir)"
	echo "EVENTGATE_TEST_REDIS_CLUSTER_URL='redis://127.0.0.1:$1?addr=127.0.0.1:$2&addr=127.0.0.1:$3&addr=127.0.0.1:$4&addr=127.0.0.1:$5&addr=127.0.0.1:$6'"
	echo "EVENTGATE_TEST_REDIS_CLUSTER_DIR='$dir'"
}

cmd_stop() {
	local dir=${1:-} pidfile pid i
	[[ -n "$dir" ]] || die "usage: $0 stop DIR"
	[[ -d "$dir" ]] || { log "$dir: no such directory (already stopped?)"; return 0; }
	# Only a cluster this script started: its folder is one of our temp dirs.
	[[ "$(basename "$dir")" == eventgate-redis-cluster.* ]] || die "$dir was not made by this script"
	local pids=()
	for pidfile in "$dir"/*/redis.pid; do
		pid=$(cat "$pidfile" 2>/dev/null) || continue
		[[ "$pid" =~ ^[0-9]+$ ]] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
	done
	for pid in "${pids[@]}"; do
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$pid" 2>/dev/null && { log "pid $pid ignored TERM; killing"; kill -KILL "$pid" 2>/dev/null; } || true
	done
	rm -rf -- "$dir"
	log "stopped the cluster in $dir"
}

# cmd_restart DIR PORT: start a node of a cluster this script started again (after a test killed
# it); it rejoins from its nodes.conf, as a replica once another node took over its slots.
cmd_restart() {
	local dir=${1:-} p=${2:-}
	[[ -d "$dir" && "$(basename "$dir")" == eventgate-redis-cluster.* && "$p" =~ ^[0-9]+$ && -d "$dir/$p" ]] ||
		die "usage: $0 restart DIR PORT (a node of a cluster this script started)"
	start_node "$dir" "$p" || die "redis-server on port $p failed to start"
	log "restarted the node on 127.0.0.1:$p"
}

case "${1:-start}" in
start) cmd_start ;;
stop) cmd_stop "${2:-}" ;;
restart) cmd_restart "${2:-}" "${3:-}" ;;
*) die "usage: $0 [start] | stop DIR | restart DIR PORT" ;;
esac
