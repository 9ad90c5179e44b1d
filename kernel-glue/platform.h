/*
 * platform.h - the one interface between skerry and what it runs on.
 *
 * Everything above kernel-glue/ (memory, runtime, shard, net, apps) reaches
 * the machine only through these functions.  kernel-glue/linux/ implements
 * them with hwloc, pthreads, futexes and mmap; a later kernel-glue/unikernel/
 * implements the same functions on bare metal.  This header therefore names
 * no OS type: threads are opaque handles, sleeping is a wait on a 32-bit word.
 *
 * Errors are negative errno values.
 */
#ifndef SKERRY_PLATFORM_H
#define SKERRY_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SK_PLAT_MAX_CPUS 256

/* ---- start-up and topology ---------------------------------------------- */

/* Discover the machine (hwloc on Linux).  Idempotent.  Returns 0 or -errno. */
int sk_plat_init(void);

struct sk_plat_topology {
	unsigned ncpus;			/* usable logical CPUs (cpuset of the process) */
	unsigned ncores;		/* physical cores among them */
	unsigned nnuma;			/* NUMA nodes (>= 1) */
	unsigned cpus[SK_PLAT_MAX_CPUS];/* OS ids of usable CPUs, one per core first */
	unsigned numa_of[SK_PLAT_MAX_CPUS];/* NUMA node of cpus[i] */
};

/* The topology found by sk_plat_init(). */
const struct sk_plat_topology *sk_plat_topology(void);

/* ---- threads ------------------------------------------------------------ */

struct sk_plat_thread;

/*
 * Start fn(arg) on a new thread pinned to OS cpu @cpu (-1: not pinned).
 * Returns 0 and the handle in *out, or -errno (-EAGAIN, -EINVAL).
 */
int sk_plat_thread_start(struct sk_plat_thread **out, int cpu,
			 void (*fn)(void *), void *arg);
/* Wait for a thread started above to return, and free its handle. */
int sk_plat_thread_join(struct sk_plat_thread *t);
/* Pin the calling thread to OS cpu @cpu (-1: every CPU the process may
 * use, i.e. undo a pin).  Returns 0 or -errno. */
int sk_plat_pin_self(int cpu);

/* ---- time --------------------------------------------------------------- */

/* Monotonic nanoseconds since an arbitrary origin. */
uint64_t sk_plat_now_ns(void);
/* Wall-clock nanoseconds since the Unix epoch (for log lines only). */
uint64_t sk_plat_wall_ns(void);

/* ---- sleeping and waking ------------------------------------------------ */

/*
 * Sleep while *word == expected, at most timeout_ns (UINT64_MAX: no limit).
 * May return early and spuriously; callers re-check their condition.
 */
void sk_plat_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns);
/* Wake every thread sleeping in sk_plat_wait() on @word. */
void sk_plat_wake(uint32_t *word);
/*
 * Events for sleeping on device input: a shard that drives a device queue
 * with a file descriptor (a Linux tap) sleeps in sk_plat_event_wait() until
 * the device has input, another thread signals its event, or the timeout.
 * sk_plat_event_open: a handle >= 0 or -errno.  signal may be called from
 * any thread (and a signal handler).  wait returns early when @ev was
 * signalled (consuming the signal), one of @fds (may be NULL/0) is
 * readable, or @timeout_ns (UINT64_MAX: none) passed.
 */
int sk_plat_event_open(void);
void sk_plat_event_signal(int ev);
void sk_plat_event_wait(int ev, const int *fds, unsigned nfds, uint64_t timeout_ns);
void sk_plat_event_close(int ev);
/* Hint to the CPU that we are spinning. */
static inline void sk_plat_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* ---- memory ------------------------------------------------------------- */

/*
 * Reserve @len bytes of address space aligned to @align (a power of two),
 * with no memory behind it yet.  Returns NULL if the space is not available.
 */
void *sk_plat_mem_reserve(size_t len, size_t align);
/*
 * Back [addr, addr+len) of a reserved range with memory.  Both must be
 * multiples of SK_PLAT_HUGE_PAGE.  Uses free hugepages when there are any,
 * normal pages (with a transparent-hugepage hint) otherwise.
 * Returns 0, or -ENOMEM when no memory can be had.
 */
int sk_plat_mem_commit(void *addr, size_t len);
/* Give the memory of a committed range back; the range stays reserved. */
int sk_plat_mem_decommit(void *addr, size_t len);
/* Unmap a reserved range. */
void sk_plat_mem_release(void *addr, size_t len);
/* What sk_plat_mem_commit() uses: "2 MiB hugepages" or "4 KiB pages ...". */
const char *sk_plat_mem_source(void);
/* Physical memory of the machine in bytes. */
uint64_t sk_plat_mem_total(void);

#define SK_PLAT_PAGE		4096u
#define SK_PLAT_HUGE_PAGE	(2u << 20)

/* ---- files -------------------------------------------------------------- */

/*
 * Walk the directory tree under @root and call fn(arg, relpath, data, len,
 * mtime) for every regular file, with its whole content read into a
 * temporary buffer (valid during the call only).  relpath uses '/' and has
 * no leading slash ("css/site.css").  Symbolic links (files or directories)
 * and entries whose name starts with '.' are skipped, so nothing outside
 * @root is ever read.  Stops early when fn returns non-zero (that value is
 * returned).  Returns 0, -ENOENT/-ENOTDIR (no such directory), -EFBIG when
 * the files total more than @max_total bytes, -ENAMETOOLONG, -ENOMEM,
 * other -errno.
 */
int sk_plat_fs_load_tree(const char *root, uint64_t max_total,
			 int (*fn)(void *arg, const char *relpath, const void *data,
				   size_t len, int64_t mtime_unix),
			 void *arg);

/* ---- console, termination, exit ----------------------------------------- */

/* Write to the console: stream 1 = standard output, 2 = diagnostics. */
void sk_plat_console_write(int stream, const char *buf, size_t len);

/*
 * Call fn(signo) when the process is asked to terminate (SIGINT, SIGTERM on
 * Linux).  fn runs in signal context: it may only touch atomics and call
 * sk_plat_wake().  Passing NULL restores the default behaviour.
 */
int sk_plat_on_terminate(void (*fn)(int signo));

/* End the process with @status, without running any more skerry code. */
_Noreturn void sk_plat_exit(int status);

#endif /* SKERRY_PLATFORM_H */
