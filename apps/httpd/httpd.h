/*
 * httpd.h - skerry-httpd's parts: the file table, MIME types, connections.
 *
 * main.c loads the document root once, before the shards start, into one
 * read-only table (files.c) that every shard reads and nobody changes
 * afterwards; each response's header block is built then too, so serving
 * a file copies prepared bytes and formats nothing.  conn.c serves one
 * accepted connection on the shard that accepted it.
 */
#ifndef SK_HTTPD_H
#define SK_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "skerry/future.h"

struct sk_sock;

/* A file of the document root, with its prepared response heads. */
struct hfile {
	const char *path;	/* relative: "css/site.css" */
	uint32_t path_len;
	uint32_t hdr_ok_len;
	uint64_t hash;
	const uint8_t *body;
	size_t len;
	int64_t mtime;		/* seconds since the epoch */
	const char *hdr_ok;	/* "HTTP/1.1 200 OK\r\n" ... "Last-Modified: ...\r\n" */
	const char *hdr_nm;	/* the same for 304 Not Modified */
	uint32_t hdr_nm_len;
	uint32_t lastmod_off;	/* the 29-byte date inside hdr_ok */
};

/*
 * Read every file under @root (at most @max_total bytes in all) into the
 * table.  Returns 0, -ENOENT/-ENOTDIR, -EFBIG, -ENOMEM, other -errno.
 * Call once, before the shards start.
 */
int httpd_files_load(const char *root, uint64_t max_total);
/* Free the table (after the shards have stopped). */
void httpd_files_free(void);
/* The file at relative path p[0..n), or NULL.  Safe on any shard. */
const struct hfile *httpd_file_find(const char *p, size_t n);
unsigned httpd_files_count(void);
uint64_t httpd_files_bytes(void);

/* Content-Type for a file name ("text/html; charset=utf-8", ...). */
const char *httpd_mime_type(const char *path, size_t len);

/* Settings conn.c reads; set by main.c before the shards start. */
struct httpd_settings {
	uint64_t header_timeout_ns;
	uint64_t keepalive_timeout_ns;
	unsigned maxconns;
};
extern struct httpd_settings httpd_settings;

/* Process-wide set-up of the prepared error responses (once, in main). */
int httpd_conn_global_init(void);
/* Per-shard set-up (Date cache and its timer) and teardown (at stop). */
int httpd_conn_shard_init(void);
void httpd_conn_shard_stop(void);

/*
 * Serve one accepted connection until it is gone (client closed, error,
 * timeout, "Connection: close", a fatal error status, or its input ended
 * with sk_shutdown_read() at shutdown).  Closes @s.  The future resolves
 * with 0 when the socket is closed, fails with -ENOMEM if the connection
 * could not be set up (@s closed too).
 */
sk_future httpd_conn_run(struct sk_sock *s);

/* Refuse a connection over -c: 503 and close. */
void httpd_conn_reject(struct sk_sock *s);

#endif /* SK_HTTPD_H */
