/*
 * alloc_shard.c - skerry's own per-shard allocator (meson -Dallocator=shard).
 *
 * Roadmap
 *
 *   sk_mem_init()      reserves one range of nshards slices, each 2^shift
 *                      bytes, so the owner of any address is
 *                      (p - base) >> shift.  Nothing is committed yet.
 *   slice layout       [ page descriptors | heap pages ... frontier | unused ]
 *                      One struct sk_span per 4 KiB page of the slice; the
 *                      descriptors live at the slice start and are committed
 *                      in 2 MiB steps together with the heap (shard_grow()).
 *   sk_alloc()         fast path: size -> class (table up to 1024 bytes),
 *                      pop the class's current span's free list.
 *     alloc_slow()     next partial span, else a new span from the page heap,
 *                      else drain the return list and retry, else NULL.
 *     alloc_large()    > SK_SMALL_MAX: a page span straight from the page heap.
 *   page heap          pages_alloc()/pages_free(): free spans in bins by page
 *                      count (a bitmap finds the first non-empty bin), split
 *                      on allocation, coalesced with both neighbours on free,
 *                      grown by committing 2 MiB more at the frontier.
 *   sk_free()          fast path: pointer in the calling shard's slice and a
 *                      small span -> push on the span's free list.
 *     free_slow()      large spans, another shard's memory (lock-free push on
 *                      the owner's return list), libc memory.
 *   sk_mem_drain_remote()  the owner takes its whole return list with one
 *                      atomic exchange (so no ABA) and frees it locally.
 *   statistics         kept by the owner as relaxed/release atomics; the hot
 *                      counters are per class so a malloc/free pair touches
 *                      only the class's own cache line.
 *
 * Threads that are not shards get the C library, behind a small header that
 * remembers the size (the C library has no portable usable-size call).
 *
 * This file uses only standard C and kernel-glue/platform.h, so the same code
 * runs on the unikernel glue.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "mem_common.h"
#include "skerry/alloc.h"

#if defined(SK_SANITIZE) && SK_SANITIZE
#include <sanitizer/asan_interface.h>
#define SK_POISON(p, n)		ASAN_POISON_MEMORY_REGION((p), (n))
#define SK_UNPOISON(p, n)	ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SK_POISON(p, n)		((void)(p), (void)(n))
#define SK_UNPOISON(p, n)	((void)(p), (void)(n))
#endif

/* Slow paths stay out of line so the fast paths need no stack frame. */
#define SK_SLOW		__attribute__((noinline, cold))

#define SK_PAGE_SHIFT	12
#define SK_PAGE		((size_t)1 << SK_PAGE_SHIFT)
#define SK_MIN_SLICE	((size_t)1 << 30)	/* virtual, per shard */

/* Size classes: 16-byte steps to 128, then 4 per power of two to 16 KiB. */
#define SK_NCLASSES	36
#define SK_SMALL_MAX	16384u
#define SK_FAST_MAX	1024u
#define SK_SPAN_MIN	(64u * 1024)	/* bytes per small span, at least */
#define SK_SPAN_MINOBJ	8u		/* objects per small span, at least */

/* Free spans of 1..SK_NBINS-1 pages have exact bins; bin 0 holds the rest. */
#define SK_NBINS	128

enum { SPAN_NONE = 0, SPAN_FREE, SPAN_SMALL, SPAN_LARGE };

/*
 * One per page.  Only the first page's descriptor (the "head") describes the
 * span; other pages point at it through ->head.  Every page of a small span
 * points at its head (objects can sit anywhere in it); large and free spans
 * only set their first and last page, which is all that frees (pointer = span
 * start) and coalescing (neighbours' edge pages) ever look at.
 */
struct sk_span {
	void *free;			/* small: free objects of this span */
	struct sk_span *head;		/* per page: descriptor of its span */
	struct sk_span *next, *prev;	/* class partial list or page-heap bin */
	uint32_t npages;
	uint16_t used;			/* small: objects handed out */
	uint8_t cls;			/* small: size class */
	uint8_t kind;			/* SPAN_* */
};

struct sk_class {
	alignas(64) struct sk_span *cur;	/* one cache line per class */		/* allocations come from here */
	struct sk_span *partial;	/* other spans with free objects */
	uint32_t size;
	uint32_t npages;
	/* Owner writes, anyone reads: nfree <= nalloc at every instant. */
	_Atomic uint64_t nalloc;
	_Atomic uint64_t nfree;
};

struct sk_shard {
	/* Hot: read by every sk_alloc()/sk_free() of the owner. */
	uintptr_t base;			/* slice start == descriptor array */
	size_t slice_size;
	struct sk_class cls[SK_NCLASSES];
	unsigned idx;

	/* Page heap (owner only). */
	size_t heap_first;		/* first heap page index in the slice */
	size_t heap_end;		/* page index of the frontier */
	size_t slice_pages;
	size_t meta_committed;		/* bytes of descriptors backed */
	size_t heap_committed;		/* bytes of heap pages backed */
	size_t limit;			/* budget: meta + heap committed */
	uint64_t binmap[SK_NBINS / 64];
	struct sk_span *bin[SK_NBINS];

	/* Statistics the class counters do not cover (owner writes). */
	_Atomic uint64_t large_nalloc, large_nfree, large_bytes;
	_Atomic uint64_t remote_out, remote_in, failed, committed;

	atomic_bool bound;		/* a thread is this shard */

	/* Written by other shards: its own cache line. */
	alignas(64) _Atomic(void *) remote;
	char pad[64 - sizeof(void *)];
};

static struct sk_shard *sk_shards;
static unsigned sk_nshards;
static uintptr_t sk_base;
static size_t sk_range_len;
static unsigned sk_slice_shift;

static uint8_t sk_class_fast[SK_FAST_MAX / 16 + 1];	/* (size+15)>>4 */
static uint8_t sk_class_mid[SK_SMALL_MAX / 128 + 1];	/* (size+127)>>7 */
static uint32_t sk_class_size[SK_NCLASSES];

/* A span with no free object: the current span of a class not used yet. */
static struct sk_span sk_empty_span = { .kind = SPAN_NONE };

static _Thread_local struct sk_shard *sk_self
	__attribute__((tls_model("initial-exec")));

/* ---- statistics helpers --------------------------------------------------- */

/* ---- size classes --------------------------------------------------------- */

static void classes_setup(void)
{
	unsigned n = 0;
	for (uint32_t s = 16; s <= 128; s += 16)
		sk_class_size[n++] = s;
	for (uint32_t p = 128; p < SK_SMALL_MAX; p *= 2)
		for (uint32_t q = 1; q <= 4; q++)
			sk_class_size[n++] = p + q * (p / 4);
	/* n == SK_NCLASSES */
	unsigned c = 0;
	for (unsigned i = 0; i <= SK_FAST_MAX / 16; i++) {
		while (sk_class_size[c] < i * 16)
			c++;
		sk_class_fast[i] = (uint8_t)c;
	}
	c = 0;
	for (unsigned i = 0; i <= SK_SMALL_MAX / 128; i++) {
		while (sk_class_size[c] < i * 128)
			c++;
		sk_class_mid[i] = (uint8_t)c;
	}
}

static inline unsigned size_class(size_t size)
{
	return size <= SK_FAST_MAX ? sk_class_fast[(size + 15) >> 4]
				   : sk_class_mid[(size + 127) >> 7];
}

/* Pages per span of a class: at least 64 KiB and 8 objects. */
static uint32_t class_pages(uint32_t size)
{
	size_t bytes = (size_t)size * SK_SPAN_MINOBJ;
	if (bytes < SK_SPAN_MIN)
		bytes = SK_SPAN_MIN;
	return (uint32_t)((bytes + SK_PAGE - 1) / SK_PAGE);
}

/* ---- descriptors ---------------------------------------------------------- */

static inline struct sk_span *desc_of(struct sk_shard *sh, size_t page)
{
	return (struct sk_span *)sh->base + page;
}

static inline size_t page_of(struct sk_shard *sh, const struct sk_span *s)
{
	return (size_t)(s - (struct sk_span *)sh->base);
}

static inline char *span_addr(struct sk_shard *sh, const struct sk_span *s)
{
	return (char *)(sh->base + (page_of(sh, s) << SK_PAGE_SHIFT));
}

static inline struct sk_span *span_of(struct sk_shard *sh, const void *p)
{
	return desc_of(sh, ((uintptr_t)p - sh->base) >> SK_PAGE_SHIFT)->head;
}

static void list_push(struct sk_span **head, struct sk_span *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

static void list_remove(struct sk_span **head, struct sk_span *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

/* ---- page heap ------------------------------------------------------------ */

static inline unsigned bin_index(size_t npages)
{
	return npages < SK_NBINS ? (unsigned)npages : 0;
}

static void bin_insert(struct sk_shard *sh, struct sk_span *s)
{
	unsigned b = bin_index(s->npages);
	list_push(&sh->bin[b], s);
	sh->binmap[b / 64] |= (uint64_t)1 << (b % 64);
}

static void bin_remove(struct sk_shard *sh, struct sk_span *s)
{
	unsigned b = bin_index(s->npages);
	list_remove(&sh->bin[b], s);
	if (!sh->bin[b])
		sh->binmap[b / 64] &= ~((uint64_t)1 << (b % 64));
}

/* Make pages [first, first+n) one span with head at @first. */
static struct sk_span *span_mark(struct sk_shard *sh, size_t first, size_t n,
				 int kind)
{
	struct sk_span *s = desc_of(sh, first);
	s->npages = (uint32_t)n;
	s->kind = (uint8_t)kind;
	s->head = s;
	desc_of(sh, first + n - 1)->head = s;
	return s;
}

/* Return a span to the page heap, merging it with free neighbours. */
static void pages_free(struct sk_shard *sh, struct sk_span *s)
{
	size_t first = page_of(sh, s), n = s->npages;

	s->kind = SPAN_NONE;
	if (first > sh->heap_first) {
		struct sk_span *l = desc_of(sh, first - 1)->head;
		if (l->kind == SPAN_FREE) {
			bin_remove(sh, l);
			first = page_of(sh, l);
			n += l->npages;
		}
	}
	if (first + n < sh->heap_end) {
		struct sk_span *r = desc_of(sh, first + n);
		if (r->head == r && r->kind == SPAN_FREE) {
			bin_remove(sh, r);
			r->kind = SPAN_NONE;
			n += r->npages;
		}
	}
	bin_insert(sh, span_mark(sh, first, n, SPAN_FREE));
}

/*
 * Commit enough 2 MiB steps at the frontier for a span of @npages (counting a
 * free span that already ends there), descriptors first.  The budget caps
 * descriptors + heap together: that is what the shard really costs.
 */
static int shard_grow(struct sk_shard *sh, size_t npages)
{
	size_t have = 0;
	if (sh->heap_end > sh->heap_first) {
		struct sk_span *last = desc_of(sh, sh->heap_end - 1)->head;
		if (last->kind == SPAN_FREE)
			have = last->npages;
	}
	size_t need = (npages - have) << SK_PAGE_SHIFT;
	size_t add = (need + SK_CHUNK - 1) & ~(SK_CHUNK - 1);
	size_t new_end = sh->heap_end + (add >> SK_PAGE_SHIFT);
	if (new_end > sh->slice_pages)
		return -ENOMEM;

	size_t meta = new_end * sizeof(struct sk_span);
	meta = (meta + SK_CHUNK - 1) & ~(SK_CHUNK - 1);
	size_t meta_add = meta > sh->meta_committed ? meta - sh->meta_committed : 0;
	if (sh->meta_committed + sh->heap_committed + meta_add + add > sh->limit)
		return -ENOMEM;
	if (meta_add) {
		if (sk_plat_mem_commit((char *)sh->base + sh->meta_committed,
				       meta_add) < 0)
			return -ENOMEM;
		sh->meta_committed += meta_add;
	}
	char *at = (char *)(sh->base + (sh->heap_end << SK_PAGE_SHIFT));
	if (sk_plat_mem_commit(at, add) < 0) {
		stat_add(&sh->committed, meta_add);
		return -ENOMEM;
	}
	sh->heap_committed += add;
	stat_add(&sh->committed, meta_add + add);

	size_t first = sh->heap_end;
	sh->heap_end = new_end;
	pages_free(sh, span_mark(sh, first, new_end - first, SPAN_NONE));
	return 0;
}

/* Best-fitting free span of at least @npages, or NULL. */
static struct sk_span *bin_find(struct sk_shard *sh, size_t npages)
{
	if (npages < SK_NBINS) {
		for (unsigned w = (unsigned)npages / 64; w < SK_NBINS / 64; w++) {
			uint64_t m = sh->binmap[w];
			if (w == npages / 64)
				m &= ~(uint64_t)0 << (npages % 64);
			if (m)
				return sh->bin[w * 64 + (unsigned)__builtin_ctzll(m)];
		}
	}
	struct sk_span *best = NULL;
	for (struct sk_span *s = sh->bin[0]; s; s = s->next)
		if (s->npages >= npages &&
		    (!best || s->npages < best->npages ||
		     (s->npages == best->npages && s < best)))
			best = s;
	return best;
}

/* A span of exactly @npages pages (kind still to be set), or NULL. */
static struct sk_span *pages_alloc(struct sk_shard *sh, size_t npages)
{
	struct sk_span *s = bin_find(sh, npages);
	if (!s) {
		if (shard_grow(sh, npages) < 0)
			return NULL;
		s = bin_find(sh, npages);
	}
	bin_remove(sh, s);
	size_t first = page_of(sh, s);
	if (s->npages > npages) {
		/* The rest keeps its right neighbour, which is not free. */
		bin_insert(sh, span_mark(sh, first + npages, s->npages - npages,
					 SPAN_FREE));
	}
	return span_mark(sh, first, npages, SPAN_NONE);
}

/* ---- small objects -------------------------------------------------------- */

static struct sk_span *span_new_small(struct sk_shard *sh, unsigned ci)
{
	struct sk_class *c = &sh->cls[ci];
	struct sk_span *s = pages_alloc(sh, c->npages);
	if (!s)
		return NULL;
	size_t first = page_of(sh, s);
	for (size_t i = 1; i + 1 < c->npages; i++)
		desc_of(sh, first + i)->head = s;
	s->kind = SPAN_SMALL;
	s->cls = (uint8_t)ci;
	s->used = 0;

	/* Link every object now, in address order, so allocations walk forward. */
	char *start = span_addr(sh, s);
	size_t nobj = ((size_t)c->npages << SK_PAGE_SHIFT) / c->size;
	SK_UNPOISON(start, (size_t)c->npages << SK_PAGE_SHIFT);
	char *o = start;
	for (size_t k = 0; k + 1 < nobj; k++, o += c->size)
		*(void **)o = o + c->size;
	*(void **)o = NULL;
	s->free = start;
	SK_POISON(start, (size_t)c->npages << SK_PAGE_SHIFT);
	return s;
}

/*
 * A small span's free list went from empty to non-empty, or its last object
 * came back.  The current span stays put (even empty: it is the class's own);
 * a full span rejoins the partial list; an empty one goes to the page heap.
 */
SK_SLOW static void span_event(struct sk_shard *sh, struct sk_span *s,
		       struct sk_class *c, bool was_full)
{
	if (s->used == 0) {
		if (!was_full)
			list_remove(&c->partial, s);
		pages_free(sh, s);
	} else {
		list_push(&c->partial, s);
	}
}

static inline void *span_pop(struct sk_span *s, struct sk_class *c)
{
	void *p = s->free;
	SK_UNPOISON(p, sizeof(void *));
	s->free = *(void **)p;
	s->used++;
	SK_UNPOISON(p, c->size);
	stat_add(&c->nalloc, 1);
	return p;
}

static void free_local(struct sk_shard *sh, void *p);

static void *alloc_small_slow(struct sk_shard *sh, unsigned ci)
{
	struct sk_class *c = &sh->cls[ci];
	for (int tries = 0; tries < 2; tries++) {
		if (c->cur->free)	/* a drain refilled it */
			return span_pop(c->cur, c);
		struct sk_span *s = c->partial;
		if (s)
			list_remove(&c->partial, s);
		else
			s = span_new_small(sh, ci);
		if (s) {
			/* The old current span is full: it is on no list until
			 * one of its objects comes back (span_event). */
			c->cur = s;
			return span_pop(s, c);
		}
		if (sk_mem_drain_remote() == 0)
			break;
	}
	stat_add(&sh->failed, 1);
	return NULL;
}

static void *alloc_large(struct sk_shard *sh, size_t size)
{
	if (size > sh->slice_size) {
		stat_add(&sh->failed, 1);
		return NULL;
	}
	size_t npages = (size + SK_PAGE - 1) >> SK_PAGE_SHIFT;
	struct sk_span *s = pages_alloc(sh, npages);
	if (!s && sk_mem_drain_remote() > 0)
		s = pages_alloc(sh, npages);
	if (!s) {
		stat_add(&sh->failed, 1);
		return NULL;
	}
	s->kind = SPAN_LARGE;
	stat_add(&sh->large_nalloc, 1);
	stat_add(&sh->large_bytes, npages << SK_PAGE_SHIFT);
	char *p = span_addr(sh, s);
	SK_UNPOISON(p, npages << SK_PAGE_SHIFT);
	return p;
}

/* ---- memory of non-shard threads ------------------------------------------ */

/*
 * The C library gives no portable usable size, so each block starts with
 * {size, header length}; the header is @align long to keep the alignment.
 */
struct libc_hdr {
	size_t size;
	size_t hdr;
};

static void *libc_alloc(size_t align, size_t size, bool zero)
{
	size_t hdr = align > 16 ? align : 16;
	if (size > SIZE_MAX - 2 * hdr)
		return NULL;
	char *raw;
	if (align > 16)
		raw = aligned_alloc(align, (hdr + size + align - 1) & ~(align - 1));
	else
		raw = zero ? calloc(1, hdr + size) : malloc(hdr + size);
	if (!raw)
		return NULL;
	char *p = raw + hdr;
	if (zero && align > 16)
		memset(p, 0, size);
	struct libc_hdr h = { size, hdr };
	memcpy(p - sizeof(h), &h, sizeof(h));
	return p;
}

static struct libc_hdr libc_hdr_of(const void *p)
{
	struct libc_hdr h;
	memcpy(&h, (const char *)p - sizeof(h), sizeof(h));
	return h;
}

static void libc_free(void *p)
{
	free((char *)p - libc_hdr_of(p).hdr);
}

/* ---- public: allocation --------------------------------------------------- */

SK_SLOW static void *alloc_slow(struct sk_shard *sh, size_t size)
{
	if (!sh)
		return libc_alloc(16, size, false);
	if (size <= SK_SMALL_MAX)
		return alloc_small_slow(sh, size_class(size));
	return alloc_large(sh, size);
}

void *sk_alloc(size_t size)
{
	struct sk_shard *sh = sk_self;
	if (likely(sh != NULL && size <= SK_FAST_MAX)) {
		struct sk_class *c = &sh->cls[sk_class_fast[(size + 15) >> 4]];
		struct sk_span *s = c->cur;
		if (likely(s->free != NULL))
			return span_pop(s, c);
	}
	return alloc_slow(sh, size);
}

void *sk_zalloc(size_t size)
{
	if (!sk_self)
		return libc_alloc(16, size, true);
	void *p = sk_alloc(size);
	if (p)
		memset(p, 0, size);
	return p;
}

void *sk_alloc_aligned(size_t align, size_t size)
{
	if (align == 0 || (align & (align - 1)) || align > SK_PAGE)
		return NULL;
	if (!sk_self)
		return libc_alloc(align, size, false);
	if (align <= 16)
		return sk_alloc(size);
	/*
	 * Spans start on a page and power-of-two classes pack objects at
	 * multiples of their size, so a power-of-two class >= align is aligned;
	 * large spans are page aligned.
	 */
	if (size < align)
		size = align;
	if (size <= SK_SMALL_MAX) {
		size_t p2 = 16;
		while (p2 < size)
			p2 <<= 1;
		size = p2;
	}
	return sk_alloc(size);
}

/* ---- public: freeing ------------------------------------------------------ */

static inline void free_small(struct sk_shard *sh, struct sk_span *s, void *p)
{
	struct sk_class *c = &sh->cls[s->cls];
	void *old = s->free;
	*(void **)p = old;
	s->free = p;
	SK_POISON(p, c->size);
	stat_add(&c->nfree, 1);
	/* The current span needs no event: alloc/free pairs land here. */
	if (unlikely((--s->used == 0 || old == NULL) && s != c->cur))
		span_event(sh, s, c, old == NULL);
}

static void free_local(struct sk_shard *sh, void *p)
{
	struct sk_span *s = span_of(sh, p);
	if (s->kind == SPAN_SMALL) {
		free_small(sh, s, p);
		return;
	}
	size_t bytes = (size_t)s->npages << SK_PAGE_SHIFT;
	SK_POISON(p, bytes);
	stat_add(&sh->large_nfree, 1);
	stat_sub(&sh->large_bytes, bytes);
	pages_free(sh, s);
}

/* Lock-free push; the owner takes the whole list at once, so no ABA. */
static void remote_push(struct sk_shard *owner, void *p)
{
	void *old = atomic_load_explicit(&owner->remote, memory_order_relaxed);
	do {
		*(void **)p = old;
	} while (!atomic_compare_exchange_weak_explicit(&owner->remote, &old, p,
							memory_order_release,
							memory_order_relaxed));
}

SK_SLOW static void free_slow(struct sk_shard *sh, void *p)
{
	if (!p)
		return;
	uintptr_t off = (uintptr_t)p - sk_base;
	if (off >= sk_range_len) {
		libc_free(p);
		return;
	}
	struct sk_shard *owner = &sk_shards[off >> sk_slice_shift];
	if (owner == sh) {
		free_local(sh, p);
		return;
	}
	remote_push(owner, p);
	if (sh)
		stat_add(&sh->remote_out, 1);
}

void sk_free(void *p)
{
	struct sk_shard *sh = sk_self;
	if (likely(sh != NULL)) {
		uintptr_t off = (uintptr_t)p - sh->base;
		if (likely(off < sh->slice_size)) {
			struct sk_span *s = desc_of(sh, off >> SK_PAGE_SHIFT)->head;
			if (likely(s->kind == SPAN_SMALL)) {
				free_small(sh, s, p);
				return;
			}
		}
	}
	free_slow(sh, p);
}

size_t sk_alloc_usable_size(const void *p)
{
	if (!p)
		return 0;
	uintptr_t off = (uintptr_t)p - sk_base;
	if (off >= sk_range_len)
		return libc_hdr_of(p).size;
	struct sk_span *s = span_of(&sk_shards[off >> sk_slice_shift], p);
	if (s->kind == SPAN_SMALL)
		return sk_class_size[s->cls];
	return (size_t)s->npages << SK_PAGE_SHIFT;
}

void *sk_realloc(void *p, size_t size)
{
	if (!p)
		return sk_alloc(size);
	size_t have = sk_alloc_usable_size(p);
	/* Keep the block when it fits and would not waste over half of it. */
	if (size <= have && size >= have / 2)
		return p;
	void *q = sk_alloc(size);
	if (!q)
		return size <= have ? p : NULL;	/* shrinking never fails */
	memcpy(q, p, size < have ? size : have);
	sk_free(p);
	return q;
}

int sk_mem_owner(const void *p)
{
	uintptr_t off = (uintptr_t)p - sk_base;
	return off < sk_range_len ? (int)(off >> sk_slice_shift) : -1;
}

/* ---- return lists --------------------------------------------------------- */

unsigned sk_mem_drain_remote(void)
{
	struct sk_shard *sh = sk_self;
	if (!sh)
		return 0;
	void *p = atomic_exchange_explicit(&sh->remote, NULL, memory_order_acquire);
	unsigned n = 0;
	while (p) {
		void *next = *(void **)p;
		free_local(sh, p);
		p = next;
		n++;
	}
	if (n)
		stat_add(&sh->remote_in, n);
	return n;
}

bool sk_mem_remote_pending(void)
{
	struct sk_shard *sh = sk_self;
	return sh && atomic_load_explicit(&sh->remote, memory_order_relaxed);
}

/* ---- set-up --------------------------------------------------------------- */

static size_t meta_bytes(size_t slice)
{
	size_t m = (slice >> SK_PAGE_SHIFT) * sizeof(struct sk_span);
	return (m + SK_CHUNK - 1) & ~(SK_CHUNK - 1);
}

int sk_mem_init(const struct sk_mem_config *cfg)
{
	size_t budget;
	int rc = sk__mem_budget(cfg, &budget);
	if (rc < 0)
		return rc;
	if (sk_shards)
		return -EBUSY;

	unsigned shift = 30;
	while (((size_t)1 << shift) < budget + meta_bytes((size_t)1 << shift)) {
		if (++shift > 46)
			return -ENOMEM;
	}
	size_t slice = (size_t)1 << shift;
	if (slice > (((size_t)1 << 47) / cfg->nshards))
		return -ENOMEM;

	classes_setup();
	struct sk_shard *shards = aligned_alloc(alignof(struct sk_shard),
						cfg->nshards * sizeof(*shards));
	if (!shards)
		return -ENOMEM;
	memset(shards, 0, cfg->nshards * sizeof(*shards));
	void *base = sk_plat_mem_reserve(cfg->nshards * slice, SK_CHUNK);
	if (!base) {
		free(shards);
		return -ENOMEM;
	}

	for (unsigned i = 0; i < cfg->nshards; i++) {
		struct sk_shard *sh = &shards[i];
		sh->base = (uintptr_t)base + (size_t)i * slice;
		sh->slice_size = slice;
		sh->slice_pages = slice >> SK_PAGE_SHIFT;
		sh->heap_first = meta_bytes(slice) >> SK_PAGE_SHIFT;
		sh->heap_end = sh->heap_first;
		sh->limit = budget;
		sh->idx = i;
		for (unsigned c = 0; c < SK_NCLASSES; c++) {
			sh->cls[c].cur = &sk_empty_span;
			sh->cls[c].size = sk_class_size[c];
			sh->cls[c].npages = class_pages(sk_class_size[c]);
		}
	}
	sk_slice_shift = shift;
	sk_range_len = cfg->nshards * slice;
	sk_nshards = cfg->nshards;
	sk_base = (uintptr_t)base;
	sk_shards = shards;
	return 0;
}

void sk_mem_fini(void)
{
	if (!sk_shards)
		return;
	void *base = (void *)sk_base;
	size_t len = sk_range_len;
	struct sk_shard *shards = sk_shards;
	unsigned n = sk_nshards;
	sk_base = 0;
	sk_range_len = 0;
	sk_nshards = 0;
	sk_shards = NULL;
	/* Only what was ever committed can be poisoned: unpoisoning the
	 * whole reserved range would write gigabytes of ASan shadow. */
	for (unsigned i = 0; i < n; i++)
		SK_UNPOISON((void *)(shards[i].base + (shards[i].heap_first << SK_PAGE_SHIFT)),
			    shards[i].heap_committed);
	sk_plat_mem_release(base, len);
	free(shards);
}

int sk_mem_thread_init(unsigned shard)
{
	if (!sk_shards || shard >= sk_nshards || sk_self)
		return -EINVAL;
	bool expect = false;
	if (!atomic_compare_exchange_strong(&sk_shards[shard].bound, &expect, true))
		return -EBUSY;
	sk_self = &sk_shards[shard];
	return 0;
}

void sk_mem_thread_exit(void)
{
	struct sk_shard *sh = sk_self;
	if (!sh)
		return;
	sk_mem_drain_remote();
	sk_self = NULL;
	atomic_store(&sh->bound, false);
}

/* ---- statistics ----------------------------------------------------------- */

int sk_mem_stats(unsigned shard, struct sk_mem_stats *out)
{
	if (!sk_shards || shard >= sk_nshards || !out)
		return -EINVAL;
	struct sk_shard *sh = &sk_shards[shard];
	memset(out, 0, sizeof(*out));
	for (unsigned c = 0; c < SK_NCLASSES; c++) {
		/* nfree first: then nalloc >= nfree even while the owner runs. */
		uint64_t f = stat_get(&sh->cls[c].nfree);
		uint64_t a = stat_get(&sh->cls[c].nalloc);
		out->allocs += a;
		out->frees += f;
		out->bytes_in_use += (a - f) * sh->cls[c].size;
	}
	uint64_t lf = stat_get(&sh->large_nfree);
	uint64_t la = stat_get(&sh->large_nalloc);
	out->allocs += la;
	out->frees += lf;
	out->large_allocs = la;
	out->bytes_in_use += stat_get(&sh->large_bytes);
	out->remote_frees_out = stat_get(&sh->remote_out);
	out->remote_frees_in = stat_get(&sh->remote_in);
	out->failed = stat_get(&sh->failed);
	out->bytes_committed = stat_get(&sh->committed);
	out->bytes_limit = sh->limit;
	return 0;
}

const char *sk_mem_backend(void)
{
	return "shard";
}

const char *sk_mem_source(void)
{
	return sk_plat_mem_source();
}
