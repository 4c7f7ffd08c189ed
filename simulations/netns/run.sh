#!/usr/bin/env bash
# Runs a mesh of jstp-peer processes on one machine, each in its own
# network namespace with its own address, joined by a bridge, and checks
# that dispatches, bindings and saturation routing work across them.
#
#   sudo simulations/netns/run.sh            # 8 peers
#   sudo PEERS=12 simulations/netns/run.sh
#
# It needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2; where
# namespaces cannot be created it says why and exits 0 without running.
# Everything it creates (namespaces, processes, a temporary directory)
# is removed on exit. Exit status: 0 all checks passed (or skipped),
# 1 a check failed, 2 the mesh could not be set up.
set -euo pipefail

PEERS=${PEERS:-8}
PREFIX=${PREFIX:-jstpsim}
NAME=svc.netns
SUBNET=10.231.0
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

skip() { echo "netns: skipped: $*"; exit 0; }
say() { printf '[%5ss] %s\n' "$SECONDS" "$*"; }
die() { echo "netns: $*" >&2; exit 2; }

[ "$PEERS" -ge 8 ] || die "PEERS must be at least 8 (got $PEERS)"
command -v ip >/dev/null 2>&1 || skip "iproute2 (the ip command) is not installed"
[ "$(id -u)" = 0 ] || skip "creating network namespaces needs root (try sudo)"
probe_err=$(ip netns add "$PREFIX-probe" 2>&1) || skip "cannot create a network namespace: $probe_err"
ip netns del "$PREFIX-probe"
command -v go >/dev/null 2>&1 || skip "the Go toolchain is needed to build jstp-peer"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ((i = 0; i < PEERS; i++)); do ip netns del "$PREFIX-$i" 2>/dev/null || true; done
	ip netns del "$PREFIX-sw" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

say "building jstp-peer"
(cd "$ROOT" && go build -o "$WORK/jstp-peer" ./cmd/jstp-peer) || die "build failed"
BIN=$WORK/jstp-peer

# One namespace holds the bridge (the "switch"); each peer's namespace has
# one end of a veth pair as eth0, the other end on the bridge.
say "creating $PEERS namespaces on a bridge"
ip netns add "$PREFIX-sw"
ip -n "$PREFIX-sw" link add br0 type bridge
ip -n "$PREFIX-sw" link set br0 up
for ((i = 0; i < PEERS; i++)); do
	ns=$PREFIX-$i
	ip netns add "$ns"
	ip link add "$PREFIX-v$i" netns "$ns" type veth peer name "p$i" netns "$PREFIX-sw"
	ip -n "$ns" link set "$PREFIX-v$i" name eth0
	ip -n "$ns" addr add "$SUBNET.$((i + 1))/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	ip -n "$PREFIX-sw" link set "p$i" master br0
	ip -n "$PREFIX-sw" link set "p$i" up
done

in_ns() { local i=$1; shift; ip netns exec "$PREFIX-$i" "$@"; }
# cli I ARGS: a jstp-peer command through peer I's own gateway.
cli() { local i=$1; shift; in_ns "$i" "$BIN" "$@" --via 127.0.0.1:33333; }

# wait_for SECONDS WHAT COMMAND...: retry until the command succeeds.
wait_for() {
	local limit=$1 what=$2; shift 2
	local end=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || die "timed out after ${limit}s waiting for $what"
		sleep 0.2
	done
}

first_id() { grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4; }
peer_id() { "$BIN" id --data-dir "$WORK/p$1" --json | first_id; }

start_peer() {
	local i=$1; shift
	local ip=$SUBNET.$((i + 1))
	mkdir -p "$WORK/p$i"
	# exec: the background job's pid is the peer's own (ip netns exec
	# execs it), so cleanup can stop it.
	(exec ip netns exec "$PREFIX-$i" "$BIN" up --data-dir "$WORK/p$i" \
		--listen "/ip4/$ip/tcp/4033" --listen "/ip4/$ip/udp/4033/quic-v1" \
		--gateway-tcp 127.0.0.1:33333 --gateway-ws "" --no-mdns "$@" \
		>"$WORK/p$i.log" 2>&1) &
	PIDS+=($!)
}

say "starting peer 0, the bootstrap peer"
start_peer 0 --dht server
wait_for 30 "peer 0 to answer" cli 0 send 'jstp:///peer' --quiet
ID0=$(peer_id 0)
BOOT=/ip4/$SUBNET.1/tcp/4033/p2p/$ID0
say "starting peers 1-$((PEERS - 1)); 1, 2 and 3 provide $NAME"
for ((i = 1; i < PEERS; i++)); do
	if [ "$i" -le 3 ]; then
		start_peer "$i" --bootstrap "$BOOT" --provide "$NAME"
	else
		start_peer "$i" --bootstrap "$BOOT"
	fi
done
for ((i = 1; i < PEERS; i++)); do
	wait_for 30 "peer $i to answer" cli "$i" send 'jstp:///peer' --quiet
done
LAST=$((PEERS - 1))
FAILED=0
SKIPPED=
check() { # check WHAT COMMAND...
	local what=$1; shift
	if "$@"; then say "ok: $what"; else say "FAILED: $what"; FAILED=1; fi
}

# 1. send: the last peer asks peer 0 by peer id, across two namespaces.
echo_hi() { cli "$LAST" send "jstp://$ID0/echo/hello-netns" --format body | grep -q hello-netns; }
check "send from peer $LAST to peer 0 by peer id" echo_hi

# 2. bind: peer 5 binds to POST /news/* on peer 0; peer 6 posts there.
(exec ip netns exec "$PREFIX-5" "$BIN" bind "POST jstp://$ID0/news/*" --count 1 --format body --via 127.0.0.1:33333 \
	>"$WORK/bind.out" 2>"$WORK/bind.err") &
BIND=$!
PIDS+=($BIND)
bound() { cli 0 send 'jstp:///subscriptions' --format body | grep -q news; }
wait_for 30 "peer 5's binding to reach peer 0" bound
cli 6 send "POST jstp://$ID0/news/1" --body '{"from":"peer 6"}' >"$WORK/post.out" 2>&1 || true
bind_got() {
	local end=$((SECONDS + 20))
	while kill -0 "$BIND" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
	grep -q '"peer 6"' "$WORK/bind.out" && return 0
	echo "  the POST's answers:"; sed 's/^/    /' "$WORK/post.out"
	echo "  bind printed:"; sed 's/^/    /' "$WORK/bind.out" "$WORK/bind.err"
	return 1
}
check "bind on peer 5 receives a POST processed by peer 0" bind_got

# 3. saturation routing: peer 2 reports its queue at 95%; requests to the
# name from the last peer should avoid it.
ID2=$(peer_id 2)
cli 2 send 'PUT jstp:///saturation/metrics/queue' --body '{"value": 95, "capacity": 100}' --quiet
critical_seen() { cli "$LAST" saturation --once | grep -q "^$ID2 \+critical"; }
wait_for 60 "peer $LAST to hear that peer 2 is critical" critical_seen
# Every peer measures this machine's CPU, RAM and disk: on a machine
# busy enough to be critical by itself, every replica is, and there is
# nothing to route around. The check then says so instead of failing.
healthy() { ! cli "$LAST" saturation --once | grep -qE "^($(peer_id 1)|$(peer_id 3)) +critical"; }
if ! (wait_for 60 "the healthy replicas to be seen below critical" healthy) 2>/dev/null; then
	SKIPPED=" (saturation routing skipped: the machine is saturated)"
	say "skipped: saturation routing; peers 1 and 3 report critical too: the machine itself is saturated ($(cut -d' ' -f1-3 /proc/loadavg) load), and every peer measures it"
else
	declare -A COUNT=()
	for ((k = 0; k < 60; k++)); do
		id=$(cli "$LAST" send "jstp://$NAME/peer" --format body | first_id)
		COUNT[$id]=$((${COUNT[$id]:-0} + 1))
	done
	for ((i = 1; i <= 3; i++)); do
		say "  peer $i answered ${COUNT[$(peer_id "$i")]:-0} of 60"
	done
	avoided() { [ "${COUNT[$ID2]:-0}" -le 6 ]; }
	check "the critical replica (peer 2) got at most 10% of 60 requests" avoided
	spread() { [ "${COUNT[$(peer_id 1)]:-0}" -gt 0 ] && [ "${COUNT[$(peer_id 3)]:-0}" -gt 0 ]; }
	check "the two healthy replicas both got requests" spread
fi

if [ "$FAILED" != 0 ]; then
	echo "netns: some checks failed; peer logs were in $WORK (removed on exit)" >&2
	for ((i = 0; i < PEERS; i++)); do echo "--- peer $i"; tail -5 "$WORK/p$i.log"; done >&2
	exit 1
fi
say "all checks passed with $PEERS peers in $PEERS network namespaces$SKIPPED"
