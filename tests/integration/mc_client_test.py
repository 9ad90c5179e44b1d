#!/usr/bin/python3
"""mc_client_test.py HOST PORT SHARDS [options] - real-client tests of a
memcached 1.6 compatible server (skerry-memcached, or stock memcached for
validating the expectations).

Prints one "ok - NAME" / "not ok - NAME" line per case on stdout (details of
a failure on stderr) and "# mc_client_test: N passed, M failed" last; exits
1 on any failure.  Expectations are what stock memcached 1.6.18 answers;
where stock depends on its slab allocator only what any correct LRU cache
does is asserted.

Groups (--group):
  main     every text and meta command, bad input, 1000 connections; run on
           a FRESH server started with -m MEM -c CONNS (the stats case
           expects curr_items 0 at the start)
  limit    connection limit; server started with -c LIMIT
  evict    eviction; fresh server started with -m MEM (small)
  sigterm  50 clients connected, then SIGTERM to --pid; every connection
           must be closed by the server within 5 s
Needs pymemcache (Debian python3-pymemcache); run with /usr/bin/python3.
"""
import argparse
import os
import random
import re
import selectors
import signal
import socket
import struct
import sys
import time
import traceback

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

HOST = "127.0.0.1"
PORT = 11211
ARGS = None
TESTS = []
RUN_ID = "%x" % random.getrandbits(32)	# keeps keys unique per run


def test(group="main", timeout=20):
    def deco(f):
        TESTS.append((group, f.__name__[len("test_"):], f, timeout))
        return f
    return deco


class Fail(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, short(got), short(want)))


def short(v):
    if isinstance(v, (bytes, str)) and len(v) > 300:
        return v[:150] + (b"..." if isinstance(v, bytes) else "...") + v[-100:]
    return v


def K(name):
    """A key unique to this run."""
    return "%s_%s" % (name, RUN_ID)


def client(**kw):
    kw.setdefault("connect_timeout", 3)
    kw.setdefault("timeout", 5)
    kw.setdefault("default_noreply", False)
    return Client((HOST, PORT), **kw)


class Raw:
    """A raw socket to the server with a read buffer."""

    def __init__(self, timeout=3.0, port=None):
        self.s = socket.create_connection((HOST, port or PORT), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        try:
            d = self.s.recv(1 << 20)
        except socket.timeout:
            raise Fail("timed out waiting for the server; received so far %r" % (short(self.buf),)) from None
        if not d:
            raise EOFError("server closed the connection; had %r" % short(self.buf))
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l + b"\r\n"

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def until(self, end):
        while end not in self.buf:
            self._fill()
        i = self.buf.index(end) + len(end)
        d, self.buf = self.buf[:i], self.buf[i:]
        return d

    def rt(self, req):
        """Send req then "version"; return everything answered before the
        VERSION line (so nothing unexpected can hide in the buffer)."""
        self.send(req + b"version\r\n")
        deadline = time.time() + 5
        while True:
            m = re.search(rb"VERSION [^\r\n]*\r\n$", self.buf)
            if m:
                d = self.buf[:m.start()]
                self.buf = b""
                return d
            if time.time() > deadline:
                raise Fail("no VERSION sync after %r; had %r" % (short(req), short(self.buf)))
            self._fill()

    def closed_within(self, secs):
        """True when the server closes (EOF or reset) within secs; any bytes
        received before are kept in self.buf."""
        end = time.time() + secs
        while time.time() < end:
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not d:
                return True
            self.buf += d
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def alive(what="server"):
    """Another (new) client is still served: set + get round trip."""
    r = Raw()
    k = K("alive%d" % random.getrandbits(20)).encode()
    got = r.rt(b"set " + k + b" 0 0 2\r\nok\r\nget " + k + b"\r\n")
    r.close()
    eq(got, b"STORED\r\nVALUE " + k + b" 0 2\r\nok\r\nEND\r\n", "%s still serves a new client" % what)


def stats(sub=None, port=None):
    """stats [sub] over a raw socket: dict of name -> value (str)."""
    r = Raw(port=port)
    r.send(b"stats" + (b" " + sub.encode() if sub else b"") + b"\r\n")
    out = {}
    while True:
        l = r.line()
        if l == b"END\r\n":
            break
        m = re.match(rb"STAT (\S+) ([^\r\n]*)\r\n$", l)
        check(m, "bad stats line %r" % l)
        out[m.group(1).decode()] = m.group(2).decode()
    r.close()
    return out


def istat(st, name):
    check(name in st, "stats has no %s" % name)
    return int(st[name])


# --------------------------------------------------------------- stats first

@test()
def test_stats_fields_fresh_server():
    st = stats()
    for f in ("pid", "uptime", "time", "version", "curr_connections",
              "total_connections", "cmd_get", "cmd_set", "cmd_flush",
              "cmd_touch", "get_hits", "get_misses", "get_expired",
              "delete_misses", "delete_hits", "incr_misses", "incr_hits",
              "decr_misses", "decr_hits", "cas_misses", "cas_hits",
              "cas_badval", "touch_hits", "touch_misses", "bytes_read",
              "bytes_written", "limit_maxbytes", "threads", "curr_items",
              "total_items", "bytes", "evictions", "reclaimed",
              "max_connections", "rejected_connections"):
        check(f in st, "stats lacks %s" % f)
    if ARGS.pid:
        eq(istat(st, "pid"), ARGS.pid, "stats pid")
    check(abs(istat(st, "time") - time.time()) <= 2, "stats time %s vs now %d" % (st["time"], time.time()))
    check(0 <= istat(st, "uptime") < 600, "uptime %s" % st["uptime"])
    eq(istat(st, "threads"), ARGS.shards, "stats threads (= -t)")
    if ARGS.mem:
        eq(istat(st, "limit_maxbytes"), ARGS.mem << 20, "limit_maxbytes (-m)")
    if ARGS.conns:
        eq(istat(st, "max_connections"), ARGS.conns, "max_connections (-c)")
    eq(istat(st, "curr_items"), 0, "curr_items on a fresh server")
    eq(istat(st, "bytes"), 0, "bytes on a fresh server")
    check(istat(st, "curr_connections") >= 1, "curr_connections >= 1")
    v = client().version()
    eq(st["version"].encode(), v, "stats version vs version command")


@test()
def test_stats_curr_items_counts_1000_keys():
    c = client()
    st0 = stats()
    keys = [K("ci%d" % i) for i in range(1000)]
    for i, k in enumerate(keys):
        check(c.set(k, b"v%d" % i), "set %s" % k)
    st = stats()
    eq(istat(st, "curr_items"), istat(st0, "curr_items") + 1000, "curr_items after 1000 sets")
    eq(istat(st, "total_items"), istat(st0, "total_items") + 1000, "total_items after 1000 sets")
    check(istat(st, "bytes") > istat(st0, "bytes") + 1000 * 3, "bytes grows")
    got = c.get_many(keys)
    eq(len(got), 1000, "get_many of the 1000 keys finds all")
    for i, k in enumerate(keys):
        eq(got[k], b"v%d" % i, "value of %s" % k)
    # overwrite: curr_items unchanged
    for k in keys[:100]:
        c.set(k, b"again")
    eq(istat(stats(), "curr_items"), istat(st0, "curr_items") + 1000, "curr_items after overwrites")
    for k in keys[:300]:
        check(c.delete(k), "delete %s" % k)
    eq(istat(stats(), "curr_items"), istat(st0, "curr_items") + 700, "curr_items after 300 deletes")
    c.delete_many(keys[300:])
    st = stats()
    eq(istat(st, "curr_items"), istat(st0, "curr_items"), "curr_items after deleting all")
    eq(istat(st, "bytes"), istat(st0, "bytes"), "bytes after deleting all")


@test()
def test_stats_counters_move_correctly():
    c = client()
    a, b, miss = K("sc_a"), K("sc_b"), K("sc_miss")
    st0 = stats()
    c.set(a, b"1")
    c.set(b, b"2")
    c.add(a, b"x")			# fails but is a set command
    c.get(a)				# hit
    c.get(miss)				# miss
    c.get_many([a, b, miss, K("sc_miss2")])	# 2 hits 2 misses
    c.incr(a, 1)			# hit
    c.incr(miss, 1)			# miss
    c.decr(a, 1)			# hit
    c.decr(miss, 1)			# miss
    c.touch(a, 100)			# hit
    c.touch(miss, 100)		# miss
    c.delete(b)				# hit
    c.delete(miss)			# miss
    _, cas = c.gets(a)		# hit
    c.cas(a, b"5", cas)		# cas hit
    c.cas(a, b"6", cas)		# badval
    c.cas(miss, b"7", 1)		# cas miss
    st = stats()
    d = lambda f: istat(st, f) - istat(st0, f)
    eq(d("get_hits"), 4, "get_hits delta")
    eq(d("get_misses"), 3, "get_misses delta")
    eq(d("cmd_get"), 7, "cmd_get delta (per key)")
    eq(d("cmd_set"), 6, "cmd_set delta (set,set,add,cas x3)")
    eq(d("incr_hits"), 1, "incr_hits")
    eq(d("incr_misses"), 1, "incr_misses")
    eq(d("decr_hits"), 1, "decr_hits")
    eq(d("decr_misses"), 1, "decr_misses")
    eq(d("touch_hits"), 1, "touch_hits")
    eq(d("touch_misses"), 1, "touch_misses")
    eq(d("cmd_touch"), 2, "cmd_touch")
    eq(d("delete_hits"), 1, "delete_hits")
    eq(d("delete_misses"), 1, "delete_misses")
    eq(d("cas_hits"), 1, "cas_hits")
    eq(d("cas_badval"), 1, "cas_badval")
    eq(d("cas_misses"), 1, "cas_misses")
    eq(d("curr_items"), 1, "curr_items (a stays, b deleted)")
    check(d("bytes_read") > 0 and d("bytes_written") > 0, "bytes_read/bytes_written move")
    check(istat(st, "total_connections") >= istat(st0, "total_connections") + 1, "total_connections grows")


def stats_raw(sub):
    r = Raw()
    r.send(b"stats " + sub + b"\r\n")
    out = r.until(b"END\r\n")
    r.close()
    check(out.endswith(b"END\r\n"), "stats %s ends with END" % sub)
    lines = out.split(b"\r\n")[:-2]
    for l in lines:
        check(re.match(rb"STAT \S+ \S", l), "stats %s line %r" % (sub, l))
    return {l.split(b" ")[1].decode(): l.split(b" ", 2)[2].decode() for l in lines}


@test()
def test_stats_settings_items_slabs():
    c = client()
    c.set(K("ss1"), b"x" * 100)
    c.set(K("ss2"), b"y" * 5000)
    s = stats_raw(b"settings")
    eq(int(s.get("tcpport", -1)), PORT, "stats settings tcpport")
    check("maxbytes" in s and "maxconns" in s and "item_size_max" in s, "settings has maxbytes/maxconns/item_size_max: %r" % list(s)[:20])
    if ARGS.mem:
        eq(int(s["maxbytes"]), ARGS.mem << 20, "settings maxbytes")
    if ARGS.conns:
        eq(int(s["maxconns"]), ARGS.conns, "settings maxconns")
    eq(int(s["item_size_max"]), 1 << 20, "settings item_size_max (default -I 1m)")
    eq(s.get("evictions"), "on", "settings evictions")
    eq(s.get("cas_enabled"), "yes", "settings cas_enabled")
    it = stats_raw(b"items")
    nums = [int(v) for k, v in it.items() if re.match(r"items:\d+:number$", k)]
    check(nums, "stats items has items:<class>:number lines")
    eq(sum(nums), istat(stats(), "curr_items"), "sum of items:N:number == curr_items")
    sl = stats_raw(b"slabs")
    check("active_slabs" in sl and "total_malloced" in sl, "stats slabs has active_slabs and total_malloced")
    check(int(sl["active_slabs"]) >= 1, "active_slabs >= 1")
    r = Raw()
    eq(r.rt(b"stats reset\r\n"), b"RESET\r\n", "stats reset")
    eq(r.rt(b"stats nosuchgroup\r\n"), b"ERROR\r\n", "stats of an unknown group")
    r.close()
    st = stats()
    eq(istat(st, "get_hits"), 0, "get_hits after stats reset")
    eq(istat(st, "cmd_get"), 0, "cmd_get after stats reset")
    check(istat(st, "curr_items") >= 2, "stats reset keeps curr_items")


# --------------------------------------------------------------- commands

@test()
def test_set_get_roundtrip_sizes_and_binary_values():
    c = client()
    rnd = random.Random(1)
    vals = {}
    for i, n in enumerate([0, 1, 2, 100, 1000, 4095, 4096, 65536, 100000, 500000, 1000000]):
        vals[K("sz%d" % i)] = bytes(rnd.getrandbits(8) for _ in range(min(n, 4096))) * (n // 4096) + bytes(n % 4096)
    vals[K("crlf")] = b"\r\nEND\r\nVALUE x 0 1\r\n\r\n"
    vals[K("nul")] = b"\x00\xff" * 50
    for k, v in vals.items():
        check(c.set(k, v), "set %s (%d bytes)" % (k, len(v)))
    for k, v in vals.items():
        eq(c.get(k), v, "get %s (%d bytes)" % (k, len(v)))
    eq(c.get(K("neverset")), None, "get of a missing key")


@test()
def test_flags_roundtrip():
    c = client()
    r = Raw()
    k = K("flags").encode()
    for fl in (0, 1, 123, 65535, 4294967295):
        eq(r.rt(b"set %s %d 0 2\r\nhi\r\n" % (k, fl)), b"STORED\r\n", "set flags %d" % fl)
        eq(r.rt(b"get %s\r\n" % k), b"VALUE %s %d 2\r\nhi\r\nEND\r\n" % (k, fl), "flags %d back" % fl)
    c.set(K("pflags"), b"v", flags=77)
    eq(r.rt(b"get %s\r\n" % K("pflags").encode()), b"VALUE %s 77 1\r\nv\r\nEND\r\n" % K("pflags").encode(), "pymemcache flags=77")
    r.close()


@test()
def test_keys_250_ok_251_rejected():
    r = Raw()
    k250 = b"k" * 250
    eq(r.rt(b"set " + k250 + b" 0 0 1\r\nx\r\n"), b"STORED\r\n", "set 250-byte key")
    eq(r.rt(b"get " + k250 + b"\r\n"), b"VALUE " + k250 + b" 0 1\r\nx\r\nEND\r\n", "get 250-byte key")
    k251 = b"k" * 251
    eq(r.rt(b"get " + k251 + b"\r\n"), b"CLIENT_ERROR bad command line format\r\n", "get 251-byte key")
    # stock rejects the line and reads the data line as the next command
    eq(r.rt(b"set " + k251 + b" 0 0 1\r\nx\r\n"), b"CLIENT_ERROR bad command line format\r\nERROR\r\n", "set 251-byte key")
    eq(r.rt(b"get " + k251[:250] + b" " + k251 + b"\r\n"), b"CLIENT_ERROR bad command line format\r\n", "multi-get with one 251-byte key")
    r.close()
    alive()


@test()
def test_gets_and_cas():
    c = client()
    k = K("cas")
    c.set(k, b"one")
    v, cas = c.gets(k)
    eq(v, b"one", "gets value")
    check(isinstance(cas, bytes) and cas.isdigit(), "gets cas token %r" % cas)
    eq(c.cas(k, b"two", cas), True, "cas with the current token")
    eq(c.get(k), b"two", "value after cas")
    eq(c.cas(k, b"three", cas), False, "cas with a stale token (EXISTS)")
    eq(c.get(k), b"two", "value after failed cas")
    v2, cas2 = c.gets(k)
    check(cas2 != cas, "cas token changes on update")
    c.set(k, b"four")
    v3, cas3 = c.gets(k)
    check(cas3 != cas2, "cas token changes on set")
    eq(c.cas(K("cas_missing"), b"x", cas3), None, "cas on a missing key (NOT_FOUND)")
    r = Raw()
    kb = k.encode()
    got = r.rt(b"gets %s %s %s\r\n" % (kb, K("cas_missing").encode(), kb))
    m = re.fullmatch(rb"VALUE (\S+) 0 4 (\d+)\r\nfour\r\nVALUE (\S+) 0 4 (\d+)\r\nfour\r\nEND\r\n", got)
    check(m and m.group(1) == kb and m.group(2) == cas3 == m.group(4), "multi gets: %r" % got)
    eq(r.rt(b"cas %s 0 0 1 %s\r\n5\r\n" % (kb, cas3)), b"STORED\r\n", "raw cas")
    eq(r.rt(b"cas %s 0 0 1 abc\r\n" % kb), b"CLIENT_ERROR bad command line format\r\n", "cas with a non-numeric token")
    r.close()


@test()
def test_cas_conflict_between_two_connections():
    c1, c2 = client(), client()
    k = K("cas2")
    c1.set(k, b"base")
    v1, t1 = c1.gets(k)
    v2, t2 = c2.gets(k)
    eq(t1, t2, "both connections see the same cas token")
    eq(c1.cas(k, b"from1", t1), True, "first cas wins (STORED)")
    eq(c2.cas(k, b"from2", t2), False, "second cas loses (EXISTS)")
    eq(c2.get(k), b"from1", "value is the winner's")
    # and on raw sockets: exact answers
    r1, r2 = Raw(), Raw()
    kb = k.encode()
    g1 = r1.rt(b"gets %s\r\n" % kb)
    g2 = r2.rt(b"gets %s\r\n" % kb)
    eq(g1, g2, "gets on two connections")
    tok = re.search(rb" (\d+)\r\n", g1).group(1)
    eq(r1.rt(b"cas %s 0 0 1 %s\r\nA\r\n" % (kb, tok)), b"STORED\r\n", "raw cas 1")
    eq(r2.rt(b"cas %s 0 0 1 %s\r\nB\r\n" % (kb, tok)), b"EXISTS\r\n", "raw cas 2")
    r1.close()
    r2.close()


@test()
def test_add_replace_append_prepend():
    c = client()
    k, m = K("arap"), K("arap_missing")
    eq(c.add(k, b"a"), True, "add new")
    eq(c.add(k, b"b"), False, "add existing (NOT_STORED)")
    eq(c.get(k), b"a", "add did not overwrite")
    eq(c.replace(k, b"r"), True, "replace existing")
    eq(c.replace(m, b"r"), False, "replace missing (NOT_STORED)")
    eq(c.get(m), None, "replace did not create")
    eq(c.append(k, b"_end"), True, "append")
    eq(c.prepend(k, b"start_"), True, "prepend")
    eq(c.get(k), b"start_r_end", "after append+prepend")
    eq(c.append(m, b"x"), False, "append missing (NOT_STORED)")
    eq(c.prepend(m, b"x"), False, "prepend missing (NOT_STORED)")
    eq(c.get(m), None, "append/prepend did not create")
    r = Raw()
    kb = k.encode()
    eq(r.rt(b"set %s 42 0 1\r\nx\r\nappend %s 0 0 1\r\ny\r\nprepend %s 0 0 1\r\nw\r\nget %s\r\n" % (kb, kb, kb, kb)),
       b"STORED\r\nSTORED\r\nSTORED\r\nVALUE %s 42 3\r\nwxy\r\nEND\r\n" % kb, "append/prepend keep the flags")
    eq(r.rt(b"add %s 0 0 1\r\nz\r\nreplace %s 0 0 1\r\nz\r\n" % (kb, m.encode())), b"NOT_STORED\r\nNOT_STORED\r\n", "raw add/replace failing")
    # append growing to just under the limit, then over it
    big = b"b" * 600000
    eq(c.set(k, big), True, "set 600 kB")
    try:
        res = c.append(k, big)
    except MemcacheServerError as e:
        res = str(e)
    check(res is not True, "append past -I must fail, got %r" % res)
    eq(c.get(k), big, "value unchanged after a too-large append")
    r.close()


@test()
def test_incr_decr():
    c = client()
    k = K("num")
    c.set(k, b"10")
    eq(c.incr(k, 5), 15, "incr 5")
    eq(c.decr(k, 3), 12, "decr 3")
    eq(c.incr(k, 0), 12, "incr 0")
    eq(c.incr(k, 88), 100, "incr grows the length")
    eq(c.get(k), b"100", "value after growing incr")
    eq(c.decr(k, 1), 99, "decr shrinks the length")
    # stock may keep the old length with space padding (protocol.txt allows it)
    eq(c.get(k).rstrip(b" "), b"99", "value after shrinking decr")
    eq(c.decr(k, 1000), 0, "decr floors at 0")
    eq(c.decr(k, 1), 0, "decr at 0 stays 0")
    c.set(k, b"18446744073709551610")
    eq(c.incr(k, 5), 18446744073709551615, "incr to 2^64-1 (20 digits)")
    eq(c.get(k), b"18446744073709551615", "20-digit value")
    eq(c.incr(k, 1), 0, "incr wraps at 2^64")
    eq(c.incr(k, 18446744073709551615), 18446744073709551615, "incr by 2^64-1")
    eq(c.incr(k, 3), 2, "incr wraps again")
    c.set(k, b"5")
    eq(c.incr(k, 18446744073709551615), 4, "5 + (2^64-1) wraps to 4")
    c.set(k, b"18446744073709551615")
    eq(c.decr(k, 18446744073709551615), 0, "decr by 2^64-1")
    eq(c.incr(K("num_missing"), 1), None, "incr missing (NOT_FOUND)")
    eq(c.decr(K("num_missing"), 1), None, "decr missing (NOT_FOUND)")
    eq(c.get(K("num_missing")), None, "incr does not create")
    r = Raw()
    kb = k.encode()
    eq(r.rt(b"set %s 7 0 1\r\n9\r\nincr %s 1\r\nget %s\r\n" % (kb, kb, kb)), b"STORED\r\n10\r\nVALUE %s 7 2\r\n10\r\nEND\r\n" % kb, "incr keeps flags")
    eq(r.rt(b"incr %s 18446744073709551616\r\n" % kb), b"CLIENT_ERROR invalid numeric delta argument\r\n", "delta 2^64")
    eq(r.rt(b"incr %s abc\r\n" % kb), b"CLIENT_ERROR invalid numeric delta argument\r\n", "non-numeric delta")
    eq(r.rt(b"decr %s -1\r\n" % kb), b"CLIENT_ERROR invalid numeric delta argument\r\n", "negative delta")
    eq(r.rt(b"set %s 0 0 20\r\n18446744073709551616\r\nincr %s 1\r\n" % (kb, kb)),
       b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "incr on 2^64 (not a 64-bit number)")
    r.close()


@test()
def test_incr_non_numeric_error():
    r = Raw()
    k = K("nonnum").encode()
    eq(r.rt(b"set %s 0 0 3\r\nabc\r\nincr %s 1\r\n" % (k, k)),
       b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "incr on 'abc'")
    eq(r.rt(b"decr %s 1\r\n" % k), b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "decr on 'abc'")
    eq(r.rt(b"set %s 0 0 3\r\n12a\r\nincr %s 1\r\n" % (k, k)),
       b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "incr on '12a'")
    eq(r.rt(b"get %s\r\n" % k), b"VALUE %s 0 3\r\n12a\r\nEND\r\n" % k, "value unchanged")
    c = client()
    try:
        c.incr(K("nonnum"), 1)
        raise Fail("pymemcache incr on non-numeric did not raise")
    except MemcacheClientError as e:
        check("non-numeric" in str(e), "pymemcache error text %r" % str(e))
    r.close()
    alive()


@test()
def test_delete():
    c = client()
    k = K("del")
    c.set(k, b"x")
    eq(c.delete(k), True, "delete existing (DELETED)")
    eq(c.get(k), None, "gone after delete")
    eq(c.delete(k), False, "delete missing (NOT_FOUND)")
    r = Raw()
    kb = k.encode()
    eq(r.rt(b"set %s 0 0 1\r\nx\r\ndelete %s\r\ndelete %s\r\n" % (kb, kb, kb)), b"STORED\r\nDELETED\r\nNOT_FOUND\r\n", "raw delete")
    eq(r.rt(b"delete %s 0\r\n" % kb), b"NOT_FOUND\r\n", "delete with legacy time 0")
    eq(r.rt(b"delete %s 5\r\n" % kb), b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n", "delete with a time")
    r.close()


@test()
def test_touch_gat_gats():
    c = client()
    k, m = K("touch"), K("touch_missing")
    c.set(k, b"tv", expire=100)
    eq(c.touch(k, 1000), True, "touch existing (TOUCHED)")
    eq(c.touch(m, 1000), False, "touch missing (NOT_FOUND)")
    r = Raw()
    kb, mb = k.encode(), m.encode()
    got = r.rt(b"mg %s t\r\n" % kb)
    m_ = re.fullmatch(rb"HD t(\d+)\r\n", got)
    check(m_ and 998 <= int(m_.group(1)) <= 1000, "TTL after touch 1000: %r" % got)
    eq(r.rt(b"gat 500 %s\r\n" % kb), b"VALUE %s 0 2\r\ntv\r\nEND\r\n" % kb, "gat hit")
    got = r.rt(b"mg %s t\r\n" % kb)
    m_ = re.fullmatch(rb"HD t(\d+)\r\n", got)
    check(m_ and 498 <= int(m_.group(1)) <= 500, "TTL after gat 500: %r" % got)
    got = r.rt(b"gats 0 %s %s %s\r\n" % (kb, mb, kb))
    m_ = re.fullmatch(rb"VALUE (\S+) 0 2 (\d+)\r\ntv\r\nVALUE (\S+) 0 2 (\d+)\r\ntv\r\nEND\r\n", got)
    check(m_ and m_.group(1) == kb and m_.group(2) == m_.group(4), "gats with a miss in the middle: %r" % got)
    _, cas = c.gets(k)
    eq(m_.group(2), cas, "gats cas == gets cas")
    eq(r.rt(b"mg %s t\r\n" % kb), b"HD t-1\r\n", "gats 0 removes the TTL")
    eq(r.rt(b"gat 10 %s\r\n" % mb), b"END\r\n", "gat miss")
    eq(r.rt(b"gat abc %s\r\n" % kb), b"CLIENT_ERROR invalid exptime argument\r\n", "gat with a bad exptime")
    eq(r.rt(b"touch %s abc\r\n" % kb), b"CLIENT_ERROR invalid exptime argument\r\n", "touch with a bad exptime")
    eq(r.rt(b"touch %s 0\r\ntouch %s 0\r\n" % (kb, mb)), b"TOUCHED\r\nNOT_FOUND\r\n", "raw touch")
    r.close()


@test()
def test_multiget_100_keys_in_order():
    c = client()
    keys = [K("mg%03d" % i).encode() for i in range(100)]
    for i, k in enumerate(keys):
        if i % 7 != 3:	# some misses
            c.set(k.decode(), b"val%d" % i, flags=i)
    order = list(range(100))
    random.Random(5).shuffle(order)
    want = b"".join(b"VALUE %s %d %d\r\nval%d\r\n" % (keys[i], i, len(b"val%d" % i), i) for i in order if i % 7 != 3) + b"END\r\n"
    r = Raw()
    got = r.rt(b"get " + b" ".join(keys[i] for i in order) + b"\r\n")
    eq(got, want, "get of 100 keys answered in request order")
    # the same keys as gets: same order, cas tokens present
    got = r.rt(b"gets " + b" ".join(keys[i] for i in order) + b"\r\n")
    names = re.findall(rb"VALUE (\S+) \d+ \d+ \d+\r\n", got)
    eq(names, [keys[i] for i in order if i % 7 != 3], "gets of 100 keys in order")
    # duplicate keys are answered each time
    eq(r.rt(b"get %s %s %s\r\n" % (keys[0], keys[0], keys[0])), (b"VALUE %s 0 4\r\nval0\r\n" % keys[0]) * 3 + b"END\r\n", "duplicate keys")
    # a long multi-get line (longer than any read buffer) sent in small pieces
    long_keys = [K("lk%04d" % i).encode() + b"_" * 150 for i in range(100)]
    for i, k in enumerate(long_keys[::2]):
        c.set(k.decode(), b"L")
    line = b"get " + b" ".join(long_keys) + b"\r\n"
    check(len(line) > 16000, "long line")
    for i in range(0, len(line), 1000):
        r.send(line[i:i + 1000])
        time.sleep(0.002)
    got = r.until(b"END\r\n")
    eq(got, b"".join(b"VALUE %s 0 1\r\nL\r\n" % k for k in long_keys[::2]) + b"END\r\n", "16 kB multi-get line in 1 kB pieces")
    got = c.get_many([k.decode() for k in keys])
    eq(len(got), len([i for i in range(100) if i % 7 != 3]), "pymemcache get_many count")
    r.close()


@test(timeout=30)
def test_1000_keys_spread_over_shards():
    c = client()
    rnd = random.Random(9)
    data = {K("spread%d" % i): bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 300))) for i in range(1000)}
    c.set_many(data)
    got = c.get_many(list(data))
    eq(len(got), 1000, "all 1000 keys found")
    bad = [k for k in data if got.get(k) != data[k]]
    eq(bad, [], "keys with wrong values")
    for i, k in enumerate(list(data)[:200]):
        eq(c.set(k, b"%d" % i), True, "set as a number")
    for i, k in enumerate(list(data)[:200]):
        eq(c.incr(k, 1000), i + 1000, "incr on key %d" % i)
    eq(c.delete_many(list(data)), True, "delete_many")
    eq(c.get_many(list(data)), {}, "all gone")


@test()
def test_pipelined_commands():
    r = Raw()
    k = K("pipe").encode()
    req = b""
    want = b""
    for i in range(200):
        req += b"set %s%d 0 0 %d\r\n%d\r\n" % (k, i, len(b"%d" % i), i)
        want += b"STORED\r\n"
        req += b"incr %s%d 1\r\n" % (k, i)
        want += b"%d\r\n" % (i + 1)
        req += b"get %s%d\r\n" % (k, i)
        v = b"%d" % (i + 1)
        vl = len(b"%d" % i)
        v = v + b" " * (vl - len(v)) if len(v) < vl else v
        want += b"VALUE %s%d 0 %d\r\n" % (k, i, len(v)) + v + b"\r\nEND\r\n"
        req += b"delete %s%d\r\n" % (k, i)
        want += b"DELETED\r\n"
    got = r.rt(req)
    # incr of 9 -> 10 etc grows; lengths computed above only for same length
    got_n = re.sub(rb"VALUE (\S+) 0 \d+\r\n(\d+) *\r\n", lambda m: b"V " + m.group(1) + b" " + m.group(2) + b"\r\n", got)
    want_n = re.sub(rb"VALUE (\S+) 0 \d+\r\n(\d+) *\r\n", lambda m: b"V " + m.group(1) + b" " + m.group(2) + b"\r\n", want)
    eq(got_n, want_n, "800 pipelined commands in one write")
    r.close()


@test()
def test_version_and_verbosity():
    r = Raw()
    r.send(b"version\r\n")
    v = r.line()
    check(re.fullmatch(rb"VERSION \d+\.\d+\.\d+\S*\r\n", v), "version line %r" % v)
    eq(r.rt(b"verbosity 1\r\n"), b"OK\r\n", "verbosity 1")
    eq(r.rt(b"verbosity 0\r\n"), b"OK\r\n", "verbosity 0")
    eq(r.rt(b"verbosity 0 noreply\r\n"), b"", "verbosity noreply")
    eq(r.rt(b"verbosity\r\n"), b"ERROR\r\n", "verbosity without a level")
    eq(b"VERSION " + client().version() + b"\r\n", v, "pymemcache version")
    r.close()


@test()
def test_noreply_variants():
    r = Raw()
    k = K("nr").encode()
    batch = (b"set %s_a 0 0 1 noreply\r\n1\r\n" % k +
             b"add %s_a 0 0 1 noreply\r\n2\r\n" % k +	# fails silently
             b"add %s_b 0 0 1 noreply\r\nb\r\n" % k +
             b"replace %s_b 0 0 2 noreply\r\nbb\r\n" % k +
             b"replace %s_zz 0 0 1 noreply\r\nz\r\n" % k +	# fails silently
             b"append %s_b 0 0 1 noreply\r\n>\r\n" % k +
             b"prepend %s_b 0 0 1 noreply\r\n<\r\n" % k +
             b"incr %s_a 10 noreply\r\n" % k +
             b"decr %s_a 1 noreply\r\n" % k +
             b"incr %s_zz 1 noreply\r\n" % k +		# miss, silent
             b"set %s_c 0 0 1 noreply\r\nc\r\n" % k +
             b"delete %s_c noreply\r\n" % k +
             b"delete %s_c noreply\r\n" % k +		# miss, silent
             b"touch %s_a 1000 noreply\r\n" % k +
             b"touch %s_zz 1000 noreply\r\n" % k +
             b"verbosity 0 noreply\r\n")
    eq(r.rt(batch), b"", "no answers to noreply commands")
    got = r.rt(b"get %s_a %s_b %s_c %s_zz\r\n" % (k, k, k, k))
    eq(got.replace(b"10 ", b"10"), b"VALUE %s_a 0 2\r\n10\r\nVALUE %s_b 0 4\r\n<bb>\r\nEND\r\n" % (k, k), "effects of noreply commands")
    g = r.rt(b"gets %s_a\r\n" % k)
    tok = re.search(rb" (\d+)\r\n", g).group(1)
    eq(r.rt(b"cas %s_a 0 0 1 %s noreply\r\nX\r\ncas %s_a 0 0 1 %s noreply\r\nY\r\n" % (k, tok, k, tok)), b"", "cas noreply (hit and EXISTS)")
    eq(r.rt(b"get %s_a\r\n" % k), b"VALUE %s_a 0 1\r\nX\r\nEND\r\n" % k, "cas noreply effect")
    c = client()
    c.set(K("nr_p"), b"p", noreply=True)
    c.add(K("nr_p"), b"q", noreply=True)
    eq(c.get(K("nr_p")), b"p", "pymemcache noreply set/add")
    r.close()


@test(timeout=30)
def test_expiry():
    c = client()
    r = Raw()
    now = int(time.time())
    ks = {n: K("exp_" + n) for n in ("rel2", "abs3", "neg", "past_abs", "over30d", "30d", "never", "touched", "gat")}
    c.set(ks["rel2"], b"x", expire=2)
    c.set(ks["abs3"], b"x", expire=now + 3)
    c.set(ks["neg"], b"x", expire=-1)
    c.set(ks["past_abs"], b"x", expire=now - 10)
    c.set(ks["over30d"], b"x", expire=30 * 86400 + 1)	# absolute 1970 -> already expired
    c.set(ks["30d"], b"x", expire=30 * 86400)		# relative 30 days
    c.set(ks["never"], b"x", expire=0)
    c.set(ks["touched"], b"x", expire=1000)
    c.set(ks["gat"], b"x", expire=1000)
    c.touch(ks["touched"], 2)
    eq(r.rt(b"gat 2 %s\r\n" % ks["gat"].encode()), b"VALUE %s 0 1\r\nx\r\nEND\r\n" % ks["gat"].encode(), "gat 2")
    present = c.get_many(list(ks.values()))
    for n in ("rel2", "abs3", "30d", "never", "touched", "gat"):
        check(ks[n] in present, "%s present right after set" % n)
    for n in ("neg", "past_abs", "over30d"):
        check(ks[n] not in present, "%s (already expired) not returned" % n)
    got = r.rt(b"mg %s t\r\n" % ks["30d"].encode())
    m = re.fullmatch(rb"HD t(\d+)\r\n", got)
    check(m and 30 * 86400 - 2 <= int(m.group(1)) <= 30 * 86400, "TTL of the 30-day item %r" % got)
    got = r.rt(b"mg %s t\r\n" % ks["abs3"].encode())
    m = re.fullmatch(rb"HD t(\d+)\r\n", got)
    check(m and 1 <= int(m.group(1)) <= 4, "TTL of the absolute item %r" % got)
    # expired-at-once stores still count as stored
    time.sleep(max(0, now + 4.5 - time.time()))
    gone = c.get_many(list(ks.values()))
    for n in ("rel2", "abs3", "touched", "gat", "neg", "past_abs", "over30d"):
        check(ks[n] not in gone, "%s expired after its TTL" % n)
    for n in ("30d", "never"):
        check(ks[n] in gone, "%s still present" % n)
    eq(c.add(ks["rel2"], b"new"), True, "add over an expired item")
    eq(c.replace(ks["abs3"], b"new"), False, "replace on an expired item")
    eq(c.incr(ks["gat"], 1), None, "incr on an expired item")
    r.close()


@test(timeout=30)
def test_flush_all_immediate_delayed_noreply():
    c = client()
    r = Raw()
    k = K("fl")
    c.set(k + "1", b"1")
    c.set(k + "2", b"2")
    eq(c.flush_all(), True, "flush_all")
    eq(c.get_many([k + "1", k + "2"]), {}, "flush_all removes everything")
    eq(c.add(k + "1", b"again"), True, "add after flush_all")
    eq(c.get(k + "1"), b"again", "stores after flush_all are kept")
    eq(r.rt(b"flush_all noreply\r\n"), b"", "flush_all noreply")
    eq(c.get(k + "1"), None, "flush_all noreply flushed")
    eq(r.rt(b"flush_all 0\r\n"), b"OK\r\n", "flush_all 0")
    eq(r.rt(b"flush_all abc\r\n"), b"CLIENT_ERROR invalid exptime argument\r\n", "flush_all abc")
    c.set(k + "d", b"d")
    t0 = time.time()
    # stock's clock has 1 s steps: "flush_all 3" takes effect 2-3 s later
    eq(r.rt(b"flush_all 3\r\n"), b"OK\r\n", "flush_all 3")
    eq(c.get(k + "d"), b"d", "item still there right after a delayed flush_all")
    time.sleep(max(0, t0 + 4.5 - time.time()))
    eq(c.get(k + "d"), None, "item gone after the flush delay")
    c.set(k + "after", b"a")
    eq(c.get(k + "after"), b"a", "items stored after the delay are kept")
    st = stats()
    check(istat(st, "cmd_flush") >= 5, "cmd_flush counts flushes")
    r.close()


@test()
def test_quit_closes():
    r = Raw()
    r.send(b"quit\r\n")
    check(r.closed_within(2), "quit closes the connection")
    eq(r.buf, b"", "quit answers nothing")
    r.close()


# --------------------------------------------------------------- meta

def meta(r, req):
    """Send a meta request, return (code, set of return flags, data or None)."""
    r.send(req)
    l = r.line()
    parts = l[:-2].split(b" ")
    code = parts[0]
    if code == b"VA":
        n = int(parts[1])
        data = r.exact(n + 2)[:-2]
        return code, set(parts[2:]), data
    return code, set(parts[1:]), None


def cas_of(flags):
    c = [f for f in flags if f.startswith(b"c")]
    check(len(c) == 1 and c[0][1:].isdigit(), "one c<cas> flag in %r" % flags)
    return int(c[0][1:])


@test()
def test_meta_mn_mg():
    r = Raw()
    k = K("meta_mg").encode()
    eq(r.rt(b"mn\r\n"), b"MN\r\n", "mn")
    r.rt(b"set %s 5 0 3\r\nabc\r\n" % k)
    code, fl, data = meta(r, b"mg %s v k f t c s O123\r\n" % k)
    eq((code, data), (b"VA", b"abc"), "mg v hit")
    cas = cas_of(fl)
    eq(fl - {b"c%d" % cas}, {b"k" + k, b"f5", b"t-1", b"s3", b"O123"}, "mg return flags")
    _, gcas = client().gets(k.decode())
    eq(cas, int(gcas), "mg c == gets cas")
    eq(r.rt(b"mg %s\r\n" % k), b"HD\r\n", "mg without flags: HD")
    eq(r.rt(b"mg %s s\r\n" % k), b"HD s3\r\n", "mg s")
    eq(r.rt(b"mg %s k\r\n" % k), b"HD k%s\r\n" % k, "mg k")
    eq(r.rt(b"mg %s_missing v\r\n" % k), b"EN\r\n", "mg miss: EN")
    eq(r.rt(b"mg %s_missing v q\r\nmg %s v q\r\nmn\r\n" % (k, k)), b"VA 3\r\nabc\r\nMN\r\n", "mg q: miss silent, hit answered")
    eq(r.rt(b"mg %s_missing v q k O9\r\nmn\r\n" % k), b"MN\r\n", "mg q miss with k/O silent")
    r.rt(b"set %s 0 100 2\r\nhi\r\n" % k)
    code, fl, data = meta(r, b"mg %s v t f\r\n" % k)
    check(code == b"VA" and data == b"hi" and b"f0" in fl and (b"t100" in fl or b"t99" in fl), "mg t after set with ttl 100: %r %r" % (code, fl))
    eq(r.rt(b"mg\r\n"), b"ERROR\r\n", "mg without a key")
    eq(r.rt(b"mg " + b"a" * 251 + b" v\r\n"), b"CLIENT_ERROR bad command line format\r\n", "mg 251-byte key")
    r.close()


@test()
def test_meta_ms():
    r = Raw()
    k = K("meta_ms").encode()
    eq(r.rt(b"ms %s 3 T100 F7\r\nxyz\r\n" % k), b"HD\r\n", "ms T F")
    code, fl, data = meta(r, b"mg %s v f t\r\n" % k)
    check(code == b"VA" and data == b"xyz" and b"f7" in fl and (b"t100" in fl or b"t99" in fl), "after ms T100 F7: %r %r %r" % (code, fl, data))
    code, fl, _ = meta(r, b"ms %s 3 c\r\nXYZ\r\n" % k)
    eq(code, b"HD", "ms c")
    cas = cas_of(fl)
    code, fl2, _ = meta(r, b"mg %s c\r\n" % k)
    eq(cas_of(fl2), cas, "ms c returns the new cas")
    eq(r.rt(b"ms %s 1 C%d\r\nq\r\n" % (k, cas + 1000)), b"EX\r\n", "ms C mismatch: EX")
    eq(r.rt(b"ms %s 1 C%d\r\nq\r\n" % (k, cas)), b"HD\r\n", "ms C match: HD")
    eq(r.rt(b"mg %s v\r\n" % k), b"VA 1\r\nq\r\n", "value after ms C")
    eq(r.rt(b"ms %s_new 1 C12345\r\nq\r\n" % k), b"NF\r\n", "ms C on a missing key: NF")
    eq(r.rt(b"ms %s 1 ME\r\nz\r\n" % k), b"NS\r\n", "ms ME (add) on existing")
    eq(r.rt(b"ms %s_add 1 ME\r\nz\r\nmg %s_add v\r\n" % (k, k)), b"HD\r\nVA 1\r\nz\r\n", "ms ME (add) on missing")
    eq(r.rt(b"ms %s 1 MA\r\n>\r\nmg %s v\r\n" % (k, k)), b"HD\r\nVA 2\r\nq>\r\n", "ms MA (append)")
    eq(r.rt(b"ms %s 1 MP\r\n<\r\nmg %s v\r\n" % (k, k)), b"HD\r\nVA 3\r\n<q>\r\n", "ms MP (prepend)")
    eq(r.rt(b"ms %s_none 1 MA\r\np\r\nms %s_none 1 MP\r\np\r\n" % (k, k)), b"NS\r\nNS\r\n", "ms MA/MP on missing: NS")
    eq(r.rt(b"ms %s_none 1 MR\r\np\r\n" % k), b"NS\r\n", "ms MR (replace) on missing: NS")
    eq(r.rt(b"ms %s 1 MR\r\nR\r\nmg %s v\r\n" % (k, k)), b"HD\r\nVA 1\r\nR\r\n", "ms MR on existing")
    eq(r.rt(b"ms %s 1 MS\r\nS\r\nmg %s v\r\n" % (k, k)), b"HD\r\nVA 1\r\nS\r\n", "ms MS (set)")
    eq(r.rt(b"ms %s 1 MS q\r\nQ\r\nmn\r\n" % k), b"MN\r\n", "ms q: HD suppressed")
    eq(r.rt(b"ms %s 1 ME q\r\nQ\r\nmn\r\n" % k), b"NS\r\nMN\r\n", "ms q: NS still answered")
    code, fl, _ = meta(r, b"ms %s 2 F1 T0 k O55 c\r\nhi\r\n" % k)
    eq(code, b"HD", "ms with k O c")
    eq(fl - {b"c%d" % cas_of(fl)}, {b"k" + k, b"O55"}, "ms return flags")
    eq(r.rt(b"ms %s 2 T-1\r\nhi\r\nmg %s v\r\n" % (k, k)), b"HD\r\nEN\r\n", "ms T-1: expired at once")
    eq(r.rt(b"ms %s 2 MX\r\nhi\r\n" % k)[:13], b"CLIENT_ERROR ", "ms bad mode: CLIENT_ERROR (data swallowed)")
    eq(r.rt(b"ms %s abc\r\n" % k), b"CLIENT_ERROR bad command line format\r\n", "ms bad length")
    eq(r.rt(b"ms %s 3\r\nabcde\r\n" % k), b"CLIENT_ERROR bad data chunk\r\nERROR\r\n", "ms value longer than declared")
    # I: invalidate -- a cas older than the item's stores the value as stale
    code, fl, _ = meta(r, b"ms %s 3 c\r\nnew\r\n" % k)
    cas = cas_of(fl)
    eq(r.rt(b"ms %s 3 I C%d\r\nold\r\n" % (k, cas - 1)), b"HD\r\n", "ms I with an older cas")
    code, fl, data = meta(r, b"mg %s v\r\n" % k)
    check(code == b"VA" and data == b"old" and b"X" in fl, "ms I stored as stale (X): %r %r %r" % (code, fl, data))
    r.close()
    alive()


@test()
def test_meta_md():
    r = Raw()
    k = K("meta_md").encode()
    r.rt(b"set %s 0 0 3\r\nabc\r\n" % k)
    eq(r.rt(b"md %s\r\nmd %s\r\n" % (k, k)), b"HD\r\nNF\r\n", "md hit then miss")
    r.rt(b"set %s 0 0 3\r\nabc\r\n" % k)
    eq(r.rt(b"md %s q\r\nmn\r\n" % k), b"MN\r\n", "md q hit: silent")
    eq(r.rt(b"mg %s v\r\n" % k), b"EN\r\n", "md q deleted")
    code, fl, _ = meta(r, b"ms %s 3 c\r\nabc\r\n" % k)
    cas = cas_of(fl)
    eq(r.rt(b"md %s C%d\r\n" % (k, cas + 1)), b"EX\r\n", "md C mismatch: EX")
    eq(r.rt(b"md %s k O7\r\n" % k), b"HD k%s O7\r\n" % k, "md k O")
    eq(r.rt(b"md %s k O7\r\n" % k), b"NF k%s O7\r\n" % k, "md k O miss")
    # I: invalidate, keep as stale; first mg wins the recache (W), next sees Z
    r.rt(b"set %s 0 0 3\r\nabc\r\n" % k)
    eq(r.rt(b"md %s I T30\r\n" % k), b"HD\r\n", "md I T30")
    code, fl, data = meta(r, b"mg %s v t\r\n" % k)
    check(code == b"VA" and data == b"abc" and {b"X", b"W"} <= fl and (b"t30" in fl or b"t29" in fl), "first mg after md I: %r %r" % (code, fl))
    code, fl, data = meta(r, b"mg %s v\r\n" % k)
    check(code == b"VA" and {b"X", b"Z"} <= fl and b"W" not in fl, "second mg after md I: %r %r" % (code, fl))
    eq(r.rt(b"md %s_missing I\r\n" % k), b"NF\r\n", "md I miss")
    r.close()


@test()
def test_meta_ma():
    r = Raw()
    k = K("meta_ma").encode()
    eq(r.rt(b"ma %s\r\n" % k), b"NF\r\n", "ma miss")
    eq(r.rt(b"ma %s N0 J10 v\r\n" % k), b"VA 2\r\n10\r\n", "ma N J: created with the initial value")
    eq(r.rt(b"ma %s v\r\n" % k), b"VA 2\r\n11\r\n", "ma default +1")
    eq(r.rt(b"ma %s D5 v\r\n" % k), b"VA 2\r\n16\r\n", "ma D5")
    eq(r.rt(b"ma %s MD D3 v\r\n" % k), b"VA 2\r\n13\r\n", "ma MD (decr)")
    eq(r.rt(b"ma %s M- D100 v\r\n" % k), b"VA 1\r\n0\r\n", "ma M- floors at 0")
    eq(r.rt(b"ma %s MI v t\r\n" % k), b"VA 1 t-1\r\n1\r\n", "ma MI with t")
    code, fl, data = meta(r, b"ma %s M+ v c\r\n" % k)
    eq((code, data), (b"VA", b"2"), "ma M+ with c")
    code2, fl2, _ = meta(r, b"mg %s c\r\n" % k)
    eq(cas_of(fl2), cas_of(fl), "ma c is the item's cas")
    eq(r.rt(b"ma %s\r\n" % k), b"HD\r\n", "ma without v: HD")
    eq(r.rt(b"ma %s q\r\nmn\r\n" % k), b"MN\r\n", "ma q hit: silent")
    code, fl, data = meta(r, b"mg %s v\r\n" % k)
    eq(data.rstrip(b" "), b"4", "value after ma (may be space padded)")
    r.rt(b"set %s 0 0 20\r\n18446744073709551615\r\n" % k)
    eq(r.rt(b"ma %s v\r\n" % k), b"VA 1\r\n0\r\n", "ma wraps at 2^64")
    eq(r.rt(b"ma %s N100 J5 v t\r\n" % (k + b"_viv")), b"VA 1 t100\r\n5\r\n", "ma N100 J5 with t")
    r.rt(b"set %s 0 0 3\r\nabc\r\n" % k)
    eq(r.rt(b"ma %s v\r\n" % k), b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "ma on non-numeric")
    eq(r.rt(b"ma %s MX\r\n" % k)[:13], b"CLIENT_ERROR ", "ma bad mode")
    r.close()
    alive()


@test()
def test_meta_base64_keys_and_vivify():
    import base64
    r = Raw()
    bk = base64.b64encode(b"bin\x00key " + K("b64").encode())
    eq(r.rt(b"ms %s 2 b\r\nhi\r\n" % bk), b"HD\r\n", "ms with a base64 key")
    code, fl, data = meta(r, b"mg %s b v k\r\n" % bk)
    check(code == b"VA" and data == b"hi" and b"k" + bk in fl, "mg b: %r %r" % (fl, data))
    vk = K("viv").encode()
    code, fl, data = meta(r, b"mg %s v N30 c\r\n" % vk)
    check(code == b"VA" and data == b"" and b"W" in fl, "mg N on miss: empty item, W: %r %r" % (code, fl))
    code, fl, data = meta(r, b"mg %s v t\r\n" % vk)
    check(code == b"VA" and b"Z" in fl and b"W" not in fl, "second mg of a vivified item: Z: %r" % (fl,))
    r.close()


# --------------------------------------------------------------- bad input

@test()
def test_bad_unknown_command():
    r = Raw()
    eq(r.rt(b"bogus\r\n"), b"ERROR\r\n", "unknown command")
    eq(r.rt(b"\r\n"), b"ERROR\r\n", "empty line")
    eq(r.rt(b"get\r\n"), b"ERROR\r\n", "get without a key")
    eq(r.rt(b"set k\r\n"), b"ERROR\r\n", "set with too few tokens")
    eq(r.rt(b"incr k\r\n"), b"ERROR\r\n", "incr without a delta")
    eq(r.rt(b"delete\r\n"), b"ERROR\r\n", "delete without a key")
    r.close()
    alive()


@test()
def test_bad_command_line_format():
    r = Raw()
    eq(r.rt(b"set k 0 0 abc\r\n"), b"CLIENT_ERROR bad command line format\r\n", "set with a non-numeric length")
    eq(r.rt(b"set k 0 0 -1\r\n"), b"CLIENT_ERROR bad command line format\r\n", "set with a negative length")
    eq(r.rt(b"set k abc 0 1\r\nx\r\n"), b"CLIENT_ERROR bad command line format\r\nERROR\r\n", "set with non-numeric flags")
    eq(r.rt(b"set k 0 abc 1\r\nx\r\n"), b"CLIENT_ERROR bad command line format\r\nERROR\r\n", "set with a non-numeric exptime")
    r.close()
    alive()


@test()
def test_bad_data_chunk():
    r = Raw()
    k = K("chunk").encode()
    r.rt(b"set %s 0 0 3\r\nold\r\n" % k)
    # stock reads exactly len+2 bytes, rejects them, then parses the rest as
    # the next command ("f\r\n" -> ERROR)
    eq(r.rt(b"set %s 0 0 3\r\nabcdef\r\n" % k), b"CLIENT_ERROR bad data chunk\r\nERROR\r\n", "value longer than declared")
    eq(r.rt(b"get %s\r\n" % k), b"VALUE %s 0 3\r\nold\r\nEND\r\n" % k, "old value kept after a bad data chunk")
    r.close()
    alive()


@test()
def test_bad_object_too_large():
    r = Raw()
    k = K("large").encode()
    r.rt(b"set %s 0 0 3\r\nold\r\n" % k)
    n = 1100000
    eq(r.rt(b"set %s 0 0 %d\r\n" % (k, n) + b"x" * n + b"\r\n"), b"SERVER_ERROR object too large for cache\r\n", "value over -I")
    # stock unlinks the old value of a failed set (no stale data)
    eq(r.rt(b"get %s\r\n" % k), b"END\r\n", "old value removed after a too-large set")
    # with noreply stock answers nothing (and still swallows the data)
    eq(r.rt(b"set %s 0 0 2000000 noreply\r\n" % k + b"y" * 2000000 + b"\r\n"), b"", "too large with noreply")
    eq(r.rt(b"set %s 0 0 1000000\r\n" % k + b"z" * 1000000 + b"\r\n"), b"STORED\r\n", "1,000,000 bytes fit in -I 1m")
    r.close()
    alive()


@test()
def test_bad_client_disconnects_mid_value():
    k = K("partial").encode()
    for i in range(5):
        r = Raw()
        r.send(b"set %s 0 0 100\r\n" % k + b"0123456789")
        time.sleep(0.05)
        r.close()
    r = Raw()
    r.send(b"set %s 0 0 100\r\n" % k + b"0123456789")
    r.s.shutdown(socket.SHUT_WR)	# half-close: EOF mid-value
    check(r.closed_within(3), "server closes a connection that hit EOF mid-value")
    eq(r.buf, b"", "no answer to a truncated set")
    r.close()
    time.sleep(0.2)
    r = Raw()
    eq(r.rt(b"get %s\r\n" % k), b"END\r\n", "truncated set stored nothing")
    r.close()
    alive()


@test()
def test_bad_4096_byte_line_without_newline():
    r = Raw()
    r.send(b"x" * 4096)
    check(r.closed_within(3), "stock closes a 4 kB line without a newline (not a get)")
    eq(r.buf, b"", "no answer before the close")
    r.close()
    r = Raw()
    r.send(b"set k 0 0 1 " + b"9" * 4096)
    check(r.closed_within(3), "stock closes a 4 kB set line without a newline")
    eq(r.buf, b"", "no answer before the close (set)")
    r.close()
    # a long get line is a legal multi-get: answered once the newline comes
    r = Raw()
    r.send(b"get " + b" ".join([K("lg%d" % i).encode() for i in range(400)]))
    time.sleep(0.3)
    eq(r.rt(b"\r\n"), b"END\r\n", "long get line completes")
    r.close()
    alive()


@test()
def test_bad_binary_garbage():
    r = Raw()
    eq(r.rt(b"\xff\xfe\xfd garbage \x00\x01\r\n"), b"ERROR\r\n", "a garbage text line")
    r.close()
    # binary protocol, unknown opcode: binary error, connection kept
    r = Raw()
    hdr = struct.pack(">BBHBBHIIQ", 0x80, 0xEE, 0, 0, 0, 0, 0, 0xDEAD, 0)
    r.send(hdr)
    resp = r.exact(24)
    magic, op, klen, elen, dt, status, blen, opaque, cas = struct.unpack(">BBHBBHIIQ", resp)
    eq((magic, op, status, opaque), (0x81, 0xEE, 0x81, 0xDEAD), "binary unknown opcode: status 0x81")
    body = r.exact(blen)
    eq(body, b"Unknown command", "binary unknown command text")
    r.send(struct.pack(">BBHBBHIIQ", 0x80, 0x0A, 0, 0, 0, 0, 0, 7, 0))	# noop
    eq(struct.unpack(">BBHBBHIIQ", r.exact(24))[:7], (0x81, 0x0A, 0, 0, 0, 0, 0), "binary noop after the error")
    r.close()
    # binary GET without a key: "Invalid arguments" and the connection closed
    r = Raw()
    r.send(struct.pack(">BBHBBHIIQ", 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0))
    resp = r.exact(24)
    magic, op, klen, elen, dt, status, blen, opaque, cas = struct.unpack(">BBHBBHIIQ", resp)
    eq((magic, status), (0x81, 0x04), "binary get without a key: status 0x04")
    eq(r.exact(blen), b"Invalid arguments", "binary invalid arguments text")
    check(r.closed_within(3), "connection closed after invalid binary arguments")
    r.close()
    # random bytes (no 0x80 first, no newline): closed or ignored, never a crash
    rnd = random.Random(42)
    for i in range(5):
        g = bytes(rnd.choice([b for b in range(256) if b not in (10, 13)]) for _ in range(3000))
        g = b"\x01" + g
        r = Raw()
        try:
            r.send(g)
            r.closed_within(0.3)
            for l in r.buf.split(b"\r\n")[:-1]:
                check(re.match(rb"(ERROR|CLIENT_ERROR|SERVER_ERROR)", l), "garbage answered with %r" % l)
        except (ConnectionResetError, BrokenPipeError):
            pass
        r.close()
    alive()


# --------------------------------------------------------------- connections

@test(timeout=60)
def test_1000_concurrent_connections():
    n = 1000
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.time()
    for i in range(n):
        s = socket.create_connection((HOST, PORT), timeout=5)
        s.setblocking(False)
        socks.append(s)
    want = {}
    for i, s in enumerate(socks):
        k = K("cc%d" % i).encode()
        v = b"conn%d" % i
        s.sendall(b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (k, len(v), v, k))
        want[s] = b"STORED\r\nVALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, len(v), v)
        sel.register(s, selectors.EVENT_READ)
    got = {s: b"" for s in socks}
    done = 0
    deadline = time.time() + 30
    while done < n and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                d, got[s] = b"", got[s] + b"<reset>"
            got[s] += d if d else b"<EOF>"
            if not d or len(got[s]) >= len(want[s]):
                sel.unregister(s)
                done += 1
    bad = [i for i, s in enumerate(socks) if got[s] != want[s]]
    check(not bad, "%d of %d connections with a wrong or missing answer, e.g. #%s got %r" % (
        len(bad), n, bad[:1], bad and got[socks[bad[0]]]))
    # every connection has been answered, so the server has accepted all
    st = stats()
    check(istat(st, "curr_connections") >= n, "curr_connections %s with %d open" % (st["curr_connections"], n))
    for s in socks:
        s.close()
    sel.close()
    c = client()
    eq(c.get(K("cc999")), b"conn999", "value written by connection 999")
    check(time.time() - t0 < 40, "1000 connections took %.1f s" % (time.time() - t0))
    alive()


@test(group="limit", timeout=30)
def test_connection_limit():
    limit = ARGS.conns
    extra = 8
    served, rejected, rej_bad = [], 0, []
    for i in range(limit + extra):
        r = Raw()
        try:
            r.send(b"version\r\n")
            l = r.line()
        except (EOFError, ConnectionResetError, socket.timeout) as e:
            rej_bad.append("connection %d: %r" % (i, e))
            r.close()
            continue
        if l.startswith(b"VERSION "):
            served.append(r)
            continue
        if l != b"ERROR Too many open connections\r\n":
            rej_bad.append("connection %d answered %r" % (i, l))
        elif not r.closed_within(2):
            rej_bad.append("connection %d not closed after the error" % i)
        rejected += 1
        r.close()
    eq(rej_bad, [], "over-limit connections get 'ERROR Too many open connections' and are closed")
    check(1 <= len(served) <= limit, "served %d connections with -c %d" % (len(served), limit))
    check(rejected >= extra, "rejected %d (>= %d) connections over -c %d" % (rejected, extra, limit))
    for r in served:	# the served ones still work
        eq(r.rt(b""), b"", "served connection still works")
    for r in served[:4]:
        r.close()
    ok = False
    for _ in range(30):	# a freed slot is usable again (bounded: 3 s)
        time.sleep(0.1)
        r = Raw()
        try:
            r.send(b"version\r\n")
            ok = r.line().startswith(b"VERSION ")
        except (EOFError, ConnectionResetError):
            ok = False
        r.close()
        if ok:
            break
    check(ok, "a new connection is served after others closed")
    for r in served[4:]:
        r.close()
    time.sleep(0.3)
    r = Raw()
    r.send(b"stats\r\n")
    st = dict(re.findall(rb"STAT (\S+) (\S+)\r\n", r.until(b"END\r\n")))
    r.close()
    check(int(st[b"rejected_connections"]) >= rejected, "rejected_connections %s >= %d" % (st[b"rejected_connections"], rejected))


@test(group="evict", timeout=40)
def test_eviction_small_memory():
    c = client()
    st0 = stats()
    limit = istat(st0, "limit_maxbytes")
    if ARGS.mem:
        eq(limit, ARGS.mem << 20, "limit_maxbytes (-m)")
    n, size = 2000, 10000
    val = lambda i: (b"%06d" % i) * (size // 6)
    for i in range(n):
        check(c.set(K("ev%d" % i), val(i)), "set %d must succeed (evicting)" % i)
    keys = [K("ev%d" % i) for i in range(n)]
    got = {}
    for j in range(0, n, 100):
        got.update(c.get_many(keys[j:j + 100]))
    bad = [k for k, v in got.items() if v != val(int(k[2:].split("_")[0]))]
    eq(bad, [], "fetchable items have their own values")
    st = stats()
    check(istat(st, "evictions") > 0, "evictions > 0 after writing %d MB into %d MB" % (n * size >> 20, limit >> 20))
    eq(istat(st, "curr_items"), len(got), "curr_items == items still fetchable")
    eq(istat(st, "total_items"), istat(st0, "total_items") + n, "total_items counts every store")
    check(istat(st, "bytes") <= limit, "bytes %s <= limit_maxbytes %d" % (st["bytes"], limit))
    check(keys[-1] in got, "the most recently written item is present")
    check(len(got) * size >= limit // 4, "the cache holds at least a quarter of -m (%d items of %d bytes, limit %d)" % (len(got), size, limit))
    check(istat(st, "evictions") + len(got) >= n - 5, "evictions %s + present %d account for the %d writes" % (st["evictions"], len(got), n))


@test(group="evict", timeout=40)
def test_lru_keeps_frequently_read_item():
    c = client()
    hot = K("hot")
    c.set(hot, b"H" * 10000)
    n = 2000
    lost = None
    for i in range(n):
        c.set(K("lru%d" % i), b"x" * 10000)
        if i % 10 == 0:
            if c.get(hot) is None:
                lost = i
                break
    check(lost is None, "an item read every 10 writes was evicted after %s writes" % lost)
    check(c.get(K("lru%d" % (n - 1))) is not None, "the last written item is present")
    check(c.get(K("lru0")) is None, "an old never-read item was evicted")


@test(group="sigterm", timeout=30)
def test_sigterm_with_50_clients():
    check(ARGS.pid, "--pid needed")
    socks = []
    for i in range(50):
        r = Raw(timeout=5)
        k = K("st%d" % i).encode()
        eq(r.rt(b"set %s 0 0 1\r\n1\r\nget %s\r\n" % (k, k)), b"STORED\r\nVALUE %s 0 1\r\n1\r\nEND\r\n" % k, "client %d served" % i)
        socks.append(r)
    # half of them idle, half with a partial command in flight
    for r in socks[::2]:
        r.send(b"get partial")
    t0 = time.time()
    os.kill(ARGS.pid, signal.SIGTERM)
    open_ = list(socks)
    while open_ and time.time() - t0 < 5:
        open_ = [r for r in open_ if not r.closed_within(0.05)]
    el = time.time() - t0
    check(not open_, "%d of 50 connections still open %.1f s after SIGTERM" % (len(open_), el))
    for r in socks:
        r.close()


def main():
    global HOST, PORT, ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("shards", type=int)
    ap.add_argument("--group", default="main")
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--mem", type=int, default=0, help="-m the server was started with (MB)")
    ap.add_argument("--conns", type=int, default=0, help="-c the server was started with")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--only", default="", help="run only tests whose name contains this")
    ARGS = ap.parse_args()
    HOST, PORT = ARGS.host, ARGS.port

    def on_alarm(sig, frm):
        raise TimeoutError("test timed out")
    signal.signal(signal.SIGALRM, on_alarm)
    passed = failed = 0
    for group, name, f, tmo in TESTS:
        if group != ARGS.group or (ARGS.only and ARGS.only not in name):
            continue
        t0 = time.time()
        signal.alarm(tmo)
        try:
            f()
            signal.alarm(0)
            print("ok - %s%s" % (ARGS.prefix, name), flush=True)
            passed += 1
        except BaseException as e:
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            print("not ok - %s%s" % (ARGS.prefix, name), flush=True)
            where = traceback.extract_tb(e.__traceback__)
            line = next((fr.lineno for fr in reversed(where) if fr.filename == __file__), "?")
            print("  %s%s: %s: %s (line %s, %.1f s)" % (ARGS.prefix, name, type(e).__name__, e, line, time.time() - t0),
                  file=sys.stderr, flush=True)
            failed += 1
    print("# mc_client_test: %d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
