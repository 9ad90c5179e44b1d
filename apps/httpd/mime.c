/*
 * mime.c - Content-Type by file extension.
 *
 * A short fixed table, searched once per file at start-up (never per
 * request: the type is baked into the file's prepared head).  Text types
 * say charset=utf-8; anything unknown is application/octet-stream.
 */
#include <string.h>

#include "httpd.h"

static const struct {
	const char *ext;
	const char *type;
} mime_table[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "htm", "text/html; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "json", "application/json" },
	{ "map", "application/json" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "md", "text/markdown; charset=utf-8" },
	{ "csv", "text/csv; charset=utf-8" },
	{ "xml", "application/xml" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "avif", "image/avif" },
	{ "ico", "image/x-icon" },
	{ "wasm", "application/wasm" },
	{ "pdf", "application/pdf" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "ttf", "font/ttf" },
	{ "otf", "font/otf" },
	{ "mp4", "video/mp4" },
	{ "webm", "video/webm" },
	{ "mp3", "audio/mpeg" },
	{ "ogg", "audio/ogg" },
	{ "wav", "audio/wav" },
	{ "zip", "application/zip" },
	{ "gz", "application/gzip" },
	{ "tar", "application/x-tar" },
	{ "bin", "application/octet-stream" },
};

const char *httpd_mime_type(const char *path, size_t len)
{
	size_t i = len;

	while (i > 0 && path[i - 1] != '.' && path[i - 1] != '/')
		i--;
	if (i == 0 || path[i - 1] != '.')
		return "application/octet-stream";
	const char *ext = path + i;
	size_t n = len - i;
	for (size_t k = 0; k < sizeof(mime_table) / sizeof(mime_table[0]); k++) {
		const char *e = mime_table[k].ext;
		if (strlen(e) != n)
			continue;
		size_t j = 0;
		while (j < n && (ext[j] | 0x20) == e[j])
			j++;
		if (j == n)
			return mime_table[k].type;
	}
	return "application/octet-stream";
}
