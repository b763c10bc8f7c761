#!/usr/bin/env bash
# Provides Debian's nginx binary for the end-to-end tests (they start private, unprivileged
# instances on loopback ports with configs rendered by `go tool task nginx:render`).
#
#   bash .ci/nginx.sh     print EVENTGATE_TEST_NGINX=<path of nginx> on stdout
#
# When the binary is missing and we are root, it installs the Debian package `nginx` first, with a
# policy-rc.d that keeps the package from starting a system-wide nginx on port 80. Without root
# and without nginx it prints nothing: the nginx tests then skip, or fail when
# EVENTGATE_TEST_REQUIRE_NGINX=1. Diagnostics go to stderr. Use from a script:
#
#   set -a; eval "$(bash .ci/nginx.sh)"; set +a
set -euo pipefail

log() { echo "nginx.sh: $*" >&2; }

find_binary() {
	local p
	for p in "$(command -v nginx 2>/dev/null || true)" /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
		if [[ -n "$p" && -x "$p" ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

install_nginx() {
	if [[ "$(id -u)" != 0 ]]; then
		log "nginx is not installed and we are not root: install the nginx package"
		return 1
	fi
	log "installing the nginx Debian package"
	# Keep the package's init script from starting a system-wide nginx on port 80.
	local policy=/usr/sbin/policy-rc.d made_policy=""
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
	fi
	local rc=0
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; } >&2 || rc=$?
	[[ -z "$made_policy" ]] || rm -f "$policy"
	return "$rc"
}

bin=$(find_binary) || { install_nginx && bin=$(find_binary); } || bin=""
if [[ -n "$bin" ]]; then
	echo "EVENTGATE_TEST_NGINX=$bin"
else
	log "no nginx binary: the nginx end-to-end tests will skip or fail"
fi
