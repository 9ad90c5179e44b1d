#!/usr/bin/env bash
# test_memcached.sh BUILD_DIR - skerry-memcached against real clients:
# memccapable (ascii and binary) and mc_client_test.py (pymemcache + raw
# sockets: every text command, the meta protocol, bad input, connection
# limit, eviction, 1000 connections, SIGTERM), with 1 and with 2 shards.
#
# MC_STOCK=1 runs the same against /usr/bin/memcached (1.6.18) instead: the
# expectations were taken from stock and must pass there 100%.
# Needs memcached (for MC_STOCK), libmemcached-tools, python3-pymemcache
# (scripts/install-deps --test).  Ports: free ones from 21000-21999 on
# 127.0.0.1.  Every client step is bounded; each shard count has a 90 s
# budget.
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3	# Debian's, which has pymemcache
T_START=$(date +%s)

if [ "${MC_STOCK:-0}" = 1 ]; then
	server=/usr/bin/memcached
	extra=(-U 0)
	[ "$(id -u)" -eq 0 ] && extra+=(-u root)
else
	server="$build/apps/memcached/skerry-memcached"
	extra=()
fi

tmp=$(mktemp -d /tmp/skerry-mc-test.XXXXXX)
pids=()
cleanup() {
	kill_ours
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

missing=""
[ -x "$server" ] || missing="$missing $server"
command -v memccapable >/dev/null || missing="$missing memccapable(libmemcached-tools)"
"$PY" -c 'import pymemcache' 2>/dev/null || missing="$missing $PY+pymemcache(python3-pymemcache)"
if [ -n "$missing" ]; then
	bad mc_prerequisites "missing:$missing"
	finish test_memcached
fi

# 1000 client connections plus the server's own: need the fds.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
	ulimit -n 4096 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
fi


free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((21000 + RANDOM % 1000))
		[ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return 0; }
	done
	return 1
}

# start_server NAME ARGS...: sets SPID and SPORT, or returns 1
start_server() {
	local name=$1
	shift
	SPID=
	SPORT=
	for _ in 1 2 3; do
		SPORT=$(free_port) || return 1
		"$server" -p "$SPORT" -l 127.0.0.1 "${extra[@]}" "$@" >"$tmp/$name.log" 2>&1 &
		SPID=$!
		pids+=("$SPID")
		for _ in $(seq 1 100); do	# up to 5 s
			running "$SPID" || break
			if (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null &&
				ss -Htlnp "sport = :$SPORT" 2>/dev/null | grep -q "pid=$SPID,"; then
				return 0
			fi
			sleep 0.05
		done
		# did not come up (port taken in the meantime?): stop it, retry
		running "$SPID" && kill -KILL "$SPID" 2>/dev/null
		wait "$SPID" 2>/dev/null
		forget "$SPID"
	done
	return 1
}

# stop_server PID: SIGTERM, up to 5 s, then SIGKILL
stop_server() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		running "$pid" || break
		sleep 0.05
	done
	running "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	forget "$pid"
}

# budget: seconds left for this shard count, capped at $1
budget() {
	local left=$((BUDGET_END - $(date +%s)))
	[ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

# run_py NAME-PREFIX CAP ARGS...: run mc_client_test.py, count its cases
run_py() {
	local prefix=$1 cap=$2 tmo group
	shift 2
	group=$(sed -E 's/.*--group ([a-z]+).*/\1/' <<<"$*")
	tmo=$(budget "$cap")
	if [ "$tmo" -lt 5 ]; then
		bad "${prefix}python_${group}_run" "out of time budget"
		return
	fi
	count_cases mc_client_test < <(timeout -k 2 "$tmo" "$PY" "$here/mc_client_test.py" 127.0.0.1 "$@" --prefix "$prefix"; echo "# rc $?")
	if [ "$CASES_SEEN" -ne 1 ]; then
		bad "${prefix}python_${group}_completed" "mc_client_test.py $* exit $CASES_RC without a summary (timeout ${tmo}s?)"
	fi
}

run_memccapable() {
	local name=$1 port=$2 mode=$3 out rc tmo
	tmo=$(budget 20)
	if [ "$tmo" -lt 3 ]; then
		bad "$name" "out of time budget"
		return
	fi
	out=$(timeout -k 2 "$tmo" memccapable -h 127.0.0.1 -p "$port" "$mode" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q '^All tests passed' <<<"$out" && ! grep -q 'FAIL' <<<"$out"; then
		ok "$name"
	else
		bad "$name" "memccapable $mode exit $rc: $(grep -vE '\[pass\]' <<<"$out" | head -20 | tr '\n' '|')"
	fi
}

for t in 1 2; do
	p="mc_t${t}_"
	BUDGET_END=$(( $(date +%s) + 90 ))
	t0=$(date +%s)

	# main server: fresh, so the stats case can expect curr_items 0
	if ! start_server main$t -t "$t" -m 64 -c 2000; then
		bad "${p}server_starts" "$(tail -5 "$tmp/main$t.log")"
		continue
	fi
	ok "${p}server_starts"
	mpid=$SPID
	mport=$SPORT
	run_py "$p" 70 "$mport" "$t" --group main --pid "$mpid" --mem 64 --conns 2000
	run_memccapable "${p}memccapable_ascii" "$mport" -a
	run_memccapable "${p}memccapable_binary" "$mport" -b
	if running "$mpid"; then
		ok "${p}server_survived_all_clients"
	else
		bad "${p}server_survived_all_clients" "died: $(tail -5 "$tmp/main$t.log")"
	fi
	stop_server "$mpid"

	# connection limit
	if start_server limit$t -t "$t" -c 32; then
		run_py "$p" 30 "$SPORT" "$t" --group limit --conns 32
		stop_server "$SPID"
	else
		bad "${p}limit_server_starts" "$(tail -5 "$tmp/limit$t.log")"
	fi

	# eviction with -m 2
	if start_server evict$t -t "$t" -m 2; then
		run_py "$p" 40 "$SPORT" "$t" --group evict --mem 2
		stop_server "$SPID"
	else
		bad "${p}evict_server_starts" "$(tail -5 "$tmp/evict$t.log")"
	fi

	# SIGTERM with 50 clients: the Python side sends the signal and checks
	# that every connection is closed; here: exit status 0 within 5 s.
	if start_server sigterm$t -t "$t"; then
		spid=$SPID
		run_py "$p" 20 "$SPORT" "$t" --group sigterm --pid "$spid"
		exits_0_case "${p}sigterm_exits_0_within_5s" "$spid" "$tmp/sigterm$t.log"
	else
		bad "${p}sigterm_server_starts" "$(tail -5 "$tmp/sigterm$t.log")"
	fi
	echo "# -t $t took $(( $(date +%s) - t0 )) s" >&2
done

echo "# total $(( $(date +%s) - T_START )) s ($( [ "${MC_STOCK:-0}" = 1 ] && echo stock memcached || echo skerry-memcached))" >&2
finish test_memcached
