#!/usr/bin/env bash
# test_hugepages.sh BUILD_DIR - the page source: with free 2 MiB hugepages
# the shard allocator takes its memory from them (seen in the log and in the
# process's own mappings); without any it falls back to 4 KiB pages and says
# so.  Sets vm.nr_hugepages for the test and restores it.
set -u
build=${1:-build}
demo="$build/apps/demo/skerry-demo"
. "$(dirname "$0")/lib.sh"

if ! "$demo" --version | grep -q 'allocator shard'; then
	# The jemalloc backend does not use the platform page source.
	finish test_hugepages
fi

knob=/proc/sys/vm/nr_hugepages
old=$(cat $knob)
restore() { echo "$old" >$knob 2>/dev/null; }
trap restore EXIT

# Fallback: no free hugepages.
if [ "$(awk '/HugePages_Free/{print $2}' /proc/meminfo)" = 0 ] || echo 0 >$knob 2>/dev/null; then
	expect falls_back_to_normal_pages_and_says_so 0 ': OK$' \
		'4 KiB pages with transparent-hugepage hint \(no free 2 MiB hugepages\)' -- "$demo" -n 1000
else
	bad "falls_back_to_normal_pages_and_says_so" "cannot free the hugepages in use (need root)"
fi

# Hugepages: reserve 128 of them and watch a running demo use some.
if echo $((old + 128)) >$knob 2>/dev/null &&
   [ "$(awk '/HugePages_Free/{print $2}' /proc/meminfo)" -ge 16 ]; then
	log=$(mktemp)
	"$demo" -n 100000000000 >"$log" 2>&1 &
	pid=$!
	used=0
	for _ in $(seq 50); do
		sleep 0.1
		used=$(awk '/^KernelPageSize: *2048 kB/{n++} END{print n+0}' /proc/$pid/smaps 2>/dev/null)
		[ "${used:-0}" -gt 0 ] && break
	done
	kill -TERM $pid
	wait $pid
	rc=$?
	if [ $rc -eq 0 ] && [ "${used:-0}" -gt 0 ] && grep -q 'allocator shard, 2 MiB hugepages' "$log"; then
		ok "uses_free_hugepages_and_says_so"
	else
		bad "uses_free_hugepages_and_says_so" "rc=$rc hugepage mappings=$used log=$(head -c 400 "$log")"
	fi
	rm -f "$log"
else
	bad "uses_free_hugepages_and_says_so" "could not reserve 2 MiB hugepages (need root and free memory)"
fi

# A pool too small for two shards: commits fall back to normal pages
# mid-run instead of failing (or leaving holes in the reservation).
if echo $((old + 2)) >$knob 2>/dev/null; then
	expect hugepage_pool_running_dry_falls_back 0 ': OK$' -- "$demo" -n 300000
else
	bad "hugepage_pool_running_dry_falls_back" "cannot set vm.nr_hugepages (need root)"
fi
restore

finish test_hugepages
