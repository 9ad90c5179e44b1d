#!/usr/bin/env bash
# test_dpdk.sh BUILD_DIR - the native stack on the DPDK netdev
# (--netdev=dpdk:VDEV), inside a network namespace made here and always
# deleted on exit (with the taps the DPDK tap PMD made in it), whatever
# happens.  EAL runs with --no-huge -m 512 except in the one hugepages case.
#
#   available  a build without DPDK (the driver says 'built without DPDK'),
#              a user who is not root or no `ip netns`: every case below is
#              reported as "skip - NAME # REASON" and counted as skipped
#   net_null   a server on net_null0 starts, says which device it runs on,
#              and exits 0 on SIGTERM
#   tap        DPDK's tap PMD makes skdp0 in the namespace (kernel side
#              10.232.0.1/24 with a MAC of its own - the PMD gives it the
#              port's -, skerry 10.232.0.2/24); skerry-memcached -t 1:
#              mc_client_test.py --group main, memccapable -a and -b,
#              stats; skerry-httpd -t 1: every file of apps/httpd/www
#              byte-exact, 404, keep-alive reuse; SIGTERM exits 0 within 5 s
#   tap x2     skerry-httpd -t 2 (2 queue pairs): 200 concurrent connections
#              all served, both shards accepted some (the stack's counters,
#              logged at exit with --log-level debug)
#   memif      skerry-memcached on net_memif0 role=server (10.233.0.1/24)
#              and skerry-loadgen on its role=client peer (10.233.0.2/24):
#              --verify --preload, single gets and --multiget 8, exit 0 with
#              ops>0 and no errors; the same with 2 shards on each side
#              (memif queues pair up, so both sides get -t 2) and both
#              server shards accepted connections; once more on 2 MiB
#              hugepages (scripts/hugepages setup/teardown; skipped if it
#              cannot have them), EAL's memory seen on 2 MiB pages.  Every
#              server stops on SIGTERM with status 0 within 5 s, without
#              running out its --stop-grace-ms (3 s here).
#   errors     bad --netdev=dpdk:/--eal combinations exit 2 with a reason
#              (the --eal ones need no DPDK and always run); a bogus vdev
#              exits 1 naming it; with no hugepages visible (in a private
#              mount namespace: a /proc/meminfo without free ones, an empty
#              /sys/kernel/mm/hugepages) and no --no-huge, skerry's error
#              mentions hugepages and --no-huge
# Ends by checking that the namespace is gone.
#
# Needs root and `ip netns` (iproute2), curl, memccapable,
# python3-pymemcache, python3-h11 (scripts/install-deps --test), unshare
# (util-linux) for the no-hugepages case.  Only addresses inside the
# namespace are used; memif links are between two processes in it.  Every
# step is bounded and each part has a budget: well under 3 minutes when
# everything passes.
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3	# Debian's, which has pymemcache and h11
T_START=$(date +%s)
DEADLINE=$((T_START + 165))	# nothing new starts after this

httpd="$build/apps/httpd/skerry-httpd"
mcd="$build/apps/memcached/skerry-memcached"
lg="$build/bench/loadgen/skerry-loadgen"
hugepages="$here/../../scripts/hugepages"
www=$(cd "$here/../../apps/httpd/www" && pwd)
NS=skerry-dp-$$
TAP=skdp0
PEER=10.232.0.1
SMAC=02:00:00:e8:00:02	# skerry's --mac in the httpd case
SIP=10.232.0.2
MS=10.233.0.1	# memif: the server
MC=10.233.0.2	# memif: the load generator
EAL='--no-huge -m 512'
EALOPT=(--eal "$EAL")	# empty in the hugepages case
GRACE=3000	# the servers' --stop-grace-ms

tmp=$(mktemp -d /tmp/skerry-dpdk-test.XXXXXX)
pids=()
ns_made=0
huge_setup=0

# is process $1 a descendant of this script?
ours() {
	local p=$1
	for _ in $(seq 1 32); do
		p=$(ppid "$p")
		[ -z "$p" ] || [ "$p" -le 1 ] && return 1
		[ "$p" = "$$" ] && return 0
	done
	return 1
}
# delete the namespace (and so the taps in it) after killing whatever of
# ours is still in it; 0 when it is gone
ns_teardown() {
	local p
	[ "$ns_made" -eq 1 ] || return 0
	kill_ours
	for p in $(ip netns pids "$NS" 2>/dev/null); do
		ours "$p" && kill -KILL "$p" 2>/dev/null
	done
	for _ in $(seq 1 20); do
		[ -z "$(ip netns pids "$NS" 2>/dev/null)" ] && break
		sleep 0.1
	done
	ip netns del "$NS" 2>/dev/null
	[ -e "/run/netns/$NS" ] && return 1
	ns_made=0
	return 0
}
huge_teardown() {
	[ "$huge_setup" -eq 1 ] || return 0
	timeout -k 1 20 bash "$hugepages" teardown >&2 && huge_setup=0
}
cleanup() {
	kill_ours
	ns_teardown
	huge_teardown
	rm -rf "$tmp"	# the memif socket files are in it
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# section SECONDS: the budget of the part that starts now
section() { SECTION_END=$(($(date +%s) + $1)); }
SECTION_END=$DEADLINE
# left: seconds before the end of the section (or the deadline), capped at $1
left() {
	local now l
	now=$(date +%s)
	l=$((SECTION_END - now))
	[ $((DEADLINE - now)) -lt "$l" ] && l=$((DEADLINE - now))
	[ "$l" -lt "$1" ] && echo "$l" || echo "$1"
}
# nsrun SECONDS CMD...: CMD in the namespace, killed after SECONDS (fewer
# if the section's budget is nearly spent; status 124 at once if it is)
nsrun() {
	local t
	t=$(left "$1")
	shift
	if [ "$t" -lt 1 ]; then
		echo "out of time budget: $*" >&2
		return 124
	fi
	timeout -k 2 "$t" ip netns exec "$NS" "$@"
}
one_line() { tr '\n' '|' | cut -c1-"${1:-600}"; }

# Every case that needs DPDK, root and a namespace: all skipped together
# when one of them is missing.
DPDK_CASES="dpdk_net_null_starts dpdk_net_null_sigterm_exits_0
dpdk_usage_httpd_empty_vdev dpdk_usage_memcached_empty_vdev
dpdk_bogus_vdev_fails_clearly dpdk_no_hugepages_error_mentions_hugepages
dpdk_namespace_setup
dpdk_tap_mc_starts dpdk_tap_mc_client_test dpdk_tap_mc_memccapable_ascii
dpdk_tap_mc_memccapable_binary dpdk_tap_mc_stats dpdk_tap_mc_sigterm_exits_0_within_5s
dpdk_tap_httpd_starts dpdk_tap_httpd_curl_www_files_exact dpdk_tap_httpd_404
dpdk_tap_httpd_keepalive_4_requests_1_connection dpdk_tap_httpd_sigterm_exits_0_within_5s
dpdk_tap2_httpd_starts dpdk_tap2_httpd_200_concurrent_connections
dpdk_tap2_httpd_sigterm_exits_0_within_5s dpdk_tap2_httpd_both_shards_accepted
dpdk_memif_mc_starts dpdk_memif_loadgen_verify_get dpdk_memif_loadgen_verify_multiget
dpdk_memif_mc_sigterm_exits_0_within_5s
dpdk_memif2_mc_starts dpdk_memif2_loadgen_verify dpdk_memif2_mc_sigterm_exits_0_within_5s
dpdk_memif2_mc_both_shards_accepted
dpdk_memif_hugepages_eal_memory_on_2m_pages dpdk_memif_hugepages_loadgen_verify
dpdk_memif_hugepages_mc_sigterm_exits_0_within_5s
dpdk_namespace_removed"

# ------------------------------------------- usage that needs no DPDK
for prog in "$httpd" "$mcd"; do
	name=dpdk_usage_$(basename "$prog" | sed 's/^skerry-//')
	expect "${name}_eal_without_dpdk_netdev" 2 '--eal needs --netdev=dpdk' -- \
		timeout -k 1 10 "$prog" --stack=native --netdev=tap:skdp9 --ip "$SIP/24" \
		--eal "$EAL" -t 1
	expect "${name}_eal_with_posix_stack" 2 '--eal' 'need --stack=native' -- \
		timeout -k 1 10 "$prog" --stack=posix --eal "$EAL" -t 1
done

# ------------------------------------------------------- prerequisites
why=""
if [ "$(id -u)" -ne 0 ]; then
	why="needs root (a network namespace, DPDK's EAL and tap PMD)"
elif ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
	why="'ip netns' is unavailable (iproute2)"
elif [ ! -x "$mcd" ]; then
	why="$mcd is missing"
else
	# A build without DPDK says so, at option checking or when the shard
	# opens the device; one with DPDK comes up on net_null0 (no network).
	log=$tmp/probe.log
	"$mcd" --stack=native --netdev=dpdk:net_null0 --ip 10.0.0.2/24 -t 1 -m 16 \
		--eal "$EAL" --log-level debug </dev/null >"$log" 2>&1 &
	ppid_=$!
	pids+=("$ppid_")
	for _ in $(seq 1 150); do	# up to 15 s
		running "$ppid_" || break
		grep -q 'listening on' "$log" && break
		sleep 0.1
	done
	if grep -q 'built without DPDK' "$log"; then
		why="this build has no DPDK (libdpdk-dev missing at meson setup, or -Ddpdk=disabled)"
		kill_ours
	fi
fi
if [ -n "$why" ]; then
	for c in $DPDK_CASES; do
		skip "$c" "$why"
	done
	finish test_dpdk
fi

# the net_null0 server of the probe
if grep -q 'listening on' "$log" && grep -q 'native stack on' "$log"; then
	ok dpdk_net_null_starts
	kill -TERM "$ppid_"
	exits_0_case dpdk_net_null_sigterm_exits_0 "$ppid_" "$log"
else
	bad dpdk_net_null_starts "not up within 15 s: $(tail -8 "$log" | one_line 1200)"
	kill_ours
	bad dpdk_net_null_sigterm_exits_0 "not run: it did not start"
fi

missing=""
[ -x "$httpd" ] || missing="$missing $httpd"
[ -x "$lg" ] || missing="$missing $lg"
command -v curl >/dev/null || missing="$missing curl"
command -v memccapable >/dev/null || missing="$missing memccapable(libmemcached-tools)"
"$PY" -c 'import pymemcache, h11' 2>/dev/null || missing="$missing $PY+pymemcache+h11"
if [ -n "$missing" ]; then
	echo "# missing:$missing" >&2
fi

# mc_client_test's 1000 connections plus the server's own: need the fds.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
	ulimit -n 4096 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
fi

# ------------------------------------------------------------ servers
# start_dpdk NAME BIN VDEV IP ARGS...: BIN in the namespace on
# --netdev=dpdk:VDEV with EALOPT (--eal "$EAL"); sets SPID (the
# server itself: `ip netns exec` execs it) and LOG.  1 if it is not the
# server or is not listening within 15 s (then it is killed).
start_dpdk() {
	local name=$1 bin=$2 vdev=$3 ip=$4 exe want nsi t_end
	shift 4
	LOG=$tmp/$name.log
	START_ERR=""
	ip netns exec "$NS" "$bin" --stack=native --netdev="dpdk:$vdev" --ip "$ip" \
		"${EALOPT[@]}" --log-level debug --stop-grace-ms "$GRACE" "$@" </dev/null >"$LOG" 2>&1 &
	SPID=$!
	pids+=("$SPID")
	want=$(readlink -f "$bin")
	nsi=$(stat -L -c %i "/run/netns/$NS" 2>/dev/null)
	for _ in $(seq 1 40); do	# up to 2 s for the exec
		exe=$(readlink "/proc/$SPID/exe" 2>/dev/null)
		[ "$exe" = "$want" ] && break
		running "$SPID" || break
		sleep 0.05
	done
	if [ "$exe" != "$want" ] || [ "$(ppid "$SPID")" != "$$" ] ||
		[ "$(readlink "/proc/$SPID/ns/net")" != "net:[$nsi]" ]; then
		if running "$SPID"; then
			START_ERR="pid $SPID is not $want in $NS (exe '$exe'): "
		fi
		stop_dpdk "$SPID" KILL
		START_ERR="$START_ERR$(tail -8 "$LOG" | one_line 1200)"
		return 1
	fi
	t_end=$(($(date +%s) + 15))
	while [ "$(date +%s)" -lt "$t_end" ]; do
		if ! running "$SPID"; then
			stop_dpdk "$SPID" KILL
			START_ERR="exited (status $STOP_RC): $(tail -8 "$LOG" | one_line 1200)"
			return 1
		fi
		grep -q 'listening on' "$LOG" && return 0
		sleep 0.1
	done
	START_ERR="not listening within 15 s: $(tail -8 "$LOG" | one_line 1200)"
	stop_dpdk "$SPID" KILL
	return 1
}

# tap_up: the tap PMD has made $TAP in the namespace: give the kernel side
# its address and bring it up (up to 10 s for it to appear).  The kernel
# side keeps the MAC the PMD gave it; skerry's stack uses one of its own.
tap_up() {
	local out
	for _ in $(seq 1 100); do
		nsrun 5 ip link show "$TAP" >/dev/null 2>&1 && break
		running "$SPID" || break
		sleep 0.1
	done
	if ! out=$(nsrun 5 ip link show "$TAP" 2>&1); then
		START_ERR="the tap PMD made no $TAP: $out; $(tail -5 "$LOG" | one_line)"
		return 1
	fi
	nsrun 5 sysctl -qw "net.ipv6.conf.$TAP.disable_ipv6=1" >/dev/null 2>&1
	if ! out=$(nsrun 5 ip addr add "$PEER/24" dev "$TAP" 2>&1) ||
		! out=$(nsrun 5 ip link set "$TAP" up 2>&1); then
		START_ERR="$TAP: $out"
		return 1
	fi
	return 0
}

# wait_up PID PROBE...: until PROBE succeeds, up to 10 s
wait_up() {
	local pid=$1 t_end=$(($(date +%s) + 10))
	shift
	while [ "$(date +%s)" -lt "$t_end" ]; do
		if ! running "$pid"; then
			stop_dpdk "$pid" KILL
			START_ERR="exited (status $STOP_RC): $(tail -5 "$LOG" | one_line)"
			return 1
		fi
		"$@" && return 0
		sleep 0.2
	done
	START_ERR="no answer within 10 s: $(tail -5 "$LOG" | one_line)"
	return 1
}
probe_httpd() { nsrun 3 curl -s --noproxy '*' -o /dev/null -m 1 "http://$SIP:8080/tiny.txt"; }
probe_mc() {
	nsrun 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "version\r\n" >&3 &&
		read -t 1 -r l <&3 && [[ $l == VERSION* ]]' probe "$SIP" 11211 2>/dev/null
}

# stop_dpdk PID [SIG]: SIG (TERM), up to 5 s, then SIGKILL; STOP_RC is its
# status, STOP_SLOW 1 if it needed the SIGKILL
stop_dpdk() {
	local pid=$1 p mine=0
	STOP_SLOW=0
	STOP_RC=none
	for p in "${pids[@]}"; do
		[ "$p" = "$pid" ] && mine=1
	done
	[ "$mine" -eq 1 ] || return 0	# waited for already
	# signals only while it is our child (bash may have reaped it: then
	# its pid could be someone else's by now); wait gives its status
	if [ "$(ppid "$pid")" = "$$" ]; then
		kill -"${2:-TERM}" "$pid" 2>/dev/null
		for _ in $(seq 1 100); do
			running "$pid" || break
			sleep 0.05
		done
		if running "$pid" && [ "$(ppid "$pid")" = "$$" ]; then
			STOP_SLOW=1
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null
	STOP_RC=$?
	forget "$pid"
}

# sigterm_case NAME PID: SIGTERM, exit status 0 within 5 s, and not by
# giving up on work in flight (servers get --stop-grace-ms $GRACE: when a
# peer went away with connections half-closed it shows as that warning
# instead of as a kill after 5 s, and costs less time)
sigterm_case() {
	stop_dpdk "$2" TERM
	if [ "$STOP_RC" = none ]; then
		bad "$1" "pid $2 is not a server of ours still to be waited for"
	elif [ "$STOP_SLOW" -eq 1 ]; then
		bad "$1" "still running 5 s after SIGTERM: $(tail -5 "$LOG" | one_line)"
	elif grep -q 'work still in flight after' "$LOG"; then
		bad "$1" "exit $STOP_RC only after the whole --stop-grace-ms $GRACE (TCP connections still closing, e.g. a peer's last ACKs lost): $(grep -m1 'work still in flight' "$LOG")"
	elif [ "$STOP_RC" -ne 0 ]; then
		bad "$1" "exit status $STOP_RC: $(tail -8 "$LOG" | one_line 1500)"
	else
		ok "$1"
	fi
	show_counters "$LOG"
}

# the per-shard counters the stack logged at exit
show_counters() { grep -o 'native stack counters of shard.*' "$1" | sed 's/^/  # /' >&2; }

# shards_used NAME LOG: every shard accepted connections
# (tcp_passive_opens), as test_native.sh checks; rx_frames and fwd_in are
# shown with it (which queue the frames came in on, and how many a shard
# forwarded to their flow's shard)
shards_used() {
	local name=$1 log=$2 lines s n0 n1 info=""
	lines=$(grep -o 'native stack counters of shard [0-9]*:.*' "$log")
	n0=$(grep 'of shard 0:' <<<"$lines" | grep -oE 'tcp_passive_opens=[0-9]+' | cut -d= -f2)
	n1=$(grep 'of shard 1:' <<<"$lines" | grep -oE 'tcp_passive_opens=[0-9]+' | cut -d= -f2)
	for s in 0 1; do
		info="$info shard $s:$(grep "of shard $s:" <<<"$lines" |
			grep -oE ' (tcp_passive_opens|rx_frames|fwd_in)=[0-9]+' | tr -d '\n')"
	done
	if [ -z "$lines" ]; then
		bad "$name" "no 'native stack counters' lines in the log (--log-level debug)"
	elif [ "${n0:-0}" -gt 0 ] && [ "${n1:-0}" -gt 0 ]; then
		ok "$name"
		echo "  #$info" >&2
	else
		bad "$name" "tcp_passive_opens not on both shards:$info"
	fi
}

# run_py SCRIPT SUMMARY-TAG CAP ARGS...: one of the Python client suites in
# the namespace; its cases are counted here
run_py() {
	local script=$1 tag=$2 cap=$3 tmo
	shift 3
	tmo=$(left "$cap")
	if [ "$tmo" -lt 5 ]; then
		bad "dpdk_${script%.py}_run" "out of time budget ($*)"
		return
	fi
	count_cases "$tag" < <(nsrun "$tmo" "$PY" "$here/$script" "$@" 2>&1; echo "# rc $?")
	if [ "$CASES_SEEN" -ne 1 ]; then
		bad "dpdk_${script%.py}_completed" "$script $* exit $CASES_RC without a summary (timeout ${tmo}s?)"
	fi
}

run_memccapable() {
	local name=$1 mode=$2 out rc tmo
	tmo=$(left 30)
	if [ "$tmo" -lt 3 ]; then
		bad "$name" "out of time budget"
		return
	fi
	out=$(nsrun "$tmo" memccapable -h "$SIP" -p 11211 "$mode" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q '^All tests passed' <<<"$out" && ! grep -q 'FAIL' <<<"$out"; then
		ok "$name"
	else
		bad "$name" "memccapable $mode exit $rc: $(grep -vE '\[pass\]' <<<"$out" | head -20 | one_line 1500)"
	fi
}

# loadgen_case NAME ARGS...: skerry-loadgen in the namespace on the client
# end of the memif link, with EALOPT; passes when it
# exits 0 with ops>0, errors=0 and verify_errors=0 in its RESULT line
loadgen_case() {
	local name=$1 out rc res ops errs verrs tmo
	shift
	tmo=$(left 30)
	if [ "$tmo" -lt 10 ]; then
		bad "$name" "out of time budget"
		return
	fi
	out=$(nsrun "$tmo" "$lg" --stack=native --netdev="dpdk:net_memif0,role=client,socket=$tmp/mc.sock" \
		--ip "$MC/24" "${EALOPT[@]}" -s "$MS:11211" --verify --preload \
		--warmup 0 --duration 3 "$@" </dev/null 2>&1)
	rc=$?
	printf '%s\n' "$out" >"$tmp/$name.log"
	res=$(grep -m1 '^RESULT ' <<<"$out")
	ops=$(grep -oE '(^| )ops=[0-9.]+' <<<"$res" | cut -d= -f2)
	errs=$(grep -oE '(^| )errors=[0-9]+' <<<"$res" | cut -d= -f2)
	verrs=$(grep -oE 'verify_errors=[0-9]+' <<<"$out" | tail -1 | cut -d= -f2)
	if [ "$rc" -eq 0 ] && [ "${ops%.*}" -gt 0 ] 2>/dev/null && [ "$errs" = 0 ] && [ "$verrs" = 0 ]; then
		ok "$name"
		echo "  # $(cut -c1-200 <<<"$res")" >&2
	else
		bad "$name" "exit $rc, ops=${ops:-?} errors=${errs:-?} verify_errors=${verrs:-?}: $(grep -vE '^ ' <<<"$out" | tail -12 | one_line 1500)"
	fi
}

CURL=(curl -sS --noproxy '*')
base=http://$SIP:8080

# 200 connections open at once, then each GETs a file and checks it
CONC_PY='
import socket, sys, threading, os
host, port, n, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
bodies = {f: open(os.path.join(root, f), "rb").read() for f in files}
bar = threading.Barrier(n + 1, timeout=25)
errs = []
def one(i):
    f = files[i % len(files)]
    try:
        s = socket.create_connection((host, port), timeout=20)
    except Exception as e:
        errs.append("%d: connect: %r" % (i, e)); bar.abort(); return
    try:
        bar.wait()
        s.sendall(b"GET /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % f.encode())
        buf = b""
        while True:
            d = s.recv(65536)
            if not d: break
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 ") or body != bodies[f]:
            errs.append("%d: /%s: %r, %d body bytes of %d" % (i, f, head[:40], len(body), len(bodies[f])))
    except Exception as e:
        errs.append("%d: /%s: %r" % (i, f, e))
    finally:
        s.close()
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
try:
    bar.wait()
except threading.BrokenBarrierError:
    errs.append("not all %d connected within 25 s" % n)
for t in ts: t.join(40)
ok = n - len(errs)
print("%d of %d connections ok" % (ok, n))
for e in errs[:10]: print(e)
sys.exit(0 if not errs else 1)
'

# ---------------------------------------------------------- namespace
setup_ns() {
	local out
	if ! out=$(timeout -k 1 10 ip netns add "$NS" 2>&1); then
		bad dpdk_namespace_setup "ip netns add $NS: $out"
		return 1
	fi
	ns_made=1
	if out=$(nsrun 10 ip link set lo up 2>&1); then
		ok dpdk_namespace_setup
		return 0
	fi
	bad dpdk_namespace_setup "$out"
	return 1
}

# ================================================================ run
section 10
if setup_ns; then
	# ------------------------------------------------ start-up errors
	section 30
	for prog in "$httpd" "$mcd"; do
		name=dpdk_usage_$(basename "$prog" | sed 's/^skerry-//')
		expect "${name}_empty_vdev" 2 "dpdk:' names no virtual device" -- \
			timeout -k 1 10 "$prog" --stack=native --netdev=dpdk: --ip "$SIP/24" -t 1
	done
	out=$(nsrun 15 "$mcd" --stack=native --netdev=dpdk:net_bogus0 --ip "$SIP/24" -t 1 -m 16 \
		--eal "$EAL" </dev/null 2>&1)
	rc=$?
	if [ "$rc" -eq 1 ] && grep -q 'net_bogus0' <<<"$out"; then
		ok dpdk_bogus_vdev_fails_clearly
	else
		bad dpdk_bogus_vdev_fails_clearly "exit $rc (want 1 and a message naming net_bogus0): $(one_line 1200 <<<"$out")"
	fi
	# No hugepages to be seen: in a private mount namespace, a copy of
	# /proc/meminfo saying none are free bound over it and an empty tmpfs
	# over /sys/kernel/mm/hugepages (the machine's pool is untouched).
	# skerry itself (an "error:" line of its log, not only EAL) must say
	# so and how to go on.
	if command -v unshare >/dev/null; then
		sed -E 's/^(HugePages_(Total|Free|Rsvd|Surp):).*/\1        0/' /proc/meminfo >"$tmp/meminfo"
		out=$(nsrun 15 unshare --mount --propagation private sh -c \
			'mount --bind "$0" /proc/meminfo &&
			mount -t tmpfs -o size=64k skerry-nohuge /sys/kernel/mm/hugepages &&
			exec "$@"' "$tmp/meminfo" \
			"$mcd" --stack=native --netdev=dpdk:net_null0 --ip "$SIP/24" -t 1 -m 16 \
			</dev/null 2>&1)
		rc=$?
		if [ "$rc" -eq 1 ] && grep -i 'error:.*hugepage' <<<"$out" | grep -q -- '--no-huge'; then
			ok dpdk_no_hugepages_error_mentions_hugepages
		else
			bad dpdk_no_hugepages_error_mentions_hugepages "exit $rc (want 1 and an error line about hugepages and --no-huge): $(one_line 1200 <<<"$out")"
		fi
	else
		bad dpdk_no_hugepages_error_mentions_hugepages "unshare (util-linux) is missing"
	fi

	# ------------------------------------------ net_tap: memcached
	section 60
	if start_dpdk tap_mc "$mcd" "net_tap0,iface=$TAP" "$SIP/24" -p 11211 -t 1 -m 64 -c 2000 &&
		tap_up && wait_up "$SPID" probe_mc; then
		ok dpdk_tap_mc_starts
		mpid=$SPID
		mlog=$LOG
		# first, on the fresh server: its stats case wants curr_items 0
		run_py mc_client_test.py mc_client_test 45 "$SIP" 11211 1 --group main \
			--pid "$mpid" --mem 64 --conns 2000 --prefix dpdk_tap_mc_
		run_memccapable dpdk_tap_mc_memccapable_ascii -a
		run_memccapable dpdk_tap_mc_memccapable_binary -b
		out=$(nsrun 10 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "stats\r\nquit\r\n" >&3 &&
			timeout 5 cat <&3' stats "$SIP" 11211 2>&1 | tr -d '\r')
		if grep -qx "STAT pid $mpid" <<<"$out" && grep -qE '^STAT curr_connections [0-9]+$' <<<"$out" &&
			grep -qE '^STAT cmd_get [1-9][0-9]*$' <<<"$out" && grep -qx END <<<"$out"; then
			ok dpdk_tap_mc_stats
		else
			bad dpdk_tap_mc_stats "want STAT pid $mpid, curr_connections, cmd_get>0, END: $(one_line <<<"$out")"
		fi
		LOG=$mlog
		sigterm_case dpdk_tap_mc_sigterm_exits_0_within_5s "$mpid"
	else
		bad dpdk_tap_mc_starts "$START_ERR"
		stop_dpdk "$SPID" KILL
	fi
	echo "# tap memcached part: $(($(date +%s) - T_START)) s so far" >&2

	# ---------------------------------------------- net_tap: httpd
	section 25
	if start_dpdk tap_httpd "$httpd" "net_tap0,iface=$TAP" "$SIP/24" -p 8080 -t 1 --root "$www" \
		--mac "$SMAC" && tap_up && wait_up "$SPID" probe_httpd; then
		ok dpdk_tap_httpd_starts
		hpid=$SPID
		# --mac is the stack's; the kernel's side of the tap keeps its own.
		kmac=$(nsrun 5 cat "/sys/class/net/$TAP/address" 2>&1)
		neigh=$(nsrun 5 ip neigh show "$SIP" dev "$TAP" 2>&1)
		if grep -qi "lladdr $SMAC" <<<"$neigh" && [ "${kmac,,}" != "${SMAC,,}" ]; then
			ok dpdk_tap_mac_option_is_the_stack_s_and_the_kernel_keeps_its_own
		else
			bad dpdk_tap_mac_option_is_the_stack_s_and_the_kernel_keeps_its_own \
				"kernel side $kmac, neighbour entry '$(one_line <<<"$neigh")', want $SMAC"
		fi
		errs=""
		while IFS= read -r f; do
			u=$(sed 's/ /%20/g' <<<"$f")
			rm -f "$tmp/body"
			out=$(nsrun 12 "${CURL[@]}" -m 10 -o "$tmp/body" -w '%{http_code} %{http_version}' "$base/$u" 2>&1 | tr '\n' ' ')
			out=${out% }
			[ "$out" = "200 1.1" ] || errs="$errs /$u: '$out';"
			cmp -s "$tmp/body" "$www/$f" || errs="$errs /$u: body differs ($(stat -c %s "$tmp/body" 2>/dev/null) bytes of $(stat -c %s "$www/$f"));"
		done < <(cd "$www" && find . -type f | sed 's|^\./||' | sort)
		[ -z "$errs" ] && ok dpdk_tap_httpd_curl_www_files_exact || bad dpdk_tap_httpd_curl_www_files_exact "$errs"

		out=$(nsrun 12 "${CURL[@]}" -m 10 -o /dev/null -w '%{http_code}' "$base/nothere.html" 2>&1)
		[ "$out" = 404 ] && ok dpdk_tap_httpd_404 || bad dpdk_tap_httpd_404 "got '$(one_line <<<"$out")', want 404"

		rm -f "$tmp"/k[1-4]
		out=$(nsrun 12 "${CURL[@]}" -m 10 -v -o "$tmp/k1" -o "$tmp/k2" -o "$tmp/k3" -o "$tmp/k4" \
			"$base/index.html" "$base/1k.txt" "$base/64k.bin" "$base/tiny.txt" 2>&1)
		if [ "$(grep -c 'Re-using existing connection' <<<"$out")" -eq 3 ] &&
			cmp -s "$tmp/k1" "$www/index.html" && cmp -s "$tmp/k2" "$www/1k.txt" &&
			cmp -s "$tmp/k3" "$www/64k.bin" && cmp -s "$tmp/k4" "$www/tiny.txt"; then
			ok dpdk_tap_httpd_keepalive_4_requests_1_connection
		else
			bad dpdk_tap_httpd_keepalive_4_requests_1_connection "no reuse or wrong bodies: $(grep -E '^[*<>] ' <<<"$out" | head -30 | one_line)"
		fi
		sigterm_case dpdk_tap_httpd_sigterm_exits_0_within_5s "$hpid"
	else
		bad dpdk_tap_httpd_starts "$START_ERR"
		stop_dpdk "$SPID" KILL
	fi

	# ---------------------------------- net_tap, 2 shards, 2 queues
	section 40
	if start_dpdk tap2_httpd "$httpd" "net_tap0,iface=$TAP" "$SIP/24" -p 8080 -t 2 -c 4000 \
		--root "$www" && tap_up && wait_up "$SPID" probe_httpd; then
		ok dpdk_tap2_httpd_starts
		hpid=$SPID
		hlog=$LOG
		out=$(nsrun 45 "$PY" -c "$CONC_PY" "$SIP" 8080 200 "$www" 2>&1)
		rc=$?
		if [ $rc -eq 0 ]; then
			ok dpdk_tap2_httpd_200_concurrent_connections
		else
			bad dpdk_tap2_httpd_200_concurrent_connections "exit $rc: $(one_line 1500 <<<"$out")"
		fi
		sigterm_case dpdk_tap2_httpd_sigterm_exits_0_within_5s "$hpid"
		shards_used dpdk_tap2_httpd_both_shards_accepted "$hlog"
	else
		bad dpdk_tap2_httpd_starts "$START_ERR"
		stop_dpdk "$SPID" KILL
	fi
	echo "# tap part: $(($(date +%s) - T_START)) s so far" >&2

	# ------------------------------------------ memif: 1 shard each
	MIF="net_memif0,role=server,socket=$tmp/mc.sock"
	section 30
	if start_dpdk memif_mc "$mcd" "$MIF" "$MS/24" -p 11211 -t 1 -m 64 -c 1000; then
		ok dpdk_memif_mc_starts
		mpid=$SPID
		mlog=$LOG
		loadgen_case dpdk_memif_loadgen_verify_get -t 1 -c 16 -d 8
		loadgen_case dpdk_memif_loadgen_verify_multiget -t 1 -c 16 -d 4 --multiget 8
		LOG=$mlog
		sigterm_case dpdk_memif_mc_sigterm_exits_0_within_5s "$mpid"
	else
		bad dpdk_memif_mc_starts "$START_ERR"
		stop_dpdk "$SPID" KILL
	fi

	# --------------------------------------- memif: 2 shards each
	section 25
	if start_dpdk memif2_mc "$mcd" "$MIF" "$MS/24" -p 11211 -t 2 -m 64 -c 1000; then
		ok dpdk_memif2_mc_starts
		mpid=$SPID
		mlog=$LOG
		loadgen_case dpdk_memif2_loadgen_verify -t 2 -c 32 -d 8
		LOG=$mlog
		sigterm_case dpdk_memif2_mc_sigterm_exits_0_within_5s "$mpid"
		shards_used dpdk_memif2_mc_both_shards_accepted "$mlog"
	else
		bad dpdk_memif2_mc_starts "$START_ERR"
		stop_dpdk "$SPID" KILL
	fi
	echo "# memif part: $(($(date +%s) - T_START)) s so far" >&2

	# ------------------------------------- memif on 2 MiB hugepages
	section 25
	if [ ! -f "$hugepages" ]; then
		for c in eal_memory_on_2m_pages loadgen_verify mc_sigterm_exits_0_within_5s; do
			skip "dpdk_memif_hugepages_$c" "scripts/hugepages is missing"
		done
	elif ! out=$(timeout -k 1 20 bash "$hugepages" setup 512 2>&1); then
		for c in eal_memory_on_2m_pages loadgen_verify mc_sigterm_exits_0_within_5s; do
			skip "dpdk_memif_hugepages_$c" "scripts/hugepages setup 512 failed: $(one_line <<<"$out")"
		done
	else
		huge_setup=1
		echo "  # $out" >&2
		EALOPT=()	# no --no-huge: EAL takes hugepages
		if start_dpdk memif_huge_mc "$mcd" "$MIF" "$MS/24" -p 11211 -t 1 -m 64 -c 1000; then
			mpid=$SPID
			# EAL's memory (memfd segments "seg_*" in --in-memory mode;
			# "nohuge" with --no-huge) is on 2 MiB pages
			n=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { seg = ($6 ~ /memfd:seg_/) }
				seg && /^KernelPageSize: *2048 kB/ { n++ } END { print n + 0 }' \
				"/proc/$mpid/smaps" 2>/dev/null)
			if [ "${n:-0}" -gt 0 ]; then
				ok dpdk_memif_hugepages_eal_memory_on_2m_pages
			else
				bad dpdk_memif_hugepages_eal_memory_on_2m_pages "no memfd:seg_* mapping with 2048 kB pages in /proc/$mpid/smaps: $(grep -oE 'memfd:[^ ]*' "/proc/$mpid/maps" 2>/dev/null | sort -u | one_line)"
			fi
			loadgen_case dpdk_memif_hugepages_loadgen_verify -t 1 -c 16 -d 8 --duration 2
			sigterm_case dpdk_memif_hugepages_mc_sigterm_exits_0_within_5s "$mpid"
		else
			bad dpdk_memif_hugepages_loadgen_verify "the server did not start: $START_ERR"
			stop_dpdk "$SPID" KILL
		fi
		EALOPT=(--eal "$EAL")
		huge_teardown
	fi
fi

# ---------------------------------------------------------- teardown
kill_ours
ns_teardown
if [ -e "/run/netns/$NS" ] || ip netns list 2>/dev/null | grep -qw "$NS"; then
	bad dpdk_namespace_removed "$NS still exists"
else
	ok dpdk_namespace_removed
fi

echo "# total $(($(date +%s) - T_START)) s" >&2
finish test_dpdk
