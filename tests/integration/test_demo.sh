#!/usr/bin/env bash
# test_demo.sh BUILD_DIR - the main job as a user runs it: real process,
# real exit codes, real signals.
set -u
build=${1:-build}
demo="$build/apps/demo/skerry-demo"
. "$(dirname "$0")/lib.sh"

expect demo_runs_all_shards_and_checks_sums 0 ': OK$' 'starting [0-9]+ shard' -- "$demo"
expect demo_one_shard 0 '1 shard, 50000 cross-shard requests' -- "$demo" -t 1 -n 50000
expect demo_cpuset 0 'starting 1 shard on 1 CPU' -- "$demo" --cpuset 1 -n 1000
expect unknown_option_exits_2 2 "unknown option '--bogus'" -- "$demo" --bogus
expect missing_value_exits_2 2 'needs a value' -- "$demo" -t
expect help_lists_options 0 '--smp N' '--messages N' -- "$demo" --help
expect version 0 '^skerry-demo \(skerry\) [0-9.]+' -- "$demo" --version

# SIGTERM in the middle of a long run: clean stop, exit 0, promptly.
for sig in TERM INT; do
	"$demo" -n 100000000000 >/tmp/skerry-demo-sig.$$ 2>&1 &
	pid=$!
	sleep 0.5
	kill -s $sig $pid
	t0=$(date +%s%N)
	wait $pid; rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	if [ $rc -eq 0 ] && [ $ms -lt 5000 ]; then
		ok "sig${sig,,}_stops_cleanly_with_0"
	else
		bad "sig${sig,,}_stops_cleanly_with_0" "rc=$rc after ${ms} ms: $(tail -3 /tmp/skerry-demo-sig.$$)"
	fi
	rm -f /tmp/skerry-demo-sig.$$
done

finish test_demo
