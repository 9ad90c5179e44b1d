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
#              server shards accepted connections; 2 server shards on one
#              queue pair (--netdev-queues 1) for a 1-queue peer, shard 1
#              served through shard 0's forwarding; once more on 2 MiB
#              hugepages (scripts/hugepages setup/teardown; skipped if it
#              cannot have them), EAL's memory seen on 2 MiB pages.  Every
#              server stops on SIGTERM with status 0 within 5 s, without
#              running out its --stop-grace-ms (3 s here).
#   errors     bad --netdev=dpdk:/--eal/--netdev-queues combinations exit 2
#              with a reason (those with the posix stack need no DPDK and
#              always run); a bogus vdev
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
GRACE=3000	# the servers' --stop-grace-ms (sigterm_case checks it was not used up)

tmp=$(mktemp -d /tmp/skerry-dpdk-test.XXXXXX)
CASE_PREFIX=dpdk_	# of the cases lib.sh names itself
pids=()
ns_made=0
huge_setup=0

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

SECTION_END=$DEADLINE

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
dpdk_memif_1q_mc_starts dpdk_memif_1q_loadgen_verify dpdk_memif_1q_mc_sigterm_exits_0_within_5s
dpdk_memif_1q_shard1_served_by_forwarding
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
	expect "${name}_netdev_queues_with_posix_stack" 2 '--netdev-queues need --stack=native' -- \
		timeout -k 1 10 "$prog" --stack=posix --netdev-queues 1 -t 1
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
# --netdev=dpdk:VDEV with EALOPT (--eal "$EAL") (ns_start: sets SPID and
# LOG).  1 with START_ERR if it is not the server or is not listening
# within 15 s (then it is killed).
start_dpdk() {
	local name=$1 bin=$2 vdev=$3 ip=$4 t_end
	shift 4
	ns_start "$name" "$bin" --stack=native --netdev="dpdk:$vdev" --ip "$ip" \
		"${EALOPT[@]}" --log-level debug --stop-grace-ms "$GRACE" "$@" || return 1
	t_end=$(($(date +%s) + 15))
	while [ "$(date +%s)" -lt "$t_end" ]; do
		if ! running "$SPID"; then
			ns_stop "$SPID" KILL
			START_ERR="exited (status $STOP_RC): $(tail -8 "$LOG" | one_line 1200)"
			return 1
		fi
		grep -q 'listening on' "$LOG" && return 0
		sleep 0.1
	done
	START_ERR="not listening within 15 s: $(tail -8 "$LOG" | one_line 1200)"
	ns_stop "$SPID" KILL
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
		ns_run_py mc_client_test.py mc_client_test 45 "$SIP" 11211 1 --group main \
			--pid "$mpid" --mem 64 --conns 2000 --prefix dpdk_tap_mc_
		ns_memccapable dpdk_tap_mc_memccapable_ascii -a
		ns_memccapable dpdk_tap_mc_memccapable_binary -b
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
		ns_stop "$SPID" KILL
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
		httpd_www_files_case dpdk_tap_httpd_curl_www_files_exact

		httpd_404_case dpdk_tap_httpd_404

		httpd_keepalive_case dpdk_tap_httpd_keepalive_4_requests_1_connection
		sigterm_case dpdk_tap_httpd_sigterm_exits_0_within_5s "$hpid"
	else
		bad dpdk_tap_httpd_starts "$START_ERR"
		ns_stop "$SPID" KILL
	fi

	# ---------------------------------- net_tap, 2 shards, 2 queues
	section 40
	if start_dpdk tap2_httpd "$httpd" "net_tap0,iface=$TAP" "$SIP/24" -p 8080 -t 2 -c 4000 \
		--root "$www" && tap_up && wait_up "$SPID" probe_httpd; then
		ok dpdk_tap2_httpd_starts
		hpid=$SPID
		hlog=$LOG
		httpd_concurrent_case dpdk_tap2_httpd_200_concurrent_connections
		sigterm_case dpdk_tap2_httpd_sigterm_exits_0_within_5s "$hpid"
		shards_used dpdk_tap2_httpd_both_shards_accepted "$hlog"
	else
		bad dpdk_tap2_httpd_starts "$START_ERR"
		ns_stop "$SPID" KILL
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
		ns_stop "$SPID" KILL
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
		ns_stop "$SPID" KILL
	fi
	# ------------- memif: 2 server shards on 1 queue pair (the peer has 1)
	# memif pairs queues one to one, so the server takes --netdev-queues 1:
	# shard 1 has no queue and sends and receives through shard 0.
	section 25
	if start_dpdk memif1q_mc "$mcd" "$MIF" "$MS/24" -p 11211 -t 2 --netdev-queues 1 \
		-m 64 -c 1000; then
		ok dpdk_memif_1q_mc_starts
		mpid=$SPID
		mlog=$LOG
		loadgen_case dpdk_memif_1q_loadgen_verify -t 1 -c 32 -d 8 --duration 2
		LOG=$mlog
		sigterm_case dpdk_memif_1q_mc_sigterm_exits_0_within_5s "$mpid"
		line=$(grep -o 'native stack counters of shard 1:.*' "$mlog")
		opens=$(grep -oE 'tcp_passive_opens=[0-9]+' <<<"$line" | cut -d= -f2)
		fwd=$(grep -oE ' fwd_in=[0-9]+' <<<"$line" | cut -d= -f2)
		if [ "${opens:-0}" -gt 0 ] && [ "${fwd:-0}" -gt 0 ] &&
			! grep -q 'device net_memif0 queue 1' "$mlog"; then
			ok dpdk_memif_1q_shard1_served_by_forwarding
		else
			bad dpdk_memif_1q_shard1_served_by_forwarding "shard 1: $(one_line <<<"$line")"
		fi
	else
		bad dpdk_memif_1q_mc_starts "$START_ERR"
		ns_stop "$SPID" KILL
	fi
	echo "# memif part: $(($(date +%s) - T_START)) s so far" >&2

	# ------------------------------------- memif on 2 MiB hugepages
	section 25
	huge_why=""
	if [ ! -f "$hugepages" ]; then
		huge_why="scripts/hugepages is missing"
	elif ! out=$(timeout -k 1 20 bash "$hugepages" setup 512 2>&1); then
		huge_why="scripts/hugepages setup 512 failed: $(one_line <<<"$out")"
	fi
	if [ -n "$huge_why" ]; then
		for c in eal_memory_on_2m_pages loadgen_verify mc_sigterm_exits_0_within_5s; do
			skip "dpdk_memif_hugepages_$c" "$huge_why"
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
			ns_stop "$SPID" KILL
		fi
		EALOPT=(--eal "$EAL")
		huge_teardown
	fi
fi

# ---------------------------------------------------------- teardown
ns_removed_case dpdk_namespace_removed

echo "# total $(($(date +%s) - T_START)) s" >&2
finish test_dpdk
