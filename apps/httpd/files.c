/*
 * files.c - the document root, in memory.
 *
 * Roadmap: httpd_files_load() walks the root once through sk_fs_load_tree()
 * and keeps each file in one block (struct hfile, its path, its two prepared
 * response heads, its body); an open-addressing hash table (power-of-two
 * size, at most half full, linear probing) maps relative paths to blocks.
 * After start-up the table is read-only and shared by every shard: lookups
 * take no lock and the bodies go out with sk_write_ref() straight from here.
 *
 * This runs before the shards exist, so it uses the C library's malloc.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parser.h"
#include "httpd.h"
#include "skerry/fs.h"
#include "skerry/shard.h"

static struct hfile **table;
static size_t table_mask;		/* size - 1; 0 while there is no table */
static struct hfile **all;		/* every file, for freeing and resizing */
static unsigned nfiles, cap_files;
static uint64_t total_bytes;

static uint64_t path_hash(const char *p, size_t n)
{
	return sk_hash64(p, n, 0x68747470);
}

static int table_put(struct hfile *f)
{
	size_t i = (size_t)f->hash & table_mask;
	while (table[i]) {
		if (table[i]->path_len == f->path_len && memcmp(table[i]->path, f->path, f->path_len) == 0)
			return -EEXIST;
		i = (i + 1) & table_mask;
	}
	table[i] = f;
	return 0;
}

static int table_build(void)
{
	size_t size = 16;
	while (size < (size_t)nfiles * 2)
		size *= 2;
	struct hfile **t = calloc(size, sizeof(*t));
	if (!t)
		return -ENOMEM;
	free(table);
	table = t;
	table_mask = size - 1;
	for (unsigned k = 0; k < nfiles; k++)
		if (table_put(all[k]))
			return -EEXIST;
	return 0;
}

static int add_file(void *arg, const char *relpath, const void *data, size_t len,
		    int64_t mtime)
{
	char date[HTTP_DATE_LEN + 1], ok[512], nm[256];
	size_t plen = strlen(relpath);
	int nok, nnm;

	(void)arg;
	http_format_date(mtime, date);
	date[HTTP_DATE_LEN] = 0;
	nok = snprintf(ok, sizeof(ok),
		       "HTTP/1.1 200 OK\r\nServer: skerry-httpd\r\nContent-Type: %s\r\n"
		       "Content-Length: %zu\r\nLast-Modified: %s\r\n",
		       httpd_mime_type(relpath, plen), len, date);
	nnm = snprintf(nm, sizeof(nm),
		       "HTTP/1.1 304 Not Modified\r\nServer: skerry-httpd\r\n"
		       "Last-Modified: %s\r\n", date);
	if (nok <= 0 || (size_t)nok >= sizeof(ok) || nnm <= 0 || (size_t)nnm >= sizeof(nm))
		return -ENAMETOOLONG;
	if (plen > HTTP_MAX_URI)
		return 0;	/* no request could name it */

	/* One block: struct, path, heads, body (body last, 16-aligned). */
	size_t off_path = sizeof(struct hfile);
	size_t off_ok = off_path + plen + 1;
	size_t off_nm = off_ok + (size_t)nok;
	size_t off_body = (off_nm + (size_t)nnm + 15) & ~(size_t)15;
	char *blk = malloc(off_body + len + 1);
	if (!blk)
		return -ENOMEM;
	struct hfile *f = (struct hfile *)blk;
	memcpy(blk + off_path, relpath, plen + 1);
	memcpy(blk + off_ok, ok, (size_t)nok);
	memcpy(blk + off_nm, nm, (size_t)nnm);
	memcpy(blk + off_body, data, len);
	f->path = blk + off_path;
	f->path_len = (uint32_t)plen;
	f->hash = path_hash(f->path, plen);
	f->body = (const uint8_t *)blk + off_body;
	f->len = len;
	f->mtime = mtime;
	f->hdr_ok = blk + off_ok;
	f->hdr_ok_len = (uint32_t)nok;
	f->hdr_nm = blk + off_nm;
	f->hdr_nm_len = (uint32_t)nnm;
	f->lastmod_off = (uint32_t)(nok - 2 - HTTP_DATE_LEN);

	if (nfiles == cap_files) {
		unsigned nc = cap_files ? cap_files * 2 : 64;
		struct hfile **na = realloc(all, nc * sizeof(*na));
		if (!na) {
			free(blk);
			return -ENOMEM;
		}
		all = na;
		cap_files = nc;
	}
	all[nfiles++] = f;
	total_bytes += len;
	return 0;
}

int httpd_files_load(const char *root, uint64_t max_total)
{
	int rc = sk_fs_load_tree(root, max_total, add_file, NULL);
	if (rc == 0)
		rc = table_build();
	if (rc)
		httpd_files_free();
	return rc;
}

void httpd_files_free(void)
{
	for (unsigned k = 0; k < nfiles; k++)
		free(all[k]);
	free(all);
	free(table);
	all = NULL;
	table = NULL;
	table_mask = 0;
	nfiles = cap_files = 0;
	total_bytes = 0;
}

const struct hfile *httpd_file_find(const char *p, size_t n)
{
	if (!table)
		return NULL;
	uint64_t h = path_hash(p, n);
	size_t i = (size_t)h & table_mask;
	const struct hfile *f;
	while ((f = table[i]) != NULL) {
		if (f->hash == h && f->path_len == n && memcmp(f->path, p, n) == 0)
			return f;
		i = (i + 1) & table_mask;
	}
	return NULL;
}

unsigned httpd_files_count(void)
{
	return nfiles;
}

uint64_t httpd_files_bytes(void)
{
	return total_bytes;
}
