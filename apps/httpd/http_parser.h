/*
 * http_parser.h - HTTP/1.x request heads, chunked bodies, paths and dates.
 *
 * Everything here works in place on bytes the caller owns and allocates
 * nothing: a parsed request is a set of offsets into its head.  Parsing is
 * split in two so that a head arriving in pieces costs one pass:
 *
 *   http_head_scan()   finds the end of the head ("\r\n\r\n", or bare
 *                      "\n\n") incrementally, resuming where the last call
 *                      stopped, and enforces the size limits while the head
 *                      is still incomplete;
 *   http_parse_head()  parses a complete head once.
 *
 * Errors are the HTTP status to answer, negated (-400, -414, -431, -501,
 * -505; -413 from the chunked skipper).
 */
#ifndef SK_HTTP_PARSER_H
#define SK_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_URI		8192u		/* request target: 414 past it */
#define HTTP_MAX_HEADERS	16384u		/* header lines after the request
						 * line: 431 past it */
#define HTTP_MAX_BODY		(1u << 20)	/* discarded request body: 413 */
#define HTTP_MAX_LINE		(HTTP_MAX_URI + 64)	/* request line */
#define HTTP_MAX_HEAD		(HTTP_MAX_LINE + HTTP_MAX_HEADERS)
#define HTTP_DATE_LEN		29		/* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HTTP_PATH_EXTRA		16		/* out buffer: target length + this */

enum http_method {
	HTTP_M_GET = 1,
	HTTP_M_HEAD,
	HTTP_M_OTHER,		/* a valid token we do not serve: 405 */
};

/* Where http_head_scan() got to; zero it for every new head. */
struct http_scan {
	uint32_t pos;		/* resume the search for the end here */
	uint32_t line_end;	/* end of the request line (+1), 0 = not seen */
};

/* A parsed head: offsets are into the head's bytes. */
struct http_req {
	uint64_t content_length;
	uint32_t head_len;
	uint32_t target_off, target_len;
	uint32_t ims_off, ims_len;	/* If-Modified-Since; ims_len 0 = none */
	uint8_t method;			/* enum http_method */
	uint8_t minor;			/* HTTP/1.<minor>: 0 or 1 */
	bool keepalive;			/* after this request */
	bool chunked;			/* Transfer-Encoding: chunked */
};

/*
 * Look for the end of the head in p[0..len), which must start with the
 * same bytes as at the previous call on @sc (more may have been added).
 * Returns the head's length (> 0), 0 when more is needed, -414 when the
 * request line is over HTTP_MAX_LINE, -431 when the header lines are over
 * HTTP_MAX_HEADERS.
 */
int http_head_scan(struct http_scan *sc, const uint8_t *p, size_t len);

/*
 * Parse the complete head p[0..len) (len as returned by http_head_scan).
 * Returns 0 and fills *r, or -400 (malformed, missing Host in HTTP/1.1,
 * both Content-Length and Transfer-Encoding), -413 (Content-Length over
 * HTTP_MAX_BODY), -414, -431, -501 (a transfer coding other than
 * chunked), -505 (a version other than 1.0/1.1).
 */
int http_parse_head(const uint8_t *p, size_t len, struct http_req *r);

/* Skipping a chunked body; zero it for every body. */
struct http_chunked {
	uint64_t size;		/* of the chunk being read/skipped */
	uint64_t total;		/* bytes skipped so far */
	uint8_t state;
	uint8_t digits;
};

/*
 * Skip chunked-body bytes p[0..len): stores in *used how many belong to the
 * body.  Returns 1 when the body (last chunk and trailers) ended, 0 when
 * more is needed (*used == len), -400 when malformed, -413 when the body
 * passes HTTP_MAX_BODY bytes.
 */
int http_chunked_skip(struct http_chunked *c, const uint8_t *p, size_t len, size_t *used);

/*
 * Turn a request target into the relative path of a file: drops the
 * query, an absolute-form "http://host", percent-decodes, drops empty and
 * "." segments, and maps a directory ("/", "/a/") to its index.html.
 * Writes into out[0..cap) (cap >= len + HTTP_PATH_EXTRA) and returns the
 * length (no NUL is written), or -400 for: no leading '/', bad or NUL
 * escapes, an encoded '/' (%2F), a backslash (raw or %5C), a ".." segment.
 */
int http_path_decode(const uint8_t *t, size_t len, char *out, size_t cap);

/* IMF-fixdate of @t (seconds since the epoch) into out[0..29). */
void http_format_date(int64_t t, char *out);

/* An IMF-fixdate back to seconds since the epoch, or -1 if it is not one. */
int64_t http_parse_date(const uint8_t *p, size_t len);

#endif /* SK_HTTP_PARSER_H */
