#!/usr/bin/env bash
# test_demo.sh BUILD_DIR - the main job as a user runs it: real process,
# real exit codes, real signals.
set -u
build=${1:-build}
demo="$build/apps/demo/skerry-demo"
. "$(dirname "$0")/lib.sh"

out=$("$demo" 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q ': OK$' <<<"$out" && grep -q 'starting [0-9]* shard' <<<"$out"; then
	ok "demo_runs_all_shards_and_checks_sums"
else
	bad "demo_runs_all_shards_and_checks_sums" "rc=$rc out=$out"
fi

out=$("$demo" -t 1 -n 50000 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q '1 shard, 50000 cross-shard requests' <<<"$out"; then
	ok "demo_one_shard"
else
	bad "demo_one_shard" "rc=$rc out=$out"
fi

out=$("$demo" --cpuset 1 -n 1000 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q 'starting 1 shard on 1 CPU' <<<"$out"; then
	ok "demo_cpuset"
else
	bad "demo_cpuset" "rc=$rc out=$out"
fi

out=$("$demo" --bogus 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q "unknown option '--bogus'" <<<"$out"; then
	ok "unknown_option_exits_2"
else
	bad "unknown_option_exits_2" "rc=$rc out=$out"
fi

out=$("$demo" -t 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q "needs a value" <<<"$out"; then
	ok "missing_value_exits_2"
else
	bad "missing_value_exits_2" "rc=$rc out=$out"
fi

out=$("$demo" --help 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q -- '--smp N' <<<"$out" && grep -q -- '--messages N' <<<"$out"; then
	ok "help_lists_options"
else
	bad "help_lists_options" "rc=$rc"
fi

out=$("$demo" --version 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -qE '^skerry-demo \(skerry\) [0-9.]+' <<<"$out"; then
	ok "version"
else
	bad "version" "rc=$rc out=$out"
fi

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
