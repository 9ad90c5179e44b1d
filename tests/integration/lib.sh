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
