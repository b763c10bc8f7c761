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

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

candidates() { find_binary "$(command -v nginx 2>/dev/null || true)" /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; }

bin=$(candidates) || { apt_install nginx && bin=$(candidates); } || bin=""
if [[ -n "$bin" ]]; then
	echo "EVENTGATE_TEST_NGINX=$bin"
else
	log "no nginx binary: the nginx end-to-end tests will skip or fail"
fi
