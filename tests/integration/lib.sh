# lib.sh - sourced by the integration scripts: case results and the summary
# line that scripts/test adds up; process and network-namespace helpers.
# shellcheck disable=SC2154 # tmp, here, www, base...: set by the caller
passed=0
failed=0
skipped=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "not ok - $1"; printf '  %s\n' "$2" >&2; failed=$((failed + 1)); }
# skip NAME REASON: a case that could not run here (no root, a build
# without an optional feature); counted apart, never as passed.
skip() { echo "skip - $1 # $2"; skipped=$((skipped + 1)); }
# finish NAME: print "# NAME: K skipped" (when K > 0), then
# "# NAME: N passed, M failed", and exit 1 on any failure.
finish() {
	[ "$skipped" -gt 0 ] && echo "# $1: $skipped skipped"
	echo "# $1: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

# expect NAME RC REGEX... -- CMD [ARGS...]: run CMD; the case passes when it
# exits with RC and its output (stdout and stderr) matches every REGEX
# (extended syntax).
expect() {
	local name=$1 want_rc=$2 out rc p
	shift 2
	local pats=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		pats+=("$1")
		shift
	done
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want_rc" ]; then
		bad "$name" "exit $rc, expected $want_rc: $out"
		return
	fi
	for p in "${pats[@]}"; do
		if ! grep -qE -- "$p" <<<"$out"; then
			bad "$name" "no match for /$p/ in: $out"
			return
		fi
	done
	ok "$name"
}

# --- processes the script started (PIDs in the array pids) ---------------
# ppid of process $1 (only our own children are ever signalled)
ppid() { awk '{print $4}' "/proc/$1/stat" 2>/dev/null; }
# state of process $1: R/S/.. while running, Z when exited, empty when gone
pstate() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }
running() { local s; s=$(pstate "$1"); [ -n "$s" ] && [ "$s" != Z ]; }
# kill_ours: SIGKILL and reap every PID in pids that is still our child
kill_ours() {
	local p
	for p in "${pids[@]}"; do
		if [ "$(ppid "$p")" = "$$" ]; then
			kill -KILL "$p" 2>/dev/null
			wait "$p" 2>/dev/null
		fi
	done
	pids=()
}
# exits_0_case NAME PID LOG: the case passes when our child PID (already
# told to stop) exits with status 0 within 5 s; otherwise it is killed.
exits_0_case() {
	local name=$1 pid=$2 log=$3 rc
	for _ in $(seq 1 100); do
		running "$pid" || break
		sleep 0.05
	done
	if running "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		forget "$pid"
		bad "$name" "still running 5 s after the clients saw SIGTERM handled"
		return
	fi
	wait "$pid"
	rc=$?
	forget "$pid"
	if [ "$rc" -eq 0 ]; then
		ok "$name"
	else
		bad "$name" "exit status $rc: $(tail -3 "$log")"
	fi
}
# forget PID: it has been reaped
forget() {
	local p keep=()
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

# count_cases TAG < OUTPUT: add the "ok - "/"not ok - " lines of a client
# suite (a Python script) to this script's counts, pass its other lines to
# stderr; CASES_SEEN=1 if its "# TAG: ..." summary came, CASES_RC = the
# exit status from a last line "# rc N" (the caller appends it).
count_cases() {
	local tag=$1 line
	CASES_SEEN=0
	CASES_RC=none
	while IFS= read -r line; do
		case $line in
		"ok - "*) echo "$line"; passed=$((passed + 1)) ;;
		"not ok - "*) echo "$line"; failed=$((failed + 1)) ;;
		"# $tag: "*) CASES_SEEN=1 ;;
		"# rc "*) CASES_RC=${line#\# rc } ;;
		*) echo "  $line" >&2 ;;
		esac
	done
}

# --- servers in a network namespace (test_native.sh, test_dpdk.sh) -------
# The caller defines NS (the namespace's name), ns_made (1 once it exists),
# pids (above), tmp (a scratch directory), DEADLINE (epoch seconds: nothing
# new starts after it) and SECTION_END=$DEADLINE (then see section); each
# function says what more it uses.

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
# ns_teardown: delete the namespace (and so the taps in it) after killing
# whatever of ours is still in it; 0 when it is gone
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
# ns_removed_case NAME: at the end, kill what is left and delete the
# namespace; the case passes when it is gone
ns_removed_case() {
	kill_ours
	ns_teardown
	if [ -e "/run/netns/$NS" ] || ip netns list 2>/dev/null | grep -qw "$NS"; then
		bad "$1" "$NS still exists"
	else
		ok "$1"
	fi
}

# section SECONDS: the budget of the part that starts now
section() { SECTION_END=$(($(date +%s) + $1)); }
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
# one_line [MAX]: stdin on one line ('|' for newlines), MAX (600) characters
one_line() { tr '\n' '|' | cut -c1-"${1:-600}"; }

# ns_start NAME BIN ARGS...: BIN ARGS in the namespace, its output in
# LOG=$tmp/NAME.log; sets SPID (the server itself: `ip netns exec` execs
# it).  1, with START_ERR and the process killed, if within 2 s it is not
# BIN, our child, in $NS.
ns_start() {
	local name=$1 bin=$2 exe want nsi
	shift 2
	LOG=$tmp/$name.log
	START_ERR=""
	ip netns exec "$NS" "$bin" "$@" </dev/null >"$LOG" 2>&1 &
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
	if [ "$exe" = "$want" ] && [ "$(ppid "$SPID")" = "$$" ] &&
		[ "$(readlink "/proc/$SPID/ns/net")" = "net:[$nsi]" ]; then
		return 0
	fi
	if running "$SPID"; then
		START_ERR="pid $SPID is not $want in $NS (exe '$exe', ppid $(ppid "$SPID"), $(readlink "/proc/$SPID/ns/net" 2>/dev/null)): "
		ns_stop "$SPID" KILL
	else
		ns_stop "$SPID" KILL
		START_ERR="exited at once (status $STOP_RC): "
	fi
	START_ERR="$START_ERR$(tail -8 "$LOG" | one_line 1200)"
	return 1
}

# ns_stop PID [SIG]: SIG (TERM; 0 when it was sent already), up to 5 s,
# then SIGKILL; STOP_RC is its status (none if PID is not in pids: waited
# for already), STOP_SLOW 1 if it needed the SIGKILL
ns_stop() {
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

# wait_up PID PROBE...: until PROBE succeeds, up to 10 s; 1 with START_ERR
# (from LOG, the server's log) otherwise
wait_up() {
	local pid=$1 t_end=$(($(date +%s) + 10))
	shift
	while [ "$(date +%s)" -lt "$t_end" ]; do
		if ! running "$pid"; then
			ns_stop "$pid" KILL
			START_ERR="exited (status $STOP_RC): $(tail -5 "$LOG" | one_line)"
			return 1
		fi
		"$@" && return 0
		sleep 0.2
	done
	START_ERR="no answer within 10 s: $(tail -5 "$LOG" | one_line)"
	return 1
}
# probes for wait_up: httpd on $SIP:8080 serves /tiny.txt, memcached on
# $SIP:11211 answers "version"
probe_httpd() { nsrun 3 curl -s --noproxy '*' -o /dev/null -m 1 "http://$SIP:8080/tiny.txt"; }
probe_mc() {
	nsrun 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "version\r\n" >&3 &&
		read -t 1 -r l <&3 && [[ $l == VERSION* ]]' probe "$SIP" 11211 2>/dev/null
}

# sigterm_case NAME PID [0]: SIGTERM (0: it was sent already), exit status
# 0 within 5 s; LOG is the server's log.  With GRACE set (the servers'
# --stop-grace-ms), also not by giving up on work in flight: when a peer
# went away with connections half-closed it shows as that warning instead
# of as a kill after 5 s, and costs less time.
sigterm_case() {
	ns_stop "$2" "${3:-TERM}"
	if [ "$STOP_RC" = none ]; then
		bad "$1" "pid $2 is not a server of ours still to be waited for"
	elif [ "$STOP_SLOW" -eq 1 ]; then
		bad "$1" "still running 5 s after SIGTERM: $(tail -5 "$LOG" | one_line)"
	elif [ -n "${GRACE:-}" ] && grep -q 'work still in flight after' "$LOG"; then
		bad "$1" "exit $STOP_RC only after the whole --stop-grace-ms $GRACE (TCP connections still closing, e.g. a peer's last ACKs lost): $(grep -m1 'work still in flight' "$LOG")"
	elif [ "$STOP_RC" -ne 0 ]; then
		bad "$1" "exit status $STOP_RC: $(tail -8 "$LOG" | one_line 1500)"
	else
		ok "$1"
	fi
	show_counters "$LOG"
}

# show_counters LOG: the per-shard counters the stack logged at exit
show_counters() { grep -o 'native stack counters of shard.*' "$1" | sed 's/^/  # /' >&2; }

# shards_used NAME LOG: both shards accepted connections
# (tcp_passive_opens); rx_frames and fwd_in are shown with it (which queue
# the frames came in on, and how many a shard forwarded to their flow's
# shard)
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

# ns_run_py SCRIPT SUMMARY-TAG CAP ARGS...: one of the Python client suites
# ($here/SCRIPT, run by PY) in the namespace; its cases are counted here, a
# run that could not start or did not finish is a case named after
# CASE_PREFIX (native_, dpdk_)
ns_run_py() {
	local script=$1 tag=$2 cap=$3 tmo
	shift 3
	tmo=$(left "$cap")
	if [ "$tmo" -lt 5 ]; then
		bad "${CASE_PREFIX}${script%.py}_run" "out of time budget ($*)"
		return
	fi
	count_cases "$tag" < <(nsrun "$tmo" "$PY" "$here/$script" "$@" 2>&1; echo "# rc $?")
	if [ "$CASES_SEEN" -ne 1 ]; then
		bad "${CASE_PREFIX}${script%.py}_completed" "$script $* exit $CASES_RC without a summary (timeout ${tmo}s?)"
	fi
}

# ns_memccapable NAME MODE [CAP]: memccapable MODE (-a, -b) against
# $SIP:11211, at most CAP (30) s; passes when every test did
ns_memccapable() {
	local name=$1 mode=$2 cap=${3:-30} out rc tmo
	tmo=$(left "$cap")
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

# httpd on $SIP:8080 with --root www (apps/httpd/www); the caller defines
# www, base (http://$SIP:8080) and CURL (curl and its options).
# httpd_www_files_case NAME: every file of www, 200 and byte-exact
httpd_www_files_case() {
	local f u out errs=""
	while IFS= read -r f; do
		u=$(sed 's/ /%20/g' <<<"$f")
		rm -f "$tmp/body"
		out=$(nsrun 12 "${CURL[@]}" -m 10 -o "$tmp/body" -w '%{http_code} %{http_version}' "$base/$u" 2>&1 | tr '\n' ' ')
		out=${out% }
		[ "$out" = "200 1.1" ] || errs="$errs /$u: '$out';"
		cmp -s "$tmp/body" "$www/$f" || errs="$errs /$u: body differs ($(stat -c %s "$tmp/body" 2>/dev/null) bytes of $(stat -c %s "$www/$f"));"
	done < <(cd "$www" && find . -type f | sed 's|^\./||' | sort)
	[ -z "$errs" ] && ok "$1" || bad "$1" "$errs"
}
# httpd_404_case NAME: a missing file is a 404
httpd_404_case() {
	local out
	out=$(nsrun 12 "${CURL[@]}" -m 10 -o /dev/null -w '%{http_code}' "$base/nothere.html" 2>&1)
	[ "$out" = 404 ] && ok "$1" || bad "$1" "got '$(one_line <<<"$out")', want 404"
}
# httpd_keepalive_case NAME: 4 requests on 1 connection, bodies exact
httpd_keepalive_case() {
	local out
	rm -f "$tmp"/k[1-4]
	out=$(nsrun 12 "${CURL[@]}" -m 10 -v -o "$tmp/k1" -o "$tmp/k2" -o "$tmp/k3" -o "$tmp/k4" \
		"$base/index.html" "$base/1k.txt" "$base/64k.bin" "$base/tiny.txt" 2>&1)
	if [ "$(grep -c 'Re-using existing connection' <<<"$out")" -eq 3 ] &&
		cmp -s "$tmp/k1" "$www/index.html" && cmp -s "$tmp/k2" "$www/1k.txt" &&
		cmp -s "$tmp/k3" "$www/64k.bin" && cmp -s "$tmp/k4" "$www/tiny.txt"; then
		ok "$1"
	else
		bad "$1" "no reuse or wrong bodies: $(grep -E '^[*<>] ' <<<"$out" | head -30 | one_line)"
	fi
}
# httpd_concurrent_case NAME: 200 connections open at once (Python, PY),
# then each GETs a file of www and checks it
httpd_concurrent_case() {
	local out rc
	out=$(nsrun 45 "$PY" -c "$CONC_PY" "$SIP" 8080 200 "$www" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "$1"
	else
		bad "$1" "exit $rc: $(one_line 1500 <<<"$out")"
	fi
}
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
