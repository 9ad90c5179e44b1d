/*
 * fs.c - start-up file loading (skerry/fs.h).
 *
 * A thin check over the platform's tree walk: the platform does the
 * directory reading (openat without following links), this layer checks
 * the arguments and turns "no bound" into the largest one.
 */
#include <errno.h>

#include "platform.h"
#include "skerry/fs.h"

int sk_fs_load_tree(const char *root, uint64_t max_total, sk_fs_file_fn fn, void *arg)
{
	if (!root || !*root || !fn)
		return -EINVAL;
	if (max_total == 0)
		max_total = UINT64_MAX;
	return sk_plat_fs_load_tree(root, max_total, fn, arg);
}
