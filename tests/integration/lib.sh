# lib.sh - sourced by the integration scripts: case results and the summary
# line that scripts/test adds up.
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "not ok - $1"; printf '  %s\n' "$2" >&2; failed=$((failed + 1)); }
# finish NAME: print "# NAME: N passed, M failed" and exit 1 on any failure.
finish() {
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
