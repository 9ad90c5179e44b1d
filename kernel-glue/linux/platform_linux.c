/*
 * platform_linux.c - platform.h on Linux.
 *
 * Topology comes from hwloc (restricted to the process's cpuset, so taskset
 * and cgroups are honoured); threads are pthreads pinned with hwloc; sleeping
 * is a futex on the caller's word; memory is reserved PROT_NONE and committed
 * in 2 MiB steps, from hugetlbfs pages while the machine has free ones and
 * from normal pages with a THP hint otherwise.  File trees are read with
 * openat(O_NOFOLLOW) relative to directory descriptors, so a symlink can
 * never lead the walk outside its root.
 */
#include "platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hwloc.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static hwloc_topology_t topo;
static struct sk_plat_topology topo_info;
static atomic_int plat_ready;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* Put one PU per core first, then the remaining hyperthreads, so that the
 * first N shards land on N distinct cores. */
static void fill_cpus(void)
{
	hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo);
	int ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
	unsigned n = 0, seen_cores = 0;
	hwloc_bitmap_t used = hwloc_bitmap_alloc();

	for (int pass = 0; pass < 2; pass++) {
		for (int c = 0; c < ncores; c++) {
			hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, c);
			unsigned taken = 0;
			int pu;
			hwloc_bitmap_foreach_begin(pu, core->cpuset) {
				if (!hwloc_bitmap_isset(allowed, pu) ||
				    hwloc_bitmap_isset(used, pu) || n >= SK_PLAT_MAX_CPUS)
					continue;
				if (pass == 0 && taken)
					continue;
				hwloc_bitmap_set(used, pu);
				topo_info.cpus[n++] = (unsigned)pu;
				taken++;
			} hwloc_bitmap_foreach_end();
			if (pass == 0 && taken)
				seen_cores++;
		}
	}
	/* Machines where hwloc reports no cores: take the PUs as they come. */
	if (n == 0) {
		int pu;
		hwloc_bitmap_foreach_begin(pu, allowed) {
			if (n < SK_PLAT_MAX_CPUS)
				topo_info.cpus[n++] = (unsigned)pu;
		} hwloc_bitmap_foreach_end();
		seen_cores = n;
	}
	hwloc_bitmap_free(used);
	topo_info.ncpus = n;
	topo_info.ncores = seen_cores ? seen_cores : n;

	int nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
	topo_info.nnuma = nnuma > 0 ? (unsigned)nnuma : 1;
	for (unsigned i = 0; i < n; i++) {
		hwloc_obj_t pu = hwloc_get_pu_obj_by_os_index(topo, topo_info.cpus[i]);
		hwloc_obj_t node = NULL;
		if (pu)
			node = hwloc_get_next_obj_covering_cpuset_by_type(topo,
				pu->cpuset, HWLOC_OBJ_NUMANODE, NULL);
		topo_info.numa_of[i] = node ? node->logical_index : 0;
	}
}

int sk_plat_init(void)
{
	int rc = 0;

	if (atomic_load_explicit(&plat_ready, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&init_lock);
	if (!atomic_load(&plat_ready)) {
		if (hwloc_topology_init(&topo) < 0 || hwloc_topology_load(topo) < 0) {
			rc = -ENODEV;
		} else {
			/* Honour taskset/cgroup restrictions. */
			hwloc_bitmap_t set = hwloc_bitmap_alloc();
			if (hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0 &&
			    !hwloc_bitmap_iszero(set))
				hwloc_topology_restrict(topo, set, 0);
			hwloc_bitmap_free(set);
			fill_cpus();
			atomic_store_explicit(&plat_ready, 1, memory_order_release);
		}
	}
	pthread_mutex_unlock(&init_lock);
	return rc;
}

const struct sk_plat_topology *sk_plat_topology(void)
{
	return &topo_info;
}

/* ---- threads ------------------------------------------------------------ */

struct sk_plat_thread {
	pthread_t tid;
	int cpu;
	void (*fn)(void *);
	void *arg;
};

int sk_plat_pin_self(int cpu)
{
	if (sk_plat_init() < 0)
		return -ENODEV;
	hwloc_bitmap_t set = hwloc_bitmap_alloc();
	if (cpu < 0)
		hwloc_bitmap_copy(set, hwloc_topology_get_allowed_cpuset(topo));
	else
		hwloc_bitmap_only(set, (unsigned)cpu);
	int rc = hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD);
	hwloc_bitmap_free(set);
	return rc < 0 ? -errno : 0;
}

static void *thread_main(void *p)
{
	struct sk_plat_thread *t = p;
	sigset_t all;

	/* Termination signals are for the process, not for shard threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (t->cpu >= 0)
		sk_plat_pin_self(t->cpu);
	t->fn(t->arg);
	return NULL;
}

int sk_plat_thread_start(struct sk_plat_thread **out, int cpu,
			 void (*fn)(void *), void *arg)
{
	struct sk_plat_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cpu = cpu;
	t->fn = fn;
	t->arg = arg;
	int rc = pthread_create(&t->tid, NULL, thread_main, t);
	if (rc) {
		free(t);
		return -rc;
	}
	*out = t;
	return 0;
}

int sk_plat_thread_join(struct sk_plat_thread *t)
{
	int rc = pthread_join(t->tid, NULL);
	free(t);
	return -rc;
}

/* ---- time --------------------------------------------------------------- */

uint64_t sk_plat_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sk_plat_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- sleeping and waking ------------------------------------------------ */

void sk_plat_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	if (timeout_ns != UINT64_MAX) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
		ts.tv_nsec = (long)(timeout_ns % 1000000000u);
		tsp = &ts;
	}
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
}

void sk_plat_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Events are eventfds: pollable together with device descriptors. */
int sk_plat_event_open(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void sk_plat_event_signal(int ev)
{
	uint64_t one = 1;
	ssize_t r = write(ev, &one, sizeof(one));
	(void)r;	/* EAGAIN: the counter is already non-zero */
}

void sk_plat_event_wait(int ev, const int *fds, unsigned nfds, uint64_t timeout_ns)
{
	struct pollfd pf[9];
	struct timespec ts, *tsp = NULL;
	unsigned n = 0;
	uint64_t v;

	pf[n++] = (struct pollfd){ .fd = ev, .events = POLLIN };
	for (unsigned i = 0; i < nfds && n < 9; i++)
		pf[n++] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	if (timeout_ns != UINT64_MAX) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
		ts.tv_nsec = (long)(timeout_ns % 1000000000u);
		tsp = &ts;
	}
	if (ppoll(pf, n, tsp, NULL) > 0 && (pf[0].revents & POLLIN)) {
		ssize_t r = read(ev, &v, sizeof(v));
		(void)r;
	}
}

void sk_plat_event_close(int ev)
{
	close(ev);
}

/* ---- memory ------------------------------------------------------------- */

/* Free hugetlb pages decide the source once; -1 = not decided yet. */
static atomic_int huge_mode = -1;
static char mem_source[160];

static long read_meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long val = -1;
	size_t klen = strlen(key);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static int decide_huge(void)
{
	int mode = atomic_load(&huge_mode);
	if (mode >= 0)
		return mode;
	long free_huge = read_meminfo("HugePages_Free");
	long size_kb = read_meminfo("Hugepagesize");
	mode = free_huge > 0 && size_kb == 2048;
	if (mode)
		snprintf(mem_source, sizeof(mem_source),
			 "2 MiB hugepages (%ld free at start)", free_huge);
	else
		snprintf(mem_source, sizeof(mem_source),
			 "4 KiB pages with transparent-hugepage hint "
			 "(no free 2 MiB hugepages)");
	int expect = -1;
	atomic_compare_exchange_strong(&huge_mode, &expect, mode);
	return atomic_load(&huge_mode);
}

const char *sk_plat_mem_source(void)
{
	decide_huge();
	return mem_source;
}

uint64_t sk_plat_mem_total(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

void *sk_plat_mem_reserve(size_t len, size_t align)
{
	if (align < SK_PLAT_PAGE)
		align = SK_PLAT_PAGE;
	size_t span = len + align;
	char *p = mmap(NULL, span, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	/* Trim the unaligned head and the tail. */
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	size_t tail = (uintptr_t)p + span - (start + len);
	if (tail)
		munmap((char *)(start + len), tail);
	return (void *)start;
}

int sk_plat_mem_commit(void *addr, size_t len)
{
	if (decide_huge()) {
		void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
			       MAP_HUGETLB | MAP_POPULATE, -1, 0);
		if (p != MAP_FAILED)
			return 0;
		/*
		 * The pool ran dry.  A failed MAP_FIXED may already have
		 * unmapped our reservation, so map the range again (normal
		 * pages, read-write) instead of trusting mprotect: otherwise
		 * the hole could be handed to someone else and later
		 * overwritten by our own MAP_FIXED.
		 */
		atomic_store(&huge_mode, 0);
		snprintf(mem_source, sizeof(mem_source),
			 "2 MiB hugepages until they ran out, then 4 KiB pages");
		p = mmap(addr, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		madvise(addr, len, MADV_HUGEPAGE);
		return 0;
	}
	if (mprotect(addr, len, PROT_READ | PROT_WRITE) < 0)
		return -ENOMEM;
	madvise(addr, len, MADV_HUGEPAGE);
	return 0;
}

int sk_plat_mem_decommit(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		       -1, 0);
	return p == MAP_FAILED ? -errno : 0;
}

void sk_plat_mem_release(void *addr, size_t len)
{
	munmap(addr, len);
}

/* ---- files -------------------------------------------------------------- */

#define FS_MAX_DEPTH	32
#define FS_PATH_MAX	4096

struct fs_walk {
	uint64_t max_total, total;
	int (*fn)(void *arg, const char *relpath, const void *data, size_t len,
		  int64_t mtime_unix);
	void *arg;
	char path[FS_PATH_MAX];
};

/* Read up to @len bytes (fewer if the file shrank); *got says how many. */
static int fs_read_all(int fd, size_t len, void **out, size_t *gotp)
{
	char *buf = malloc(len ? len : 1);
	size_t got = 0;

	if (!buf)
		return -ENOMEM;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			free(buf);
			return e;
		}
		if (n == 0)
			break;	/* shrank meanwhile: take what is there */
		got += (size_t)n;
	}
	*out = buf;
	*gotp = got;
	return 0;
}

/* One directory: @dfd is owned (closed) here; path[0..plen) is its prefix. */
static int fs_walk_dir(struct fs_walk *w, int dfd, size_t plen, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	for (;;) {
		size_t nlen;
		struct stat st;
		int fd;

		errno = 0;
		de = readdir(d);
		if (!de) {
			rc = -errno;
			break;
		}
		nlen = strlen(de->d_name);
		if (de->d_name[0] == '.')
			continue;	/* ".", "..", and hidden files */
		if (plen + nlen + 2 > sizeof(w->path)) {
			rc = -ENAMETOOLONG;
			break;
		}
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			if (errno == ELOOP || errno == ENXIO || errno == EACCES)
				continue;	/* a symlink, a socket, unreadable */
			rc = -errno;
			break;
		}
		if (fstat(fd, &st) < 0) {
			rc = -errno;
			close(fd);
			break;
		}
		memcpy(w->path + plen, de->d_name, nlen + 1);
		if (S_ISDIR(st.st_mode)) {
			if (depth >= FS_MAX_DEPTH) {
				close(fd);
				continue;
			}
			w->path[plen + nlen] = '/';
			rc = fs_walk_dir(w, fd, plen + nlen + 1, depth + 1);
			if (rc)
				break;
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			close(fd);
			continue;
		}
		w->total += (uint64_t)st.st_size;
		if (w->total > w->max_total) {
			close(fd);
			rc = -EFBIG;
			break;
		}
		void *data = NULL;
		size_t got = 0;
		rc = fs_read_all(fd, (size_t)st.st_size, &data, &got);
		close(fd);
		if (rc == 0)
			rc = w->fn(w->arg, w->path, data, got, (int64_t)st.st_mtime);
		free(data);
		if (rc)
			break;
	}
	closedir(d);
	return rc;
}

int sk_plat_fs_load_tree(const char *root, uint64_t max_total,
			 int (*fn)(void *arg, const char *relpath, const void *data,
				   size_t len, int64_t mtime_unix),
			 void *arg)
{
	struct fs_walk *w;
	int dfd, rc;

	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	w = malloc(sizeof(*w));
	if (!w) {
		close(dfd);
		return -ENOMEM;
	}
	w->max_total = max_total;
	w->total = 0;
	w->fn = fn;
	w->arg = arg;
	w->path[0] = 0;
	rc = fs_walk_dir(w, dfd, 0, 0);
	free(w);
	return rc;
}

/* ---- console, termination, exit ----------------------------------------- */

void sk_plat_console_write(int stream, const char *buf, size_t len)
{
	int fd = stream == 1 ? STDOUT_FILENO : STDERR_FILENO;
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void (*volatile term_fn)(int);

static void term_handler(int signo)
{
	int saved = errno;	/* the callback's futex calls may clobber it */
	void (*fn)(int) = term_fn;
	if (fn)
		fn(signo);
	errno = saved;
}

int sk_plat_on_terminate(void (*fn)(int signo))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	term_fn = fn;
	sa.sa_handler = fn ? term_handler : SIG_DFL;
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/* _exit only: this is called from signal handlers too. */
_Noreturn void sk_plat_exit(int status)
{
	_exit(status);
}
