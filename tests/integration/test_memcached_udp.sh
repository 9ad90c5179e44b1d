#!/usr/bin/env bash
# test_memcached_udp.sh BUILD_DIR - skerry-memcached's UDP protocol (-U):
# memcached's 8-byte frame header around text commands, answers cut into
# numbered datagrams, request ids echoed, on 2 shards; a bad frame is
# dropped and the server goes on; SIGTERM still exits 0.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
build=${1:-build}
server=$build/apps/memcached/skerry-memcached
py=/usr/bin/python3

port=
for _ in $(seq 1 50); do
	p=$((23600 + RANDOM % 300))
	if [ -z "$(ss -Htuln "sport = :$p" 2>/dev/null)" ]; then port=$p; break; fi
done
[ -n "$port" ] || { bad udp_free_port "no free port"; finish test_memcached_udp; }
"$server" -t 2 -p "$port" -U "$port" -l 127.0.0.1 >/tmp/skerry-udp-$$.log 2>&1 &
spid=$!
trap 'kill -KILL $spid 2>/dev/null; rm -f /tmp/skerry-udp-$$.log' EXIT
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.05
done

out=$(timeout 20 "$py" - "$port" <<'PY' 2>&1
import socket, struct, sys
port = int(sys.argv[1])
def check(name, cond, detail=""):
    print(("ok - " if cond else "not ok - ") + name + ("" if cond else "  " + str(detail)))
tcp = socket.create_connection(("127.0.0.1", port), timeout=5)
for k, n in ((b"u_small", 10), (b"u_3k", 3000), (b"u_100k", 100000)):
    tcp.sendall(b"set %s 5 0 %d\r\n%s\r\n" % (k, n, b"v" * n))
    check("udp_setup_" + k.decode(), tcp.recv(100) == b"STORED\r\n")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
def ask(rid, body):
    u.sendto(struct.pack(">HHHH", rid, 0, 1, 0) + body, ("127.0.0.1", port))
    parts, total, biggest = {}, None, 0
    while total is None or len(parts) < total:
        d, _ = u.recvfrom(65536)
        r, seq, total, _ = struct.unpack(">HHHH", d[:8])
        if r == rid:
            biggest = max(biggest, len(d))
            parts[seq] = d[8:]
    check("udp_request_%d_datagrams_at_most_1400_bytes" % rid, biggest <= 1400, biggest)
    return b"".join(parts[i] for i in range(total)), total
for rid, k, n in ((1, b"u_small", 10), (2, b"u_3k", 3000), (3, b"u_100k", 100000)):
    body, total = ask(rid, b"get %s\r\n" % k)
    want = b"VALUE %s 5 %d\r\n%s\r\nEND\r\n" % (k, n, b"v" * n)
    check("udp_get_%d_bytes_in_%d_datagrams" % (n, total), body == want, body[:60])
body, _ = ask(4, b"get nothere\r\n")
check("udp_miss", body == b"END\r\n", body)
body, _ = ask(5, b"set u_set 0 0 2\r\nhi\r\n")
check("udp_set", body == b"STORED\r\n", body)
tcp.sendall(b"get u_set\r\n")
check("udp_set_visible_over_tcp", tcp.recv(100) == b"VALUE u_set 0 2\r\nhi\r\nEND\r\n")
u.sendto(b"\x00\x01", ("127.0.0.1", port))           # shorter than a header
u.sendto(struct.pack(">HHHH", 9, 0, 2, 0) + b"get u_small\r\n", ("127.0.0.1", port))  # multi-datagram request
body, _ = ask(6, b"version\r\n")
check("udp_bad_frames_dropped_server_goes_on", body.startswith(b"VERSION "), body)
PY
)
printf '%s\n' "$out" | grep -E '^(ok|not ok) ' | while read -r line; do echo "$line"; done
passed=$(printf '%s\n' "$out" | grep -c '^ok - ')
failed=$(printf '%s\n' "$out" | grep -c '^not ok - ')
[ "$passed" -ge 10 ] || { failed=$((failed + 1)); printf '%s\n' "$out" | tail -5 >&2; }

kill -TERM $spid
rc=124
for _ in $(seq 1 100); do
	if ! kill -0 $spid 2>/dev/null || [ "$(awk '{print $3}' /proc/$spid/stat 2>/dev/null)" = Z ]; then
		wait $spid; rc=$?; break
	fi
	sleep 0.05
done
if [ $rc -eq 0 ]; then ok udp_server_sigterm_exit_0; else bad udp_server_sigterm_exit_0 "exit $rc"; fi
finish test_memcached_udp
