/*
 * http_parser.c - HTTP/1.x request heads, chunked bodies, paths and dates.
 *
 * Roadmap:
 *   scan      http_head_scan(): memchr for '\n', then look at what follows;
 *             the resume point is the last '\n' whose successor is not yet
 *             known, so every byte is looked at about once however the head
 *             is split.
 *   head      http_parse_head(): request line (method SP target SP
 *             HTTP/d.d), then header lines; only the headers that change
 *             what we answer are interpreted (Host, Connection,
 *             Content-Length, Transfer-Encoding, If-Modified-Since).
 *   chunked   http_chunked_skip(): a byte state machine over size lines,
 *             data, and trailers.
 *   paths     http_path_decode(): percent-decoding and segment checks in
 *             one pass.
 *   dates     civil-from-days arithmetic (no libc time zone calls).
 *
 * Line ends may be "\r\n" or a bare "\n" (RFC 9112 section 2.2 lets a
 * server accept the latter); a bare "\r" elsewhere is malformed.
 */
#include <string.h>

#include "http_parser.h"

/* ---- characters ---------------------------------------------------------- */

static bool is_tchar(uint8_t c)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && memchr(extra, c, sizeof(extra) - 1) != NULL;
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Case-insensitive equality of p[0..n) with the lower-case literal s. */
static bool ieq(const uint8_t *p, size_t n, const char *s)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!s[i] || lower(p[i]) != (uint8_t)s[i])
			return false;
	return s[i] == 0;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ---- finding the end of a head ------------------------------------------ */

int http_head_scan(struct http_scan *sc, const uint8_t *p, size_t len)
{
	size_t i = sc->pos;

	while (i < len) {
		const uint8_t *nl = memchr(p + i, '\n', len - i);
		if (!nl) {
			i = len;
			break;
		}
		size_t at = (size_t)(nl - p);
		if (!sc->line_end) {
			sc->line_end = (uint32_t)at + 1;
			if (at + 1 > HTTP_MAX_LINE)
				return -414;
		}
		size_t j = at + 1;
		if (j < len && p[j] == '\n') {
			i = j + 1;
			goto found;
		}
		if (j + 1 < len && p[j] == '\r' && p[j + 1] == '\n') {
			i = j + 2;
			goto found;
		}
		if (j >= len || (j + 1 >= len && p[j] == '\r')) {
			i = at;		/* decide when the next bytes come */
			break;
		}
		i = j;
	}
	sc->pos = (uint32_t)i;
	if (!sc->line_end) {
		if (len > HTTP_MAX_LINE)
			return -414;
	} else if (len - sc->line_end > HTTP_MAX_HEADERS) {
		return -431;
	}
	return 0;
found:
	sc->pos = (uint32_t)i;
	if (i - sc->line_end > HTTP_MAX_HEADERS)
		return -431;
	return (int)i;
}

/* ---- parsing a head ------------------------------------------------------ */

/* The line starting at *pos: its content end (before "\r\n"/"\n") and the
 * start of the next one; false when a bare CR or NUL is inside. */
static bool next_line(const uint8_t *p, size_t len, size_t *pos, size_t *end)
{
	const uint8_t *nl = memchr(p + *pos, '\n', len - *pos);
	if (!nl)
		return false;
	size_t e = (size_t)(nl - p);
	size_t next = e + 1;
	if (e > *pos && p[e - 1] == '\r')
		e--;
	for (size_t i = *pos; i < e; i++)
		if (p[i] == '\r' || p[i] == 0)
			return false;
	*end = e;
	*pos = next;
	return true;
}

static int parse_request_line(const uint8_t *p, size_t e, struct http_req *r)
{
	size_t i = 0;

	while (i < e && is_tchar(p[i]))
		i++;
	if (i == 0 || i >= e || p[i] != ' ')
		return -400;
	if (i == 3 && memcmp(p, "GET", 3) == 0)
		r->method = HTTP_M_GET;
	else if (i == 4 && memcmp(p, "HEAD", 4) == 0)
		r->method = HTTP_M_HEAD;
	else
		r->method = HTTP_M_OTHER;
	size_t t = ++i;
	while (i < e && p[i] > ' ' && p[i] != 0x7f)
		i++;
	if (i == t || i >= e || p[i] != ' ')
		return i - t > HTTP_MAX_URI ? -414 : -400;
	if (i - t > HTTP_MAX_URI)
		return -414;
	r->target_off = (uint32_t)t;
	r->target_len = (uint32_t)(i - t);
	i++;
	/* HTTP-version = "HTTP/" DIGIT "." DIGIT, then the line ends. */
	if (e - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 ||
	    p[i + 5] < '0' || p[i + 5] > '9' || p[i + 6] != '.' ||
	    p[i + 7] < '0' || p[i + 7] > '9')
		return -400;
	if (p[i + 5] != '1' || p[i + 7] > '1')
		return -505;
	r->minor = (uint8_t)(p[i + 7] - '0');
	return 0;
}

/* Connection: a comma list of tokens. */
static void parse_connection(const uint8_t *v, size_t n, bool *close, bool *ka)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (ieq(v + s, i - s, "close"))
			*close = true;
		else if (ieq(v + s, i - s, "keep-alive"))
			*ka = true;
	}
}

int http_parse_head(const uint8_t *p, size_t len, struct http_req *r)
{
	size_t pos = 0, e;
	bool has_host = false, has_cl = false, has_te = false;
	bool conn_close = false, conn_ka = false;
	int rc;

	memset(r, 0, sizeof(*r));
	r->head_len = (uint32_t)len;
	if (!next_line(p, len, &pos, &e))
		return -400;
	rc = parse_request_line(p, e, r);
	if (rc)
		return rc;
	size_t line_end = pos;
	for (;;) {
		size_t s = pos;
		if (!next_line(p, len, &pos, &e))
			return -400;
		if (e == s)
			break;			/* the empty line */
		if (pos - line_end > HTTP_MAX_HEADERS)
			return -431;
		size_t n = s;
		while (n < e && is_tchar(p[n]))
			n++;
		/* No obs-fold, no space before the colon, a name. */
		if (n == s || n >= e || p[n] != ':')
			return -400;
		size_t nlen = n - s, v = n + 1, ve = e;
		while (v < ve && (p[v] == ' ' || p[v] == '\t'))
			v++;
		while (ve > v && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
			ve--;
		for (size_t k = v; k < ve; k++)
			if (p[k] < ' ' && p[k] != '\t')
				return -400;
		const uint8_t *name = p + s, *val = p + v;
		size_t vlen = ve - v;
		switch (nlen) {
		case 4:
			if (ieq(name, nlen, "host")) {
				if (has_host)
					return -400;
				has_host = true;
			}
			break;
		case 10:
			if (ieq(name, nlen, "connection"))
				parse_connection(val, vlen, &conn_close, &conn_ka);
			break;
		case 14:
			if (ieq(name, nlen, "content-length")) {
				uint64_t cl = 0;
				if (vlen == 0 || vlen > 18)
					return vlen > 18 ? -413 : -400;
				for (size_t k = 0; k < vlen; k++) {
					if (val[k] < '0' || val[k] > '9')
						return -400;
					cl = cl * 10 + (uint64_t)(val[k] - '0');
				}
				if (has_cl && cl != r->content_length)
					return -400;
				has_cl = true;
				r->content_length = cl;
			}
			break;
		case 17:
			if (ieq(name, nlen, "transfer-encoding")) {
				if (has_te || !ieq(val, vlen, "chunked"))
					return -501;
				has_te = true;
				r->chunked = true;
			} else if (ieq(name, nlen, "if-modified-since")) {
				r->ims_off = (uint32_t)v;
				r->ims_len = (uint32_t)vlen;
			}
			break;
		default:
			break;
		}
	}
	if (r->minor == 1 && !has_host)
		return -400;
	if (has_cl && has_te)
		return -400;
	if (r->content_length > HTTP_MAX_BODY)
		return -413;
	r->keepalive = r->minor == 1 ? !conn_close : conn_ka && !conn_close;
	return 0;
}

/* ---- chunked bodies ------------------------------------------------------ */

enum {
	CK_SIZE,	/* first hex digit of a size line */
	CK_SIZE_MORE,	/* more digits, ';', or the line end */
	CK_EXT,		/* chunk extension: up to '\n' */
	CK_SIZE_LF,	/* after '\r' of the size line */
	CK_DATA,
	CK_DATA_CR,	/* the "\r\n" after data */
	CK_DATA_LF,
	CK_TRAILER,	/* start of a trailer line (or the final empty one) */
	CK_TRAILER_LINE,
	CK_END_LF,	/* after the final '\r' */
};

int http_chunked_skip(struct http_chunked *c, const uint8_t *p, size_t len, size_t *used)
{
	size_t i = 0;
	int rc = 0;

	while (i < len) {
		uint8_t b = p[i];
		switch (c->state) {
		case CK_SIZE:
		case CK_SIZE_MORE: {
			int h = hexval(b);
			if (h >= 0) {
				if (++c->digits > 8) {	/* > 4 GiB: over any limit */
					rc = -413;
					goto out;
				}
				c->size = c->size * 16 + (uint64_t)h;
				c->state = CK_SIZE_MORE;
				i++;
				continue;
			}
			if (c->state == CK_SIZE) {
				rc = -400;
				goto out;
			}
			if (b == ';' || b == ' ' || b == '\t')
				c->state = CK_EXT;
			else if (b == '\r')
				c->state = CK_SIZE_LF;
			else if (b == '\n')
				goto size_done;
			else {
				rc = -400;
				goto out;
			}
			i++;
			continue;
		}
		case CK_EXT:
			if (b == '\n')
				goto size_done;
			if (b == 0) {
				rc = -400;
				goto out;
			}
			i++;
			continue;
		case CK_SIZE_LF:
			if (b != '\n') {
				rc = -400;
				goto out;
			}
			goto size_done;
		case CK_DATA: {
			size_t n = len - i;
			if (n > c->size)
				n = (size_t)c->size;
			c->size -= n;
			i += n;
			if (c->size == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		case CK_DATA_CR:
			if (b == '\n') {
				c->state = CK_SIZE;
				c->digits = 0;
			} else if (b == '\r') {
				c->state = CK_DATA_LF;
			} else {
				rc = -400;
				goto out;
			}
			i++;
			continue;
		case CK_DATA_LF:
			if (b != '\n') {
				rc = -400;
				goto out;
			}
			c->state = CK_SIZE;
			c->digits = 0;
			i++;
			continue;
		case CK_TRAILER:
			i++;
			if (b == '\n') {
				rc = 1;
				goto out;
			}
			c->state = b == '\r' ? CK_END_LF : CK_TRAILER_LINE;
			continue;
		case CK_TRAILER_LINE:
			if (b == '\n')
				c->state = CK_TRAILER;
			i++;
			continue;
		case CK_END_LF:
			if (b != '\n') {
				rc = -400;
				goto out;
			}
			i++;
			rc = 1;
			goto out;
		default:
			rc = -400;
			goto out;
		}
size_done:
		/* The '\n' ending a size line. */
		i++;
		if (c->size == 0) {
			c->state = CK_TRAILER;
		} else {
			c->state = CK_DATA;
			if (c->total + i + c->size > HTTP_MAX_BODY) {
				rc = -413;
				goto out;
			}
		}
	}
out:
	c->total += i;
	if (rc == 0 && c->total > HTTP_MAX_BODY)
		rc = -413;
	*used = i;
	return rc;
}

/* ---- paths --------------------------------------------------------------- */

int http_path_decode(const uint8_t *t, size_t len, char *out, size_t cap)
{
	size_t i = 0, o = 0, seg = 0;

	if (cap < len + HTTP_PATH_EXTRA)
		return -400;
	/* absolute-form: "http://host/path" -> "/path" */
	if (len >= 7 && (ieq(t, 7, "http://") || (len >= 8 && ieq(t, 8, "https://")))) {
		i = lower(t[4]) == 's' ? 8 : 7;
		while (i < len && t[i] != '/' && t[i] != '?' && t[i] != '#')
			i++;
		if (i == len || t[i] != '/') {
			len = i;	/* no path: "/" */
			goto end;
		}
	}
	if (i >= len || t[i] != '/')
		return -400;
	i++;
	for (;; i++) {
		bool at_end = i >= len || t[i] == '?' || t[i] == '#';
		if (at_end || t[i] == '/') {
			size_t n = o - seg;
			if (n == 2 && out[seg] == '.' && out[seg + 1] == '.')
				return -400;
			if (n == 0 || (n == 1 && out[seg] == '.'))
				o = seg;			/* "//", "/./" */
			else if (!at_end)
				out[o++] = '/';
			seg = o;
			if (at_end)
				break;
			continue;
		}
		uint8_t c = t[i];
		if (c == '%') {
			int h1 = i + 2 < len ? hexval(t[i + 1]) : -1;
			int h2 = i + 2 < len ? hexval(t[i + 2]) : -1;
			if (h1 < 0 || h2 < 0)
				return -400;
			c = (uint8_t)(h1 * 16 + h2);
			if (c == 0 || c == '/')
				return -400;
			i += 2;
		}
		if (c == '\\')
			return -400;
		out[o++] = (char)c;
	}
end:
	/* A directory (or the root) means its index. */
	if (o == 0 || out[o - 1] == '/') {
		memcpy(out + o, "index.html", 10);
		o += 10;
	}
	return (int)o;
}

/* ---- dates --------------------------------------------------------------- */

static const char wdays[7][4] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian; H. Hinnant's). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void put2(char *o, unsigned v)
{
	o[0] = (char)('0' + v / 10);
	o[1] = (char)('0' + v % 10);
}

void http_format_date(int64_t t, char *out)
{
	if (t < 0)
		t = 0;
	int64_t days = t / 86400;
	unsigned secs = (unsigned)(t % 86400);
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;

	memcpy(out, wdays[days % 7], 3);
	out[3] = ',';
	out[4] = ' ';
	put2(out + 5, d);
	out[7] = ' ';
	memcpy(out + 8, months[m - 1], 3);
	out[11] = ' ';
	put2(out + 12, (unsigned)(y / 100 % 100));
	put2(out + 14, (unsigned)(y % 100));
	out[16] = ' ';
	put2(out + 17, secs / 3600);
	out[19] = ':';
	put2(out + 20, secs / 60 % 60);
	out[22] = ':';
	put2(out + 23, secs % 60);
	memcpy(out + 25, " GMT", 4);
}

static int num(const uint8_t *p, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

int64_t http_parse_date(const uint8_t *p, size_t len)
{
	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (len != HTTP_DATE_LEN || p[3] != ',' || p[4] != ' ' || p[7] != ' ' ||
	    p[11] != ' ' || p[16] != ' ' || p[19] != ':' || p[22] != ':' ||
	    memcmp(p + 25, " GMT", 4) != 0)
		return -1;
	int d = num(p + 5, 2), y = num(p + 12, 4);
	int hh = num(p + 17, 2), mm = num(p + 20, 2), ss = num(p + 23, 2);
	int m = -1;
	for (int k = 0; k < 12; k++)
		if (memcmp(p + 8, months[k], 3) == 0)
			m = k + 1;
	if (d < 1 || d > 31 || y < 1970 || m < 0 || hh < 0 || hh > 23 || mm < 0 ||
	    mm > 59 || ss < 0 || ss > 60)
		return -1;
	return days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + hh * 3600 + mm * 60 + ss;
}
