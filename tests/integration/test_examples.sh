#!/usr/bin/env bash
# test_examples.sh BUILD_DIR - the guide's examples still build and work.
set -u
build=${1:-build}
. "$(dirname "$0")/lib.sh"

out=$("$build/docs/examples/counter" -t 1 --log-level warn 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = "sum of replies: 500500" ]; then
	ok "counter_example_one_shard_exact_sum"
else
	bad "counter_example_one_shard_exact_sum" "rc=$rc out=$out"
fi
out=$("$build/docs/examples/counter" -t 2 --log-level warn 2>&1); rc=$?
# Two owners with k0 + k1 = 1000 requests: the sum is k0(k0+1)/2 + k1(k1+1)/2,
# at least 250500 (even split) and below 500500 (all on one shard).
sum=$(sed -nE 's/^sum of replies: ([0-9]+)$/\1/p' <<<"$out")
if [ $rc -eq 0 ] && [ -n "$sum" ] && [ "$sum" -ge 250500 ] && [ "$sum" -lt 500500 ]; then
	ok "counter_example_two_shards"
else
	bad "counter_example_two_shards" "rc=$rc out=$out"
fi

finish test_examples
