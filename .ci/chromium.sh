#!/usr/bin/env bash
# Provides Debian's headless-capable chromium for the browser end-to-end tests
# (cmd/eventgate/e2e_browser_test.go drives it over the DevTools protocol with chromedp).
#
#   bash .ci/chromium.sh     print EVENTGATE_TEST_CHROMIUM=<path of chromium> on stdout
#
# When the binary is missing and we are root, it installs the Debian package `chromium` first.
# Without root and without chromium it prints nothing: the browser tests then skip, or fail when
# EVENTGATE_TEST_REQUIRE_CHROMIUM=1. Diagnostics go to stderr. Use from a script:
#
#   set -a; eval "$(bash .ci/chromium.sh)"; set +a
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

candidates() { find_binary "${EVENTGATE_TEST_CHROMIUM:-}" "$(command -v chromium 2>/dev/null || true)" /usr/bin/chromium /usr/lib/chromium/chromium; }

bin=$(candidates) || { apt_install chromium && bin=$(candidates); } || bin=""
if [[ -n "$bin" ]]; then
	echo "EVENTGATE_TEST_CHROMIUM=$bin"
else
	log "no chromium binary: the browser end-to-end tests will skip or fail"
fi
