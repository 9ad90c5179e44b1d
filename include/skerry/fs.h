/*
 * skerry/fs.h - reading files at start-up.
 *
 * Skerry programs do no file I/O while serving: what they need from disk
 * (an HTTP server's documents, say) is read once, before or while the
 * shards start, into memory.  This is that one read, behind the platform
 * layer so that apps never include OS headers.  It blocks: call it from
 * main() before sk_smp_run(), or accept that the shard stalls meanwhile.
 */
#ifndef SKERRY_FS_H
#define SKERRY_FS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Called once per regular file: @relpath is relative to the root, with '/'
 * separators and no leading slash ("css/site.css"); @data/@len is the
 * whole content, valid only during the call (copy what you keep);
 * @mtime_unix is the modification time in seconds since the epoch.
 * Return 0 to go on, anything else to stop the walk with that value.
 */
typedef int (*sk_fs_file_fn)(void *arg, const char *relpath, const void *data,
			     size_t len, int64_t mtime_unix);

/*
 * Read every regular file under the directory @root, recursively, and hand
 * each to fn(arg, ...).  Symbolic links and names starting with '.' are
 * skipped, so nothing outside @root is read.  @max_total bounds the sum of
 * the file sizes (0 = no bound).
 * Returns 0; -ENOENT or -ENOTDIR when @root is not a directory; -EFBIG when
 * the files total more than @max_total (some files may have been handed
 * over already); -ENAMETOOLONG; -ENOMEM; -EACCES; other -errno; or fn's
 * non-zero value.
 */
int sk_fs_load_tree(const char *root, uint64_t max_total, sk_fs_file_fn fn, void *arg);

#endif /* SKERRY_FS_H */
