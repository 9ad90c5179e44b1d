/*
 * test_http_parser.c - apps/httpd's parser: heads split at every byte,
 * limits and every error status, chunked bodies, paths, dates.
 */
#include "sk_test.h"
#include "http_parser.h"

/* Scan @s as it would arrive cut at @cut (first call sees s[0..cut)),
 * then parse; returns the parse result or the scan error. */
static int scan_split(const char *s, size_t len, size_t cut, struct http_req *r, int *head_len)
{
	struct http_scan sc = { 0 };
	const uint8_t *p = (const uint8_t *)s;
	int hl = 0;

	if (cut > 0 && cut < len)
		hl = http_head_scan(&sc, p, cut);
	if (hl == 0)
		hl = http_head_scan(&sc, p, len);
	*head_len = hl;
	if (hl <= 0)
		return hl;
	return http_parse_head(p, (size_t)hl, r);
}

/* Byte by byte: every prefix length in turn, as a slow client sends. */
static int scan_bytewise(const char *s, size_t len, int *head_len)
{
	struct http_scan sc = { 0 };
	for (size_t n = 1; n <= len; n++) {
		int hl = http_head_scan(&sc, (const uint8_t *)s, n);
		if (hl != 0) {
			*head_len = hl;
			return hl;
		}
	}
	*head_len = 0;
	return 0;
}

static const char *reqs[] = {
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"HEAD /x/y.txt?q=1 HTTP/1.0\r\nConnection: keep-alive\r\nUser-Agent: t\r\n\r\n",
	"GET /1k.txt HTTP/1.1\nHost: h\nConnection: close\n\n",
	"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
	"GET /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	"If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
};

SK_TEST(heads_parse_the_same_at_every_split_point)
{
	for (size_t k = 0; k < sizeof(reqs) / sizeof(reqs[0]); k++) {
		const char *s = reqs[k];
		size_t len = strlen(s);
		struct http_req want, got;
		int hl0, hl;
		CHECK_EQ(scan_split(s, len, 0, &want, &hl0), 0);
		CHECK_EQ(hl0, (int)len);
		for (size_t cut = 1; cut < len; cut++) {
			int rc = scan_split(s, len, cut, &got, &hl);
			CHECK_EQ(rc, 0);
			CHECK_EQ(hl, hl0);
			CHECK(memcmp(&got, &want, sizeof(got)) == 0);
		}
		CHECK_EQ(scan_bytewise(s, len, &hl), (int)len);
		/* Followed by the next request: the head still ends where it did. */
		char two[512];
		snprintf(two, sizeof(two), "%s%s", s, reqs[0]);
		for (size_t cut = 1; cut < strlen(two); cut++) {
			CHECK_EQ(scan_split(two, strlen(two), cut, &got, &hl), 0);
			CHECK_EQ(hl, hl0);
		}
	}
}

SK_TEST(head_fields)
{
	struct http_req r;
	int hl;
	const char *s = reqs[1];
	CHECK_EQ(scan_split(s, strlen(s), 0, &r, &hl), 0);
	CHECK_EQ(r.method, HTTP_M_HEAD);
	CHECK_EQ(r.minor, 0);
	CHECK(r.keepalive);
	CHECK_EQ(r.target_len, 12);
	CHECK(memcmp(s + r.target_off, "/x/y.txt?q=1", 12) == 0);

	s = reqs[0];
	CHECK_EQ(scan_split(s, strlen(s), 0, &r, &hl), 0);
	CHECK_EQ(r.method, HTTP_M_GET);
	CHECK_EQ(r.minor, 1);
	CHECK(r.keepalive);
	CHECK_EQ(r.content_length, 0);
	CHECK(!r.chunked);

	s = reqs[2];
	CHECK_EQ(scan_split(s, strlen(s), 0, &r, &hl), 0);
	CHECK(!r.keepalive);

	s = reqs[3];
	CHECK_EQ(scan_split(s, strlen(s), 0, &r, &hl), 0);
	CHECK_EQ(r.method, HTTP_M_OTHER);	/* answered 405 */
	CHECK_EQ(r.content_length, 5);

	s = reqs[4];
	CHECK_EQ(scan_split(s, strlen(s), 0, &r, &hl), 0);
	CHECK(r.chunked);
	CHECK_EQ(r.ims_len, HTTP_DATE_LEN);
	CHECK(memcmp(s + r.ims_off, "Sun, 06 Nov 1994", 16) == 0);

	const char *ten = "GET / HTTP/1.0\r\n\r\n";	/* 1.0: no Host needed, closes */
	CHECK_EQ(scan_split(ten, strlen(ten), 0, &r, &hl), 0);
	CHECK(!r.keepalive);
	const char *kc = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n";
	CHECK_EQ(scan_split(kc, strlen(kc), 0, &r, &hl), 0);
	CHECK(!r.keepalive);
	const char *ows = "GET / HTTP/1.1\r\nhOsT:a\r\ncontent-length: \t 7 \r\n\r\n";
	CHECK_EQ(scan_split(ows, strlen(ows), 0, &r, &hl), 0);
	CHECK_EQ(r.content_length, 7);
}

static int status_of(const char *s)
{
	struct http_req r;
	int hl;
	return scan_split(s, strlen(s), 0, &r, &hl);
}

SK_TEST(malformed_heads_are_400)
{
	static const char *bad[] = {
		"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
		"GET /\r\nHost: a\r\n\r\n",			/* HTTP/0.9 */
		"GET / http/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1\r\nHost: a\r\n\r\n",
		"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
		" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",			/* no Host */
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",		/* space before ':' */
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",		/* bare CR */
		"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = status_of(bad[i]);
		if (st != -400)
			fprintf(stderr, "  case %zu: %d\n", i, st);
		CHECK_EQ(st, -400);
	}
	/* The same Content-Length twice is fine. */
	CHECK_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
			   "Content-Length: 3\r\n\r\n"), 0);
}

SK_TEST(every_error_status)
{
	CHECK_EQ(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), -505);
	CHECK_EQ(status_of("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), -505);
	CHECK_EQ(status_of("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), -505);
	CHECK_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), -501);
	CHECK_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -501);
	CHECK_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			   "Transfer-Encoding: chunked\r\n\r\n"), -501);
	CHECK_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"), -413);
	CHECK_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n"), 0);
	CHECK_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"), -413);

	/* 414: the target limit, in a complete head and while it streams. */
	static char big[HTTP_MAX_HEAD * 2];
	int n = snprintf(big, sizeof(big), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n",
			 (int)HTTP_MAX_URI, 0);
	CHECK_EQ(status_of(big), -414);
	n = snprintf(big, sizeof(big), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n",
		     (int)HTTP_MAX_URI - 1, 0);
	CHECK_EQ(status_of(big), 0);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	struct http_scan sc = { 0 };
	CHECK_EQ(http_head_scan(&sc, (const uint8_t *)big, HTTP_MAX_LINE), 0);
	CHECK_EQ(http_head_scan(&sc, (const uint8_t *)big, HTTP_MAX_LINE + 1), -414);

	/* 431: header lines over the limit, streaming and complete. */
	n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(big + n, 'b', HTTP_MAX_HEADERS);
	memset(&sc, 0, sizeof(sc));
	CHECK_EQ(http_head_scan(&sc, (const uint8_t *)big, (size_t)n + HTTP_MAX_HEADERS - 100), 0);
	CHECK_EQ(http_head_scan(&sc, (const uint8_t *)big, (size_t)n + HTTP_MAX_HEADERS), -431);
	n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n",
		     (int)HTTP_MAX_HEADERS, 0);
	CHECK_EQ(status_of(big), -431);
	/* Many small headers count together. */
	size_t o = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
	while (o < HTTP_MAX_HEADERS + 200)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "X-Some-Header: value\r\n");
	snprintf(big + o, sizeof(big) - o, "\r\n");
	CHECK_EQ(status_of(big), -431);
	(void)n;
}

/* Skip @s in pieces cut at @cut; returns the last result and bytes used. */
static int chunked_split(const char *s, size_t len, size_t cut, size_t *used_total)
{
	struct http_chunked c = { 0 };
	size_t used, tot = 0;
	int rc = 0;
	if (cut > 0 && cut < len) {
		rc = http_chunked_skip(&c, (const uint8_t *)s, cut, &used);
		tot += used;
		if (rc != 0) {
			*used_total = tot;
			return rc;
		}
	}
	rc = http_chunked_skip(&c, (const uint8_t *)s + tot, len - tot, &used);
	*used_total = tot + used;
	return rc;
}

SK_TEST(chunked_bodies_at_every_split_point)
{
	static const char *ok[] = {
		"5\r\nhello\r\n0\r\n\r\n",
		"A;ext=1\r\n0123456789\r\n1\r\nx\r\n0\r\nTrailer: v\r\nMore: w\r\n\r\n",
		"3\nabc\n0\n\n",
		"0\r\n\r\n",
	};
	const char *after = "GET / HTTP/1.1\r\n";
	for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
		char buf[256];
		size_t blen = strlen(ok[k]);
		snprintf(buf, sizeof(buf), "%s%s", ok[k], after);
		size_t len = strlen(buf);
		for (size_t cut = 0; cut < len; cut++) {
			size_t used;
			CHECK_EQ(chunked_split(buf, len, cut, &used), 1);
			CHECK_EQ(used, blen);
		}
		/* Byte by byte. */
		struct http_chunked c = { 0 };
		int rc = 0;
		size_t i = 0, used;
		while (rc == 0 && i < len) {
			rc = http_chunked_skip(&c, (const uint8_t *)buf + i, 1, &used);
			i += used;
		}
		CHECK_EQ(rc, 1);
		CHECK_EQ(i, blen);
	}
	static const char *bad[] = { "x\r\n", "5\r\nhelloX", "5\r\nhello\rX", "\r\n", "5\rX" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		size_t used;
		CHECK_EQ(chunked_split(bad[k], strlen(bad[k]), 0, &used), -400);
	}
	size_t used;
	CHECK_EQ(chunked_split("100001\r\n", 8, 0, &used), -413);	/* 1 MiB + 1 */
	CHECK_EQ(chunked_split("FFFFFFFFFF\r\n", 12, 0, &used), -413);
	/* Many chunks that add up past the limit. */
	struct http_chunked c = { 0 };
	static char chunk[70000];
	int n = snprintf(chunk, sizeof(chunk), "10000\r\n");
	memset(chunk + n, 'z', 0x10000);
	memcpy(chunk + n + 0x10000, "\r\n", 2);
	size_t clen = (size_t)n + 0x10000 + 2;
	int rc = 0;
	for (int i = 0; i < 20 && rc == 0; i++)
		rc = http_chunked_skip(&c, (const uint8_t *)chunk, clen, &used);
	CHECK_EQ(rc, -413);
}

static int decode(const char *t, char *out)
{
	int n = http_path_decode((const uint8_t *)t, strlen(t), out, 256);
	if (n >= 0)
		out[n] = 0;
	return n;
}

SK_TEST(paths_decode_and_traversal_is_refused)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "/", "index.html" },
		{ "/index.html", "index.html" },
		{ "/css/site.css", "css/site.css" },
		{ "/css/", "css/index.html" },
		{ "/a/.", "a/index.html" },
		{ "//a///b", "a/b" },
		{ "/./a/./b", "a/b" },
		{ "/%69ndex%2Ehtml", "index.html" },
		{ "/a%20b.txt", "a b.txt" },
		{ "/1k.txt?x=../../etc", "1k.txt" },
		{ "/1k.txt#frag", "1k.txt" },
		{ "/...", "..." },
		{ "/..a/b..", "..a/b.." },
		{ "http://host:80/1k.txt", "1k.txt" },
		{ "HTTP://host", "index.html" },
		{ "https://host/?q", "index.html" },
	};
	char out[256];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int n = decode(good[i].in, out);
		CHECK(n >= 0);
		if (n >= 0 && strcmp(out, good[i].out) != 0) {
			fprintf(stderr, "  %s -> %s, want %s\n", good[i].in, out, good[i].out);
			CHECK(0);
		}
	}
	static const char *bad[] = {
		"", "index.html", "*", "/..", "/../etc/passwd", "/a/../b", "/a/..",
		"/%2e%2e/etc/passwd", "/%2E%2e", "/.%2e/x", "/a/%2e%2E/b",
		"/css%2fsite.css", "/css%2Fsite.css", "/a\\b", "/a%5cb", "/a%5C..%5Cb",
		"/%00", "/a%00.txt", "/%", "/%4", "/%zz", "/%g0",
		"http://host/../x", "/a/..?q",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = decode(bad[i], out);
		if (n != -400)
			fprintf(stderr, "  %s -> %d\n", bad[i], n);
		CHECK_EQ(n, -400);
	}
	/* The output bound is checked. */
	CHECK_EQ(http_path_decode((const uint8_t *)"/abc", 4, out, 4 + HTTP_PATH_EXTRA - 1), -400);
}

SK_TEST(dates_format_and_parse)
{
	char d[HTTP_DATE_LEN + 1] = { 0 };
	http_format_date(784111777, d);
	CHECK(strcmp(d, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
	http_format_date(0, d);
	CHECK(strcmp(d, "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
	http_format_date(951782400, d);		/* leap day */
	CHECK(strcmp(d, "Tue, 29 Feb 2000 00:00:00 GMT") == 0);
	for (int64_t t = 0; t < 4102444800; t += 86400 * 37 + 3671) {
		http_format_date(t, d);
		CHECK_EQ(http_parse_date((const uint8_t *)d, HTTP_DATE_LEN), t);
	}
	static const char *bad[] = {
		"Sun, 06 Nov 1994 08:49:37 UTC", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Sun, 06 Foo 1994 08:49:37 GMT",
		"Sun, 36 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(http_parse_date((const uint8_t *)bad[i], strlen(bad[i])), -1);
}
