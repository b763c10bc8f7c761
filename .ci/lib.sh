# Shared by the .ci scripts that provide a binary for the tests (source it; the caller defines
# log, which writes its diagnostics to stderr).

# find_binary CANDIDATE...: print the first candidate that is an executable file (empty ones are
# skipped, so `"$(command -v x)"` may be one).
find_binary() {
	local p
	for p in "$@"; do
		if [[ -n "$p" && -x "$p" ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# apt_install PACKAGE: install a Debian package, as root only, without letting its init script
# start a system-wide service (a policy-rc.d that refuses, removed afterwards if we made it).
apt_install() {
	local pkg=$1
	if [[ "$(id -u)" != 0 ]]; then
		log "$pkg is not installed and we are not root: install the $pkg package"
		return 1
	fi
	log "installing the $pkg Debian package"
	local policy=/usr/sbin/policy-rc.d made_policy=""
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
	fi
	local rc=0
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg"; } >&2 || rc=$?
	[[ -z "$made_policy" ]] || rm -f "$policy"
	return "$rc"
}
