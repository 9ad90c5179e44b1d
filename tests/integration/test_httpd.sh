#!/usr/bin/env bash
# test_httpd.sh BUILD_DIR - skerry-httpd against real clients, with 1 and
# with 2 shards: curl (bodies, Content-Type/Length, Date, Server,
# Last-Modified, HEAD, keep-alive reuse, HTTP/1.0 with and without
# keep-alive, If-Modified-Since, 10 MB sha256) and httpd_client_test.py
# (http.client, h11 on every response, pipelining, a request split at every
# byte, bad input with its exact status 400/404/405/408/413/414/431/501/505,
# path traversal, a slow 10 MB reader, 1,000 keep-alive connections, header
# and keep-alive timeouts, SIGTERM with 50 clients).
#
# The document root is made here in a temp dir (index.html, a.css, b.js,
# c.png, dir/index.html, a 10 MB big.bin, "my file.txt", "..hidden",
# "a..b.txt", tiny.txt, empty.txt; mtime 2020-01-02 03:04:05 UTC) with secret.txt next
# to it, outside the root.  The server runs with --header-timeout 2
# --keepalive-timeout 3 so the timeout cases are quick.
# HTTPD=/path/to/server runs the same against another binary taking the
# same flags.  Needs curl and python3-h11 (scripts/install-deps --test).
# Ports: free ones from 26500-26999 on 127.0.0.1.  Every client step is
# bounded; each shard count has a 90 s budget.
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3	# Debian's, which has h11
T_START=$(date +%s)
server=${HTTPD:-$build/apps/httpd/skerry-httpd}
HT=2	# --header-timeout
KT=3	# --keepalive-timeout

tmp=$(mktemp -d /tmp/skerry-httpd-test.XXXXXX)
pids=()
cleanup() {
	kill_ours
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

missing=""
[ -x "$server" ] || missing="$missing $server"
command -v curl >/dev/null || missing="$missing curl"
"$PY" -c 'import h11' 2>/dev/null || missing="$missing $PY+h11(python3-h11)"
if [ -n "$missing" ]; then
	bad httpd_prerequisites "missing:$missing"
	finish test_httpd
fi

# 1000 client connections plus the server's own: need the fds.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
	ulimit -n 4096 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
fi

# ---------------------------------------------------------- document root
root=$tmp/root
secret=$tmp/secret.txt
mkdir -p "$root/dir"
echo "TOP-SECRET-$$-$RANDOM-outside-the-root" >"$secret"
printf '<!DOCTYPE html>\n<html><head><title>skerry test</title></head>\n<body><p>index of the test root</p></body></html>\n' >"$root/index.html"
printf 'body { color: #123456; }\n' >"$root/a.css"
printf 'console.log("skerry b.js");\n' >"$root/b.js"
# a PNG signature, then every byte value (NUL, CR, LF, 0xff ...)
{ printf '\x89PNG\r\n\x1a\n'; "$PY" -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 3)'; } >"$root/c.png"
printf '<html><body>dir index</body></html>\n' >"$root/dir/index.html"
head -c 10485760 /dev/urandom >"$root/big.bin"
printf 'a file with spaces in its name\n' >"$root/my file.txt"
printf 'dot-dot-hidden, inside the root\n' >"$root/..hidden"
printf 'two dots inside a name\n' >"$root/a..b.txt"
printf 'tiny\n' >"$root/tiny.txt"
: >"$root/empty.txt"
find "$root" -exec touch -d '2020-01-02 03:04:05 UTC' {} +
LM='Thu, 02 Jan 2020 03:04:05 GMT'


free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((26500 + RANDOM % 500))
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
		"$server" -p "$SPORT" -l 127.0.0.1 --root "$root" \
			--header-timeout "$HT" --keepalive-timeout "$KT" "$@" >"$tmp/$name.log" 2>&1 &
		SPID=$!
		pids+=("$SPID")
		for _ in $(seq 1 100); do	# up to 5 s
			running "$SPID" || break
			if ss -Htlnp "sport = :$SPORT" 2>/dev/null | grep -q "pid=$SPID,"; then
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

# stop_server PID: SIGTERM, up to 5 s, then SIGKILL; STOP_RC is its status
stop_server() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		running "$pid" || break
		sleep 0.05
	done
	running "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	STOP_RC=$?
	forget "$pid"
}

# budget: seconds left for this shard count, capped at $1
budget() {
	local left=$((BUDGET_END - $(date +%s)))
	[ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

# run_py NAME-PREFIX CAP ARGS...: run httpd_client_test.py, count its cases
run_py() {
	local prefix=$1 cap=$2 tmo group
	shift 2
	group=$(sed -E 's/.*--group ([a-z]+).*/\1/' <<<"$*")
	tmo=$(budget "$cap")
	if [ "$tmo" -lt 5 ]; then
		bad "${prefix}python_${group}_run" "out of time budget"
		return
	fi
	count_cases httpd_client_test < <(timeout -k 2 "$tmo" "$PY" "$here/httpd_client_test.py" 127.0.0.1 "$@" \
		--root "$root" --secret "$secret" --header-timeout "$HT" --keepalive-timeout "$KT" \
		--prefix "$prefix" 2>&1; echo "# rc $?")
	if [ "$CASES_SEEN" -ne 1 ]; then
		bad "${prefix}python_${group}_completed" "httpd_client_test.py $* exit $CASES_RC without a summary (timeout ${tmo}s?)"
	fi
}

# ------------------------------------------------------------------ curl
CURL=(curl -sS --noproxy '*' --max-time 10)

# urlpath FILE-UNDER-ROOT
urlpath() { sed 's/ /%20/g' <<<"$1"; }

# curl_bodies PREFIX BASE: status 200, HTTP/1.1 and the exact bytes
curl_bodies() {
	local name=$1bodies_exact base=$2 f u out errs=""
	for f in index.html a.css b.js c.png dir/index.html "my file.txt" tiny.txt big.bin; do
		u=$(urlpath "$f")
		out=$("${CURL[@]}" -o "$tmp/body" -w '%{http_code} %{http_version}' "$base/$u" 2>&1)
		[ "$out" = "200 1.1" ] || errs="$errs /$u: '$out' (want '200 1.1');"
		cmp -s "$tmp/body" "$root/$f" || errs="$errs /$u: body differs ($(stat -c %s "$tmp/body" 2>/dev/null) bytes, want $(stat -c %s "$root/$f"));"
	done
	for u in / dir/; do
		f=${u}index.html
		f=${f#/}
		out=$("${CURL[@]}" -o "$tmp/body" -w '%{http_code}' "$base/$u" 2>&1)
		[ "$out" = 200 ] && cmp -s "$tmp/body" "$root/$f" || errs="$errs /$u: '$out' or body not $f;"
	done
	[ -z "$errs" ] && ok "$name" || bad "$name" "$errs"
}

# curl_headers PREFIX BASE: Content-Type per file, Content-Length, Date,
# Server, Last-Modified
curl_headers() {
	local p=$1 base=$2 f ct want errs="" hdr cl date
	for f in index.html:'^text/html(;.*)?$' a.css:'^text/css(;.*)?$' \
		b.js:'^(application|text)/javascript(;.*)?$' c.png:'^image/png$'; do
		want=${f#*:}
		f=${f%%:*}
		ct=$("${CURL[@]}" -o /dev/null -w '%{content_type}' "$base/$f" 2>&1)
		grep -qiE -- "$want" <<<"$ct" || errs="$errs $f: Content-Type '$ct' !~ /$want/;"
	done
	[ -z "$errs" ] && ok "${p}content_types" || bad "${p}content_types" "$errs"

	errs=""
	for f in index.html c.png big.bin empty.txt; do
		hdr=$("${CURL[@]}" -D - -o /dev/null "$base/$f" 2>&1 | tr -d '\r')
		cl=$(grep -i '^content-length:' <<<"$hdr" | sed 's/^[^:]*: *//')
		[ "$cl" = "$(stat -c %s "$root/$f")" ] || errs="$errs $f: Content-Length '$cl', want $(stat -c %s "$root/$f");"
		date=$(grep -i '^date:' <<<"$hdr" | sed 's/^[^:]*: *//')
		if ! grep -qE '^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$' <<<"$date"; then
			errs="$errs $f: Date '$date' not an IMF-fixdate;"
		elif [ $(( $(date +%s) - $(date -d "$date" +%s) )) -gt 5 ] ||
			[ $(( $(date -d "$date" +%s) - $(date +%s) )) -gt 5 ]; then
			errs="$errs $f: Date '$date' is off by more than 5 s;"
		fi
		grep -qiE '^server: .+' <<<"$hdr" || errs="$errs $f: no Server header;"
		grep -qix "last-modified: $LM" <<<"$hdr" || errs="$errs $f: Last-Modified '$(grep -i '^last-modified:' <<<"$hdr")', want '$LM';"
	done
	[ -z "$errs" ] && ok "${p}length_date_server_last_modified" || bad "${p}length_date_server_last_modified" "$errs"
}

# curl_head PREFIX BASE: HEAD gives the headers only, same Content-Length
curl_head() {
	local name=$1head base=$2 f out hdr errs=""
	for f in index.html big.bin c.png; do
		hdr=$("${CURL[@]}" -I -o "$tmp/head" -w 'CODE %{http_code} SIZE %{size_download}' "$base/$f" 2>&1 | tr -d '\r')
		grep -qx 'CODE 200 SIZE 0' <<<"$hdr" || errs="$errs $f: '$(tail -1 <<<"$hdr")' (want 200, 0 body bytes);"
		tr -d '\r' <"$tmp/head" | grep -qix "content-length: $(stat -c %s "$root/$f")" ||
			errs="$errs $f: HEAD Content-Length '$(tr -d '\r' <"$tmp/head" | grep -i '^content-length')', want $(stat -c %s "$root/$f");"
	done
	[ -z "$errs" ] && ok "$name" || bad "$name" "$errs"
}

# curl_keepalive PREFIX BASE: two URLs in one curl reuse one connection;
# HTTP/1.0 closes unless asked for keep-alive
curl_keepalive() {
	local p=$1 base=$2 out
	out=$("${CURL[@]}" -v -o "$tmp/k1" -o "$tmp/k2" "$base/index.html" "$base/a.css" 2>&1)
	if grep -q 'Re-using existing connection' <<<"$out" && cmp -s "$tmp/k1" "$root/index.html" &&
		cmp -s "$tmp/k2" "$root/a.css"; then
		ok "${p}keepalive_reuse"
	else
		bad "${p}keepalive_reuse" "no reuse or wrong bodies: $(grep -E '^[*<>] ' <<<"$out" | head -30 | tr '\n' '|')"
	fi

	rm -f "$tmp/k1" "$tmp/k2"
	out=$("${CURL[@]}" --http1.0 -v -o "$tmp/k1" -o "$tmp/k2" "$base/index.html" "$base/a.css" 2>&1)
	if ! grep -q 'Re-using existing connection' <<<"$out" && cmp -s "$tmp/k1" "$root/index.html" &&
		cmp -s "$tmp/k2" "$root/a.css" && ! grep -qi '^< connection: keep-alive' <<<"$out"; then
		ok "${p}http10_no_keepalive"
	else
		bad "${p}http10_no_keepalive" "reused, keep-alive announced or wrong bodies: $(grep -E '^[*<>] ' <<<"$out" | head -30 | tr '\n' '|')"
	fi

	rm -f "$tmp/k1" "$tmp/k2"
	out=$("${CURL[@]}" --http1.0 -H 'Connection: keep-alive' -v -o "$tmp/k1" -o "$tmp/k2" \
		"$base/index.html" "$base/a.css" 2>&1)
	if grep -q 'Re-using existing connection' <<<"$out" && cmp -s "$tmp/k1" "$root/index.html" &&
		cmp -s "$tmp/k2" "$root/a.css" && grep -qi '^< connection: keep-alive' <<<"$out"; then
		ok "${p}http10_keepalive"
	else
		bad "${p}http10_keepalive" "no reuse, no 'Connection: keep-alive' or wrong bodies: $(grep -E '^[*<>] ' <<<"$out" | head -30 | tr '\n' '|')"
	fi
}

# curl_conditional PREFIX BASE: If-Modified-Since
curl_conditional() {
	local p=$1 base=$2 out
	out=$("${CURL[@]}" -o "$tmp/c1" -w '%{http_code} %{size_download}' -H "If-Modified-Since: $LM" "$base/index.html" 2>&1)
	[ "$out" = "304 0" ] && ok "${p}if_modified_since_equal_304" ||
		bad "${p}if_modified_since_equal_304" "got '$out', want '304 0' (status, body bytes)"
	out=$("${CURL[@]}" -o "$tmp/c2" -w '%{http_code}' -H 'If-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT' "$base/index.html" 2>&1)
	if [ "$out" = 200 ] && cmp -s "$tmp/c2" "$root/index.html"; then
		ok "${p}if_modified_since_before_200"
	else
		bad "${p}if_modified_since_before_200" "got '$out' ($(stat -c %s "$tmp/c2" 2>/dev/null) bytes), want 200 with index.html"
	fi
}

curl_misc() {
	local p=$1 base=$2 out want got
	out=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$base/nothere.html" 2>&1)
	[ "$out" = 404 ] && ok "${p}404" || bad "${p}404" "got '$out', want 404"
	out=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X POST -d x=1 "$base/index.html" 2>&1)
	[ "$out" = 405 ] && ok "${p}post_405" || bad "${p}post_405" "got '$out', want 405"
	out=$("${CURL[@]}" --path-as-is -o "$tmp/trav" -w '%{http_code}' "$base/../secret.txt" 2>&1)
	if [[ $out =~ ^(400|404)$ ]] && ! grep -qF "$(cat "$secret")" "$tmp/trav"; then
		ok "${p}traversal_path_as_is"
	else
		bad "${p}traversal_path_as_is" "got '$out': $(head -c 200 "$tmp/trav")"
	fi
	want=$(sha256sum <"$root/big.bin" | cut -d' ' -f1)
	out=$("${CURL[@]}" -o "$tmp/big" -w '%{http_code}' "$base/big.bin" 2>&1)
	got=$(sha256sum <"$tmp/big" | cut -d' ' -f1)
	[ "$out" = 200 ] && [ "$got" = "$want" ] && ok "${p}10mb_sha256" ||
		bad "${p}10mb_sha256" "got '$out' sha256 $got ($(stat -c %s "$tmp/big") bytes), want 200 $want"
	rm -f "$tmp/big"
}

for t in 1 2; do
	p="httpd_t${t}_"
	BUDGET_END=$(( $(date +%s) + 90 ))
	t0=$(date +%s)

	if ! start_server main$t -t "$t" -c 4000; then
		bad "${p}server_starts" "$(tail -5 "$tmp/main$t.log")"
		continue
	fi
	ok "${p}server_starts"
	mpid=$SPID
	base="http://127.0.0.1:$SPORT"
	curl_bodies "${p}curl_" "$base"
	curl_headers "${p}curl_" "$base"
	curl_head "${p}curl_" "$base"
	curl_keepalive "${p}curl_" "$base"
	curl_conditional "${p}curl_" "$base"
	curl_misc "${p}curl_" "$base"
	run_py "$p" 75 "$SPORT" "$t" --group main
	if running "$mpid"; then
		ok "${p}server_survived_all_clients"
	else
		bad "${p}server_survived_all_clients" "died: $(tail -5 "$tmp/main$t.log")"
	fi
	stop_server "$mpid"

	# SIGTERM with 50 clients: the Python side sends the signal and checks
	# that every connection is closed and the process is gone within 5 s;
	# here: its exit status.
	if start_server sigterm$t -t "$t" -c 4000; then
		spid=$SPID
		run_py "$p" 20 "$SPORT" "$t" --group sigterm --pid "$spid"
		exits_0_case "${p}sigterm_exit_status_0" "$spid" "$tmp/sigterm$t.log"
	else
		bad "${p}sigterm_server_starts" "$(tail -5 "$tmp/sigterm$t.log")"
	fi
	echo "# -t $t took $(( $(date +%s) - t0 )) s" >&2
done

echo "# total $(( $(date +%s) - T_START )) s ($server)" >&2
finish test_httpd
