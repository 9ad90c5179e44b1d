# lib.sh - sourced by the integration scripts: case results and the summary
# line that scripts/test adds up.
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
