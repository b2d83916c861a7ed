#!/usr/bin/env bash
# `make demo`: the simulated Explorer (deploy/simulator) and the exporter,
# both on 127.0.0.1, until Ctrl-C. When an address is already taken it fails
# and names it, rather than pointing the user at somebody else's exporter or
# reading somebody else's Explorer.
#
# Environment (all optional):
#   BIN            where `make build` put the binaries (default .build/bin)
#   EXPLORER_ADDR  the simulator's address (default 127.0.0.1:7002, as in config.yml)
#   LISTEN_ADDR    the exporter's address (default 127.0.0.1:9064)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${BIN:-.build/bin}
explorer=${EXPLORER_ADDR:-127.0.0.1:7002}
listen=${LISTEN_ADDR:-127.0.0.1:9064}

# listening ADDR: something accepts TCP connections on ADDR.
listening() {
	# shellcheck disable=SC2016 # $1 is the inner shell's argument
	timeout 1 bash -c ': <>"/dev/tcp/${1%:*}/${1##*:}"' _ "$1" 2>/dev/null
}

for addr in "$explorer" "$listen"; do
	if listening "$addr"; then
		echo "demo: $addr is already in use by another program: stop it, or choose free addresses," >&2
		echo "      e.g. make demo DEMO_EXPLORER=127.0.0.1:7102 DEMO_LISTEN=127.0.0.1:9164" >&2
		exit 1
	fi
done

pids=()
tmp=$(mktemp -d)
trap 'kill "${pids[@]}" 2>/dev/null; wait; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# The sample config.yml, pointed at this simulator.
sed "s#url: http://127.0.0.1:7002#url: http://$explorer#" config.yml >"$tmp/config.yml"
if ! grep -q "url: http://$explorer" "$tmp/config.yml"; then
	echo "demo: config.yml has no 'url: http://127.0.0.1:7002' to point at the simulator" >&2
	exit 1
fi

# start NAME ADDR COMMAND...: runs COMMAND in the background and waits until
# it listens on ADDR; fails if it exits first (e.g. the address was taken
# meanwhile).
start() {
	local name=$1 addr=$2 pid
	shift 2
	"$@" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "demo: the $name stopped: it cannot serve $addr (see its message above)" >&2
			exit 1
		fi
		if listening "$addr"; then
			return
		fi
		sleep 0.1
	done
	echo "demo: the $name does not listen on $addr after 10 s" >&2
	exit 1
}

start simulator "$explorer" "$BIN/simulator" --web.listen-address="$explorer"
start exporter "$listen" "$BIN/nebula_explorer_exporter" --config.file="$tmp/config.yml" --web.listen-address="$listen"
echo
echo ">> metrics: http://$listen/metrics  (Ctrl-C stops the demo)"
echo
# Ends when either process does (or at Ctrl-C).
wait -n || true
echo "demo: a process of the demo stopped" >&2
exit 1
