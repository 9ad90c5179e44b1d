#!/usr/bin/env bash
# test_layers.sh - the layer rule, checked on the sources:
#  1. nothing above kernel-glue/ includes an OS-only header;
#  2. each layer includes only the public headers of its own layer or those
#     below it (apps -> net -> shard -> runtime -> memory -> kernel-glue);
#  3. every directory with sources has its own README.
cd "$(dirname "$0")/../.."
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "not ok - $1"; printf '  %s\n' "$2" >&2; failed=$((failed + 1)); }

os='#include <(pthread\.h|unistd\.h|signal\.h|fcntl\.h|liburing\.h|hwloc\.h|sys/[^>]*|linux/[^>]*|asm/[^>]*)>'
# net/posix/ is the Linux-only stack and net/drivers/ holds OS-bound
# drivers (tap): the generic net/ files and the native stack stay OS-free,
# so that the unikernel can link them.
hits=$(grep -nE "$os" runtime/*.[ch] shard/*.[ch] memory/*.[ch] net/*.[ch] net/native/*.[ch] include/skerry/*.h apps/*/*.[ch] 2>/dev/null)
if [ -z "$hits" ]; then ok "no_os_headers_above_kernel_glue"; else bad "no_os_headers_above_kernel_glue" "$hits"; fi

# Which public headers belong to which layer.
declare -A layer_of=([alloc.h]=1 [future.h]=2 [reactor.h]=2 [timer.h]=2 [log.h]=2
		     [metrics.h]=2 [options.h]=2 [fs.h]=2 [shard.h]=3 [socket.h]=4 [server.h]=4
		     [pkt.h]=4 [netdev.h]=4)
check_layer() {
	local dir=$1 level=$2 bad_lines=""
	for f in "$dir"/*.[ch]; do
		[ -f "$f" ] || continue
		while read -r h; do
			l=${layer_of[$h]:-0}
			[ "$l" -gt "$level" ] && bad_lines+="$f includes skerry/$h"$'\n'
		done < <(grep -oE '#include [<"]skerry/[a-z_]+\.h[>"]' "$f" | sed -E 's/.*skerry\/([a-z_]+\.h).*/\1/')
	done
	if [ -z "$bad_lines" ]; then ok "layer_${dir//\//_}_includes_only_lower_layers"; else bad "layer_${dir//\//_}_includes_only_lower_layers" "$bad_lines"; fi
}
check_layer memory 1
check_layer runtime 2
check_layer shard 3
check_layer net 4
check_layer net/posix 4
check_layer net/native 4
check_layer net/drivers 4
missing=""
for d in $(find . -path './build*' -prune -o -path './.git' -prune -o \( -name '*.c' -o -name '*.h' \) -print | xargs -n1 dirname | sed 's|^\./||' | sort -u); do
	[ -f "$d/README.md" ] || missing+="$d "
done
if [ -z "$missing" ]; then ok "every_source_directory_has_a_readme"; else bad "every_source_directory_has_a_readme" "$missing"; fi

# Every public header compiles on its own (no hidden include-order needs).
hdr_errs=""
for h in include/skerry/*.h; do
	if ! out=$(printf '#include "skerry/%s"\n' "$(basename "$h")" |
		   ${CC:-cc} -std=c17 -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c - 2>&1); then
		hdr_errs+="$h: $out"$'\n'
	fi
done
if [ -z "$hdr_errs" ]; then ok "public_headers_compile_alone"; else bad "public_headers_compile_alone" "$hdr_errs"; fi

echo "# test_layers: $passed passed, $failed failed"
[ $failed -eq 0 ]
