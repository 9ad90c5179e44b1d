#!/usr/bin/python3
"""httpd_client_test.py HOST PORT SHARDS --root DIR --secret FILE [options] -
real-client tests of an HTTP/1.1 static file server (skerry-httpd).

Prints one "ok - NAME" / "not ok - NAME" line per case on stdout (details of
a failure on stderr) and "# httpd_client_test: N passed, M failed" last;
exits 1 on any failure.

Every response the suite reads from a raw socket goes through h11 (the client
side of h11.Connection): it must parse as a well-formed HTTP/1.x response
(Response, Data..., EndOfMessage), error responses included.

Groups (--group):
  main     http.client, h11, pipelining, requests split at every byte,
           bad input and its exact status codes, path traversal, a 10 MB
           file (fast and slow reader), 1,000 concurrent keep-alive
           connections, header and keep-alive timeouts.  The server was
           started with --root DIR --header-timeout H --keepalive-timeout K
           and a connection limit well over 1,000.
  sigterm  50 clients connected (idle, mid-request, mid-download, silent),
           then SIGTERM to --pid: every connection closed and the process
           exited within 5 s.
DIR is the document root the calling script made (index.html, a.css, b.js,
c.png, dir/index.html, big.bin, "my file.txt", "..hidden", "a..b.txt",
tiny.txt, empty.txt, all with mtime 2020-01-02 03:04:05 UTC); FILE lies outside it.
Needs h11 (Debian python3-h11); run with /usr/bin/python3.
"""
import argparse
import email.utils
import hashlib
import http.client
import os
import re
import selectors
import signal
import socket
import sys
import time
import traceback

import h11

HOST = "127.0.0.1"
PORT = 80
ARGS = None
TESTS = []
FILES = {}	# url path -> expected body
LAST_MODIFIED = "Thu, 02 Jan 2020 03:04:05 GMT"
IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         r"\d{4} \d\d:\d\d:\d\d GMT$")


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


def short(v, n=300):
    if isinstance(v, (bytes, bytearray, str)) and len(v) > n:
        return v[:n // 2] + (b"..." if isinstance(v, (bytes, bytearray)) else "...") + v[-n // 3:]
    return v


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, short(got), short(want)))


# ------------------------------------------------------------------ client

class Resp:
    def __init__(self, ev):
        self.status = ev.status_code
        self.reason = ev.reason
        self.version = ev.http_version
        self.headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in ev.headers]
        self.parts = []
        self.body = b""

    def h(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self):
        return "<%d %r %s body %r>" % (self.status, self.reason, self.headers, short(self.body, 120))


class Conn:
    """A raw client socket whose responses are parsed by h11 (client side).
    Responses are read in request order: response(method) primes h11 with
    the request the next response answers, so pipelined answers parse."""

    def __init__(self, timeout=5.0, rcvbuf=None, port=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        try:
            s.connect((HOST, port or PORT))
        except OSError:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = s
        self.h = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self.raw = bytearray()	# the last bytes received, for messages
        self.cur = None
        self.eof = False
        self.reset = False

    def send(self, data):
        self.s.sendall(data)

    def _note(self, d):
        self.raw += d
        if len(self.raw) > 4096:
            del self.raw[:len(self.raw) - 2048]

    def expect(self, method="GET", version="1.1"):
        """Tell h11 which request the next response answers."""
        if self.h.our_state is h11.DONE and self.h.their_state is h11.DONE:
            self.h.start_next_cycle()
        check(self.h.our_state is h11.IDLE,
              "connection cannot carry another response (server said close: their state %s)" % self.h.their_state)
        # h11 only sends HTTP/1.1: an HTTP/1.0 exchange is primed as a 1.1
        # request with "Connection: close" (h11 then reads a close-delimited
        # or a keep-alive answer alike)
        hdrs = [("Host", "x")] + ([("Connection", "close")] if version == "1.0" else [])
        self.h.send(h11.Request(method=method, target="/", headers=hdrs))
        self.h.send(h11.EndOfMessage())
        self.cur = None

    def pump(self):
        """Process buffered bytes: the finished Resp, or None for more."""
        while True:
            try:
                ev = self.h.next_event()
            except h11.RemoteProtocolError as e:
                if self.eof:
                    raise Fail("connection closed%s before a complete response (h11: %s); received %r" % (
                        " (reset)" if self.reset else "", e, bytes(short(self.raw))))
                raise Fail("malformed HTTP response (h11: %s); received %r" % (e, bytes(short(self.raw))))
            if ev is h11.NEED_DATA:
                return None
            if isinstance(ev, h11.InformationalResponse):
                raise Fail("unexpected 1xx response %r" % ev)
            if isinstance(ev, h11.Response):
                self.cur = Resp(ev)
            elif isinstance(ev, h11.Data):
                self.cur.parts.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                r = self.cur
                r.body = b"".join(r.parts)
                r.parts = None
                self.cur = None
                return r
            elif isinstance(ev, h11.ConnectionClosed) or ev is h11.PAUSED:
                raise Fail("connection closed%s before a complete response; received %r" % (
                    " (reset)" if self.reset else "", bytes(short(self.raw))))

    def feed(self, d):
        if d:
            self._note(d)
        else:
            self.eof = True
        try:
            self.h.receive_data(d)
        except RuntimeError:	# data after EOF
            pass

    def recv_some(self, n=1 << 20):
        if self.eof:
            raise Fail("connection closed before a complete response; received %r" % bytes(short(self.raw)))
        try:
            d = self.s.recv(n)
        except socket.timeout:
            raise Fail("timed out waiting for the server; received %r" % bytes(short(self.raw))) from None
        except ConnectionResetError:
            d = b""
            self.reset = True
        self.feed(d)

    def response(self, method="GET", version="1.1"):
        self.expect(method, version)
        while True:
            r = self.pump()
            if r is not None:
                return r
            self.recv_some()

    @property
    def keepalive(self):
        return self.h.their_state is h11.DONE and self.h.our_state is h11.DONE

    def closed_within(self, secs):
        """True when the server closes (EOF or reset) within secs; bytes
        received meanwhile are fed to h11."""
        if self.eof:
            return True
        end = time.time() + secs
        while time.time() < end:
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                self.reset = True
                self.feed(b"")
                return True
            self.feed(d)
            if not d:
                return True
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def req(path, method="GET", headers=(), version="HTTP/1.1", host=True):
    """A request head as bytes; path and headers may be str or bytes."""
    b = lambda x: x if isinstance(x, bytes) else x.encode()
    out = b(method) + b" " + b(path) + b" " + b(version) + b"\r\n"
    if host:
        out += b"Host: 127.0.0.1\r\n"
    for h in headers:
        out += b(h) + b"\r\n"
    return out + b"\r\n"


def one(data, method="GET", version="1.1", timeout=5.0):
    """Send data on a fresh connection; return (response, conn)."""
    c = Conn(timeout=timeout)
    c.send(data)
    return c.response(method, version), c


def get(path, method="GET", headers=()):
    r, c = one(req(path, method, headers), method)
    c.close()
    return r


def want_file(r, path, what=None):
    what = what or path
    eq(r.status, 200, "%s status" % what)
    eq(r.body, FILES[path], "%s body" % what)
    eq(r.h("content-length"), str(len(FILES[path])), "%s Content-Length" % what)


def alive(what="server"):
    r = get("/tiny.txt")
    check(r.status == 200 and r.body == FILES["/tiny.txt"], "%s no longer serves a new client: %r" % (what, r))


# ------------------------------------------------------------ basic / h11

@test()
def test_get_every_file_exact_body():
    for p in FILES:
        if p not in ("/..hidden", "/a..b.txt"):	# their own cases
            want_file(get(p.replace(" ", "%20")), p)


@test()
def test_index_for_root_and_dir():
    r = get("/")
    eq((r.status, r.body), (200, FILES["/index.html"]), "GET /")
    r = get("/dir/")
    eq((r.status, r.body), (200, FILES["/dir/index.html"]), "GET /dir/")


@test()
def test_empty_file():
    r = get("/empty.txt")
    eq((r.status, r.body, r.h("content-length")), (200, b"", "0"), "GET /empty.txt")


@test()
def test_query_string_ignored():
    want_file(get("/index.html?x=1&y=%2e%2e"), "/index.html", "GET /index.html?x=1")


@test()
def test_percent_decoding():
    want_file(get("/%69ndex%2Ehtml"), "/index.html", "GET /%69ndex%2Ehtml")
    want_file(get("/my%20file.txt"), "/my file.txt", "GET /my%20file.txt")


@test()
def test_dotdot_inside_name_served():
    # "a..b.txt": ".." inside a name is no ".." segment
    want_file(get("/a..b.txt"), "/a..b.txt", "GET /a..b.txt")


@test()
def test_dot_files_are_not_served():
    # Policy (apps/httpd/README.md): dot-files are never loaded, so .git,
    # .env or "..hidden" in a root are not published by accident; the name
    # is not mistaken for traversal either (a..b.txt has its own case).
    r = get("/..hidden")
    check(r.status == 404, "GET /..hidden: status %r, want 404" % r.status)
    check(b"dot-dot-hidden" not in r.body, "GET /..hidden leaked the file")


@test()
def test_content_types():
    pats = {"/index.html": r"^text/html(\s*;.*)?$", "/a.css": r"^text/css(\s*;.*)?$",
            "/b.js": r"^(application|text)/javascript(\s*;.*)?$", "/c.png": r"^image/png$",
            "/dir/index.html": r"^text/html(\s*;.*)?$"}
    for p, pat in pats.items():
        ct = get(p).h("content-type")
        check(ct is not None and re.match(pat, ct, re.I), "%s Content-Type %r, want /%s/" % (p, ct, pat))


@test()
def test_date_server_last_modified_headers():
    for p in ("/index.html", "/c.png", "/tiny.txt"):
        r = get(p)
        d = r.h("date")
        check(d and IMF_FIXDATE.match(d), "%s Date %r is not an IMF-fixdate" % (p, d))
        skew = abs(email.utils.parsedate_to_datetime(d).timestamp() - time.time())
        check(skew < 5, "%s Date %r is %.0f s off" % (p, d, skew))
        check(r.h("server"), "%s has no Server header" % p)
        eq(r.h("last-modified"), LAST_MODIFIED, "%s Last-Modified" % p)


@test()
def test_raw_response_format():
    """Status line, CRLF everywhere, one header per line, HTTP/1.1."""
    c = Conn()
    c.send(req("/tiny.txt", headers=["Connection: close"]))
    data = b""
    while True:
        d = c.s.recv(65536)
        if not d:
            break
        data += d
    c.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    check(sep, "no CRLFCRLF after the head: %r" % short(data))
    check(re.match(rb"HTTP/1\.1 200 [\x21-\x7e][ -~]*$", head.split(b"\r\n")[0]),
          "status line %r" % head.split(b"\r\n")[0])
    check(b"\n" not in head.replace(b"\r\n", b""), "bare LF in the head %r" % head)
    for l in head.split(b"\r\n")[1:]:
        check(re.match(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+: ?[^\r\n]*$", l), "bad header line %r" % l)
    eq(body, FILES["/tiny.txt"], "body after the head, then EOF (Connection: close)")


@test()
def test_head_same_headers_no_body():
    for p in ("/index.html", "/big.bin", "/c.png"):
        c = Conn()
        # HEAD then GET on one connection: a body after the HEAD answer
        # would show up as a broken second response
        c.send(req(p, "HEAD") + req("/tiny.txt"))
        r = c.response("HEAD")
        eq(r.status, 200, "HEAD %s status" % p)
        eq(r.h("content-length"), str(len(FILES[p])), "HEAD %s Content-Length" % p)
        eq(r.body, b"", "HEAD %s body" % p)
        want_file(c.response(), "/tiny.txt", "GET after HEAD %s" % p)
        c.close()


@test()
def test_http_client_keepalive_and_errors():
    hc = http.client.HTTPConnection(HOST, PORT, timeout=5)
    local = None
    for p in ("/index.html", "/a.css", "/c.png", "/dir/", "/nothere", "/index.html"):
        hc.request("GET", p)
        r = hc.getresponse()
        body = r.read()
        eq(r.version, 11, "http.client GET %s version" % p)
        if p == "/nothere":
            eq(r.status, 404, "http.client GET %s status" % p)
        else:
            eq(r.status, 200, "http.client GET %s status" % p)
            eq(body, FILES[p if p != "/dir/" else "/dir/index.html"], "http.client GET %s body" % p)
        check(hc.sock is not None, "server closed the connection after GET %s" % p)
        name = hc.sock.getsockname()
        check(local in (None, name), "http.client had to reconnect before %s (keep-alive not kept)" % p)
        local = name
    hc.request("HEAD", "/a.css")
    r = hc.getresponse()
    eq((r.status, r.read(), r.getheader("Content-Length")), (200, b"", str(len(FILES["/a.css"]))), "http.client HEAD")
    hc.request("POST", "/index.html", body=b"abc")
    r = hc.getresponse()
    r.read()
    eq(r.status, 405, "http.client POST")
    hc.close()


@test()
def test_h11_every_kind_of_response_well_formed():
    """Each answer (200, 304, 404, 405, 400, 413, 414, 431, 501, 505) parses
    with h11 into Response + Data + EndOfMessage."""
    cases = [
        (req("/index.html"), "GET", 200),
        (req("/index.html", headers=["If-Modified-Since: " + LAST_MODIFIED]), "GET", 304),
        (req("/nothere"), "GET", 404),
        (req("/index.html", "DELETE"), "DELETE", 405),
        (b"GARBAGE\r\n\r\n", "GET", 400),
        (req("/index.html", "POST", ["Content-Length: 100000000"]), "POST", 413),
        (req("/" + "a" * 9000), "GET", 414),
        (req("/index.html", headers=["X-Big: " + "b" * 20000]), "GET", 431),
        (req("/index.html", headers=["Transfer-Encoding: gzip"]), "GET", 501),
        (req("/index.html", version="HTTP/2.0"), "GET", 505),
    ]
    errs = []
    for data, m, st in cases:
        try:
            r, c = one(data, m)
            c.close()
            if r.status != st:
                errs.append("%r -> %d, want %d" % (short(data, 60), r.status, st))
        except Fail as e:
            errs.append("%r (want %d): %s" % (short(data, 60), st, e))
    check(not errs, "; ".join(errs))


# ---------------------------------------------------- pipelining / splits

PIPE = [("GET", "/index.html", 200), ("GET", "/a.css", 200), ("HEAD", "/b.js", 200),
        ("GET", "/c.png", 200), ("GET", "/nothere.html", 404), ("GET", "/dir/", 200),
        ("GET", "/tiny.txt", 200), ("HEAD", "/index.html", 200), ("GET", "/my%20file.txt", 200),
        ("GET", "/b.js", 200)]


def check_pipe(c, reqs, what):
    for i, (m, p, st) in enumerate(reqs):
        r = c.response(m)
        eq(r.status, st, "%s: response %d (%s %s) status" % (what, i, m, p))
        if st == 200:
            fp = "/dir/index.html" if p == "/dir/" else p.replace("%20", " ")
            eq(r.body, b"" if m == "HEAD" else FILES[fp], "%s: response %d (%s %s) body" % (what, i, m, p))
            eq(r.h("content-length"), str(len(FILES[fp])), "%s: response %d Content-Length" % (what, i))


@test()
def test_pipelining_10_in_one_write():
    c = Conn()
    c.send(b"".join(req(p, m) for m, p, _ in PIPE))
    check_pipe(c, PIPE, "10 pipelined")
    # and the connection is still usable
    c.send(req("/tiny.txt"))
    want_file(c.response(), "/tiny.txt", "request after the pipeline")
    c.close()


@test()
def test_pipelining_last_says_close():
    c = Conn()
    reqs = PIPE[:5]
    c.send(b"".join(req(p, m) for m, p, _ in reqs[:-1]) + req(reqs[-1][1], headers=["Connection: close"]))
    check_pipe(c, reqs, "pipelined, last with Connection: close")
    check(c.closed_within(2), "connection still open 2 s after answering Connection: close")
    c.close()


@test(timeout=30)
def test_pipelining_200_in_one_write():
    c = Conn()
    reqs = [PIPE[i % len(PIPE)] for i in range(200)]
    c.send(b"".join(req(p, m) for m, p, _ in reqs))
    check_pipe(c, reqs, "200 pipelined")
    c.close()


SPLIT_REQ = req("/tiny.txt", headers=["User-Agent: skerry-split-test/1.0", "Accept: */*"])


@test(timeout=30)
def test_split_at_every_byte_same_connection():
    check(90 <= len(SPLIT_REQ) <= 110, "split request is %d bytes" % len(SPLIT_REQ))
    c = Conn()
    for i in range(1, len(SPLIT_REQ)):
        c.send(SPLIT_REQ[:i])
        time.sleep(0.003)
        c.send(SPLIT_REQ[i:])
        want_file(c.response(), "/tiny.txt", "request split after byte %d (keep-alive)" % i)
    c.close()


@test(timeout=30)
def test_split_at_every_byte_fresh_connections():
    for i in range(1, len(SPLIT_REQ)):
        c = Conn()
        c.send(SPLIT_REQ[:i])
        c.send(SPLIT_REQ[i:])
        want_file(c.response(), "/tiny.txt", "request split after byte %d (fresh connection)" % i)
        c.close()


@test(timeout=40)
def test_pipelined_pair_split_at_every_byte():
    two = SPLIT_REQ + req("/a.css")
    for i in range(1, len(two)):
        c = Conn()
        c.send(two[:i])
        time.sleep(0.001)
        c.send(two[i:])
        want_file(c.response(), "/tiny.txt", "first of two pipelined, split after byte %d" % i)
        want_file(c.response(), "/a.css", "second of two pipelined, split after byte %d" % i)
        c.close()


@test()
def test_one_byte_at_a_time():
    c = Conn()
    for i in range(len(SPLIT_REQ)):
        c.send(SPLIT_REQ[i:i + 1])
        time.sleep(0.005)
    want_file(c.response(), "/tiny.txt", "request sent one byte at a time")
    c.close()


# -------------------------------------------------------- http/1.0, conditionals

@test()
def test_http10_closes_after_response():
    r, c = one(req("/tiny.txt", version="HTTP/1.0", host=False), version="1.0")
    want_file(r, "/tiny.txt", "HTTP/1.0 GET")
    check(r.version in (b"1.0", b"1.1"), "version %r" % r.version)
    check((r.h("connection") or "").lower() != "keep-alive", "HTTP/1.0 without keep-alive answered Connection: keep-alive")
    check(c.closed_within(2), "HTTP/1.0 connection without keep-alive still open 2 s after the response")
    c.close()


@test()
def test_http10_keepalive():
    c = Conn()
    for i in range(3):
        c.send(req("/tiny.txt", version="HTTP/1.0", host=False, headers=["Connection: keep-alive"]))
        r = c.response(version="1.0")
        want_file(r, "/tiny.txt", "HTTP/1.0 keep-alive request %d" % i)
        eq((r.h("connection") or "").lower(), "keep-alive", "Connection header of an HTTP/1.0 keep-alive answer")
        # h11 treats a 1.0 exchange as closing; go on with a fresh parser
        c.h = h11.Connection(h11.CLIENT)
    c.close()


@test()
def test_if_modified_since():
    r = get("/index.html", headers=["If-Modified-Since: " + LAST_MODIFIED])
    eq((r.status, r.body), (304, b""), "If-Modified-Since = Last-Modified")
    r = get("/index.html", headers=["If-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT"])
    eq((r.status, r.body), (200, FILES["/index.html"]), "If-Modified-Since before Last-Modified")
    r = get("/index.html", headers=["If-Modified-Since: not a date"])
    eq((r.status, r.body), (200, FILES["/index.html"]), "If-Modified-Since garbage")
    # a 304 keeps the connection usable
    c = Conn()
    c.send(req("/a.css", headers=["If-Modified-Since: " + LAST_MODIFIED]) + req("/b.js"))
    eq(c.response().status, 304, "304 pipelined")
    want_file(c.response(), "/b.js", "after a 304")
    c.close()


@test()
def test_get_with_small_body_consumed():
    c = Conn()
    c.send(req("/tiny.txt", headers=["Content-Length: 5"]) + b"hello" + req("/a.css"))
    want_file(c.response(), "/tiny.txt", "GET with a 5-byte body")
    want_file(c.response(), "/a.css", "request after a GET with a body (the body was not parsed as a request)")
    c.close()


# ---------------------------------------------------------------- bad input

def status_of(data, method="GET"):
    r, c = one(data, method)
    c.close()
    return r


def want_status(data, st, what, method="GET"):
    r = status_of(data, method)
    eq(r.status, st, "%s: status" % what)
    return r


@test()
def test_400_malformed_request_line():
    for d in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
              b"GET / HTTX/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.x\r\nHost: x\r\n\r\n",
              b"GET\r\nHost: x\r\n\r\n", b"GET /\x01x HTTP/1.1\r\nHost: x\r\n\r\n"):
        want_status(d, 400, "request line %r" % d.split(b"\r\n")[0])
    alive()


@test()
def test_400_header_without_colon():
    want_status(b"GET /index.html HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "header without colon")
    want_status(b"GET /index.html HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n", 400, "header with empty name")


@test()
def test_400_whitespace_before_colon():
    # RFC 9112 5.1: MUST reject with 400
    want_status(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Foo : bar\r\n\r\n", 400, "'X-Foo : bar'")


@test()
def test_400_http11_without_host():
    # RFC 9112 3.2: MUST respond 400 to an HTTP/1.1 request without Host
    want_status(req("/index.html", host=False), 400, "HTTP/1.1 request without Host")


@test()
def test_absolute_form_accepted():
    # RFC 9112 3.2.2: a server MUST accept the absolute-form
    want_file(status_of(req("http://127.0.0.1/index.html")), "/index.html", "GET http://127.0.0.1/index.html")


@test()
def test_404_missing_file_keeps_connection():
    c = Conn()
    for p in ("/nothere", "/nothere.html", "/dir/nothere", "/index.html/x", "/nodir/"):
        c.send(req(p))
        r = c.response()
        eq(r.status, 404, "GET %s" % p)
    c.send(req("/tiny.txt"))
    want_file(c.response(), "/tiny.txt", "after five 404s on one connection")
    c.close()


def method_405(m):
    r = want_status(req("/index.html", m, ["Content-Length: 0"]), 405, m)
    allow = [t.strip().upper() for t in (r.h("allow") or "").split(",")]
    check("GET" in allow and "HEAD" in allow, "%s: 405 Allow %r lacks GET or HEAD" % (m, r.h("allow")))


@test()
def test_405_post():
    method_405("POST")


@test()
def test_405_put():
    method_405("PUT")


@test()
def test_405_delete():
    method_405("DELETE")


@test()
def test_405_post_body_not_taken_as_request():
    c = Conn()
    body = b"GET /secret HTTP/1.1\r\n\r\n"
    c.send(req("/index.html", "POST", ["Content-Length: %d" % len(body)]) + body + req("/tiny.txt"))
    r = c.response("POST")
    eq(r.status, 405, "POST with a body")
    if c.keepalive:	# kept open: the body must have been skipped
        want_file(c.response(), "/tiny.txt", "request after POST with a body")
    else:
        check(c.closed_within(2), "answered Connection: close but kept the connection open")
    c.close()


@test(timeout=15)
def test_408_header_timeout():
    c = Conn(timeout=10)
    c.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    c.s.settimeout(ARGS.header_timeout + 3)
    try:
        r = c.response()
    except Fail as e:
        raise Fail("no 408 within %.1f s (header timeout %d s): %s" % (time.time() - t0, ARGS.header_timeout, e))
    el = time.time() - t0
    eq(r.status, 408, "incomplete head")
    check(ARGS.header_timeout - 0.8 <= el <= ARGS.header_timeout + 2,
          "408 after %.2f s, header timeout %d s" % (el, ARGS.header_timeout))
    check(c.closed_within(1.5), "connection still open 1.5 s after the 408")
    c.close()
    alive()


def big_len_status(method):
    c = Conn()
    c.send(req("/index.html", method, ["Content-Length: 100000000"]))
    r = c.response(method)
    eq(r.status, 413, "%s with Content-Length: 100000000" % method)
    check(c.closed_within(2), "connection still open 2 s after the 413 (the body would follow)")
    c.close()


@test()
def test_413_post_body_over_limit():
    big_len_status("POST")


@test()
def test_413_get_body_over_limit():
    big_len_status("GET")


@test()
def test_414_uri_over_8k():
    want_status(req("/" + "a" * 9000), 414, "9,000-byte URI")
    want_status(req("/index.html?" + "q" * 9000), 414, "9,000-byte query")
    want_status(req("/" + "a" * 2000), 404, "2,000-byte URI of a missing file")
    alive()


@test()
def test_431_headers_over_limit():
    want_status(req("/index.html", headers=["X-Big: " + "b" * 20000]), 431, "one 20 KB header")
    want_status(req("/index.html", headers=["X-H%d: %s" % (i, "h" * 1000) for i in range(20)]), 431,
                "20 headers of 1 KB")
    want_status(req("/index.html", headers=["X-H%d: %s" % (i, "h" * 100) for i in range(20)]), 200,
                "20 headers of 100 bytes")
    alive()


@test()
def test_501_transfer_encoding_gzip():
    want_status(req("/index.html", headers=["Transfer-Encoding: gzip"]), 501, "Transfer-Encoding: gzip")
    want_status(req("/index.html", "POST", ["Transfer-Encoding: gzip"]), 501, "POST Transfer-Encoding: gzip")


@test()
def test_505_http2_and_http3_request_lines():
    want_status(req("/index.html", version="HTTP/2.0"), 505, "HTTP/2.0")
    want_status(req("/index.html", version="HTTP/3.1"), 505, "HTTP/3.1")
    alive()


# ------------------------------------------------------------- traversal

TRAVERSAL = [
    ("dotdot", b"/../secret.txt"),
    ("dotdot_dotdot", b"/../../secret.txt"),
    ("pct_dotdot", b"/%2e%2e/secret.txt"),
    ("pct_dotdot_upper_slash", b"/%2E%2E%2Fsecret.txt"),
    ("dir_dotdot_dotdot", b"/dir/../../secret.txt"),
    ("dotdot_pct_slash", b"/..%2fsecret.txt"),
    ("dot_pct_dot", b"/.%2e/secret.txt"),
    ("dir_pct_dotdot", b"/dir/%2e%2e/%2e%2e/secret.txt"),
    ("double_encoded", b"/%252e%252e/secret.txt"),
    ("no_leading_slash", b"../secret.txt"),
    ("double_slash_etc_passwd", b"//etc/passwd"),
    ("nul", b"/%00"),
    ("nul_in_name", b"/index.html%00.txt"),
    ("absolute_form", b"http://x/../secret.txt"),
    ("absolute_form_pct", b"http://x/%2e%2e/secret.txt"),
    ("backslash", b"/..\\secret.txt"),
    ("pct_backslash", b"/..%5csecret.txt"),
    ("dir_backslashes", b"/dir\\..\\..\\secret.txt"),
    ("overlong_utf8_dot", b"/%c0%ae%c0%ae/secret.txt"),
    ("root_abs_path", b"/" + b"/".join([b".."] * 12) + b"/etc/passwd"),
]


def traversal_case(target):
    def f():
        secret = open(ARGS.secret, "rb").read()
        c = Conn()
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            r = c.response()
        finally:
            c.close()
        check(secret.strip() not in r.body, "%r served the secret file outside the root" % target)
        check(b"root:x:0:0" not in r.body, "%r served /etc/passwd" % target)
        check(r.status in (400, 404), "%r: status %d, want 400 or 404" % (target, r.status))
        alive("after %r the server" % target)
    return f


for _name, _t in TRAVERSAL:
    TESTS.append(("main", "traversal_" + _name, traversal_case(_t), 10))


# ---------------------------------------------------------------- big file

@test(timeout=30)
def test_10mb_raw_fast_then_keepalive():
    c = Conn(timeout=10)
    c.send(req("/big.bin"))
    r = c.response()
    eq(r.status, 200, "big.bin status")
    eq(len(r.body), len(FILES["/big.bin"]), "big.bin length")
    eq(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(FILES["/big.bin"]).hexdigest(), "big.bin sha256")
    c.send(req("/tiny.txt"))
    want_file(c.response(), "/tiny.txt", "request after the 10 MB response")
    c.close()


@test(timeout=40)
def test_10mb_raw_slow_reader():
    """~4 s at ~2.5 MB/s through a small receive buffer: longer than both
    timeouts, which must not cut a response in flight."""
    rate = 2.5e6
    c = Conn(timeout=10, rcvbuf=32 * 1024)
    c.send(req("/big.bin"))
    c.expect()
    h = hashlib.sha256()
    n = 0
    t0 = time.time()
    while True:
        r = c.pump()
        if r is not None:
            break
        if c.cur is not None and c.cur.parts:
            for p in c.cur.parts:
                h.update(p)
                n += len(p)
            c.cur.parts = []
        c.recv_some(64 * 1024)
        ahead = n / rate - (time.time() - t0)
        if ahead > 0:
            time.sleep(ahead)
    for p in [r.body]:
        h.update(p)
        n += len(p)
    eq(r.status, 200, "slow big.bin status")
    eq(n, len(FILES["/big.bin"]), "slow big.bin length (after %.1f s)" % (time.time() - t0))
    eq(h.hexdigest(), hashlib.sha256(FILES["/big.bin"]).hexdigest(), "slow big.bin sha256")
    c.close()


# -------------------------------------------------------------- timeouts

@test(timeout=20)
def test_slow_header_client_dropped_others_served():
    slow = Conn()
    slow.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    other = Conn()
    served = 0
    closed_at = None
    trickle = b"X-Slow: " + b"a" * 200
    i = 0
    while time.time() - t0 < ARGS.header_timeout + 3:
        try:
            slow.send(trickle[i % len(trickle):i % len(trickle) + 1])
            i += 1
        except (BrokenPipeError, ConnectionResetError):
            slow.feed(b"")
            closed_at = time.time()
            break
        if slow.closed_within(0.2):
            closed_at = time.time()
            break
        t1 = time.time()
        other.send(req("/tiny.txt"))
        want_file(other.response(), "/tiny.txt", "other client, request %d while a slow client trickles" % served)
        check(time.time() - t1 < 0.5, "other client waited %.2f s for an answer" % (time.time() - t1))
        served += 1
    check(closed_at is not None, "a client sending a header byte every 0.2 s still connected after %.1f s "
          "(header timeout %d s)" % (time.time() - t0, ARGS.header_timeout))
    el = closed_at - t0
    check(ARGS.header_timeout - 0.8 <= el <= ARGS.header_timeout + 2,
          "slow client dropped after %.2f s, header timeout %d s" % (el, ARGS.header_timeout))
    check(served >= 3, "other client served only %d times meanwhile" % served)
    if slow.raw:	# whatever was said before closing: a well-formed 408
        slow.expect()
        r = slow.pump()
        check(r is not None and r.status == 408, "slow client got %r before the close" % bytes(short(slow.raw)))
    other.send(req("/a.css"))
    want_file(other.response(), "/a.css", "other client after the slow one was dropped")
    other.close()
    slow.close()


@test(timeout=20)
def test_idle_keepalive_closed_after_timeout():
    c = Conn()
    c.send(req("/tiny.txt"))
    want_file(c.response(), "/tiny.txt", "first request")
    c.raw = bytearray()
    t0 = time.time()
    closed = c.closed_within(ARGS.keepalive_timeout + 3)
    el = time.time() - t0
    check(closed, "idle keep-alive connection still open %.1f s after the response (keepalive timeout %d s)" % (
        el, ARGS.keepalive_timeout))
    check(ARGS.keepalive_timeout - 0.8 <= el <= ARGS.keepalive_timeout + 2,
          "idle keep-alive connection closed after %.2f s, keepalive timeout %d s" % (el, ARGS.keepalive_timeout))
    if c.raw:
        c.expect()
        r = c.pump()
        check(r is not None and r.status == 408, "idle connection got %r before the close" % bytes(short(c.raw)))
    c.close()


@test(timeout=20)
def test_keepalive_survives_activity():
    """A connection used every second stays open past the keep-alive
    timeout (the timer restarts with each request)."""
    c = Conn()
    t0 = time.time()
    k = 0
    while time.time() - t0 < ARGS.keepalive_timeout + 1.5:
        c.send(req("/tiny.txt"))
        want_file(c.response(), "/tiny.txt", "request %d at %.1f s" % (k, time.time() - t0))
        k += 1
        time.sleep(min(1.0, ARGS.keepalive_timeout / 3))
    c.close()


@test(timeout=20)
def test_silent_connection_closed():
    c = Conn()
    t0 = time.time()
    limit = max(ARGS.header_timeout, ARGS.keepalive_timeout) + 2
    check(c.closed_within(limit), "a connection that never sends a byte still open after %.1f s" % (time.time() - t0))
    c.close()


# ------------------------------------------------------------ 1000 conns

@test(timeout=60)
def test_1000_concurrent_keepalive_connections():
    n = 1000
    t0 = time.time()
    conns = []
    for i in range(n):
        try:
            check(time.time() - t0 < 20, "only %d connections made in 20 s" % i)
            conns.append(Conn(timeout=5))
        except (OSError, Fail) as e:
            for c in conns:
                c.close()
            raise Fail("connect #%d failed: %s" % (i, e))
    paths = ["/tiny.txt", "/index.html", "/a.css", "/dir/"]
    sel = selectors.DefaultSelector()
    for c in conns:
        c.s.setblocking(False)
        sel.register(c.s, selectors.EVENT_READ, c)
    try:
        for rnd in range(2):
            pending = {}
            for i, c in enumerate(conns):
                p = paths[(i + rnd) % len(paths)]
                c.s.setblocking(True)
                c.s.settimeout(5)
                c.send(req(p))
                c.s.setblocking(False)
                c.expect()
                pending[c] = p
            errs = []
            deadline = time.time() + 20
            while pending and time.time() < deadline:
                for key, _ in sel.select(timeout=1):
                    c = key.data
                    if c not in pending:
                        continue
                    try:
                        d = c.s.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        d = b""
                        c.reset = True
                    c.feed(d)
                    try:
                        r = c.pump()
                    except Fail as e:
                        errs.append(str(e))
                        del pending[c]
                        continue
                    if r is not None:
                        p = pending.pop(c)
                        fp = "/dir/index.html" if p == "/dir/" else p
                        if r.status != 200 or r.body != FILES[fp]:
                            errs.append("round %d %s: %r" % (rnd, p, r))
                    elif not d:
                        errs.append("round %d: closed without a full response: %r" % (rnd, bytes(short(c.raw))))
                        del pending[c]
            check(not errs and not pending, "round %d: %d wrong, %d unanswered of %d; first: %s" % (
                rnd + 1, len(errs), len(pending), n, errs[:1]))
    finally:
        sel.close()
        for c in conns:
            c.close()
    check(time.time() - t0 < 40, "1000 connections took %.1f s" % (time.time() - t0))
    alive()


# --------------------------------------------------------------- sigterm

def exited(pid):
    try:
        st = open("/proc/%d/stat" % pid).read()
    except OSError:
        return True
    return st[st.rindex(")") + 2] in "ZX"


@test(group="sigterm", timeout=30)
def test_sigterm_with_50_clients():
    check(ARGS.pid, "--pid needed")
    socks = []
    for i in range(30):	# idle keep-alive, served once
        c = Conn()
        c.send(req("/tiny.txt"))
        want_file(c.response(), "/tiny.txt", "client %d" % i)
        socks.append(c)
    for i in range(10):	# half a request head sent
        c = Conn()
        c.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
        socks.append(c)
    for i in range(5):	# a 10 MB download nobody reads
        c = Conn(rcvbuf=16384)
        c.send(req("/big.bin"))
        socks.append(c)
    for i in range(5):	# connected, silent
        socks.append(Conn())
    time.sleep(0.3)
    t0 = time.time()
    os.kill(ARGS.pid, signal.SIGTERM)
    open_ = list(socks)
    while open_ and time.time() - t0 < 5:
        open_ = [c for c in open_ if not c.closed_within(0.02)]
    el = time.time() - t0
    check(not open_, "%d of 50 connections still open %.1f s after SIGTERM" % (len(open_), el))
    while not exited(ARGS.pid) and time.time() - t0 < 5:
        time.sleep(0.05)
    check(exited(ARGS.pid), "process %d still running 5 s after SIGTERM" % ARGS.pid)
    for c in socks:
        c.close()


def load_files(root):
    for dp, dns, fns in os.walk(root):
        for fn in fns:
            full = os.path.join(dp, fn)
            FILES["/" + os.path.relpath(full, root)] = open(full, "rb").read()


def main():
    global HOST, PORT, ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("shards", type=int)
    ap.add_argument("--root", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--group", default="main")
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--header-timeout", type=int, default=2)
    ap.add_argument("--keepalive-timeout", type=int, default=3)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--only", default="", help="run only tests whose name contains this")
    ARGS = ap.parse_args()
    HOST, PORT = ARGS.host, ARGS.port
    load_files(ARGS.root)
    for f in ("/index.html", "/a.css", "/b.js", "/c.png", "/dir/index.html", "/big.bin",
              "/my file.txt", "/..hidden", "/a..b.txt", "/tiny.txt", "/empty.txt"):
        if f not in FILES:
            print("# %s missing under --root %s" % (f, ARGS.root), file=sys.stderr)
            sys.exit(2)

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
    print("# httpd_client_test: %d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
