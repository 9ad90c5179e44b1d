/*
 * pkt.c - packet buffers: the per-shard pool, chains and foreign buffers.
 *
 * Roadmap: pool_on() decides whether this thread may cache (it is a shard
 * whose reactor is not stopping); sk_pkt_alloc() pops the shard's free list
 * or asks sk_alloc() for one block holding the header and its buffer;
 * sk_pkt_free() walks the chain and hands every segment whose count drops
 * to zero to seg_release(), which runs ext_free for wrapped buffers and
 * pushes the block (or the bare header) back on the free list.  Then the
 * chain helpers: trim, pullup, copy_out, copy.
 *
 * A block freed on another shard simply joins that shard's free list: the
 * memory still belongs to its allocating shard and goes home through
 * sk_free() when the list is trimmed or full.
 *
 * The free lists die with their reactor: a stop hook empties them, and a
 * thread whose reactor changed (or that has none) starts afresh, because a
 * cached block may point into an allocator that has since been torn down.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/log.h"
#include "skerry/pkt.h"
#include "skerry/reactor.h"

/* The fields every burst touches stay in the first cache line. */
_Static_assert(offsetof(struct sk_pkt, nsegs) + sizeof(uint16_t) <= 64,
	       "sk_pkt hot fields must fit in cache line 0");

/* Header rounded up so that the buffer after it starts a cache line. */
#define PKT_HDR_SIZE	((sizeof(struct sk_pkt) + 63) & ~(size_t)63)
#define PKT_BUF_SIZE	(SK_PKT_HEADROOM + SK_PKT_DATAROOM)
#define PKT_BLOCK_SIZE	(PKT_HDR_SIZE + PKT_BUF_SIZE)

/* Free-list caps: enough for a full rx ring plus what is in flight. */
#define POOL_MAX	4096u
#define HDR_POOL_MAX	1024u

struct pkt_pool {
	struct sk_reactor *owner;	/* reactor the lists belong to */
	struct sk_pkt *free;		/* pool blocks, linked by next */
	struct sk_pkt *hdrs;		/* bare headers for sk_pkt_wrap */
	uint32_t nfree, nhdrs;
	uint64_t allocs, frees, alloc_failures;
	struct sk_stop_hook hook;
};

static _Thread_local struct pkt_pool pool;

/* Marks a wrapped segment whose owner passed no ext_free. */
static void pkt_ext_noop(struct sk_pkt *p, void *arg)
{
	(void)p;
	(void)arg;
}

static void pool_stop(void *arg)
{
	(void)arg;
	sk_pkt_pool_trim();
	pool.owner = NULL;
}

/*
 * May this thread use its free lists?  Only a running shard: outside
 * shards there is nobody to trim them, and once the reactor stops they
 * must not fill up again.
 */
static bool pool_adopt(struct sk_reactor *r)
{
	if (!r || sk_reactor_stopping())
		return false;
	/* Lists left over from an earlier reactor point into memory that
	 * may be gone: forget them without touching them. */
	pool.free = pool.hdrs = NULL;
	pool.nfree = pool.nhdrs = 0;
	pool.owner = r;
	pool.hook = (struct sk_stop_hook){ .fn = pool_stop };
	sk_reactor_at_stop(&pool.hook);
	return true;
}

static inline bool pool_on(void)
{
	struct sk_reactor *r = sk_reactor_local();
	if (SK_LIKELY(r && r == pool.owner))
		return true;
	return pool_adopt(r);
}

static inline void pkt_init(struct sk_pkt *p, uint8_t *buf, uint32_t buf_size)
{
	/* The same fresh header as a driver's embedded one, but the pool's. */
	sk_pkt_init_embedded(p, buf, buf_size, buf, 0, NULL, NULL);
	p->flags = 0;
}

struct sk_pkt *sk_pkt_alloc(void)
{
	struct sk_pkt *p;

	if (pool_on() && pool.free) {
		p = pool.free;
		pool.free = p->next;
		pool.nfree--;
	} else {
		p = sk_alloc_aligned(64, PKT_BLOCK_SIZE);
		if (!p) {
			pool.alloc_failures++;
			return NULL;
		}
	}
	pool.allocs++;
	pkt_init(p, (uint8_t *)p + PKT_HDR_SIZE, PKT_BUF_SIZE);
	p->data += SK_PKT_HEADROOM;
	return p;
}

struct sk_pkt *sk_pkt_wrap(uint8_t *buf, uint32_t buf_size, uint8_t *data,
			   uint32_t len,
			   void (*ext_free)(struct sk_pkt *p, void *arg), void *arg)
{
	struct sk_pkt *p;

	if (data < buf || data + len > buf + buf_size)
		return NULL;
	if (pool_on() && pool.hdrs) {
		p = pool.hdrs;
		pool.hdrs = p->next;
		pool.nhdrs--;
	} else {
		p = sk_alloc(sizeof(*p));
		if (!p) {
			pool.alloc_failures++;
			return NULL;
		}
	}
	pool.allocs++;
	pkt_init(p, buf, buf_size);
	p->data = data;
	p->len = p->pkt_len = len;
	p->ext_free = ext_free ? ext_free : pkt_ext_noop;
	p->ext_arg = arg;
	return p;
}

/* The last reference to one segment went away. */
static void seg_release(struct sk_pkt *p)
{
	if (p->flags & SK_PKT_F_EMBEDDED) {
		/* Not the pool's: the header goes with the buffer. */
		p->ext_free(p, p->ext_arg);
		return;
	}
	pool.frees++;
	if (p->ext_free) {
		p->ext_free(p, p->ext_arg);
		if (pool.nhdrs < HDR_POOL_MAX && pool_on()) {
			p->next = pool.hdrs;
			pool.hdrs = p;
			pool.nhdrs++;
		} else {
			sk_free(p);
		}
		return;
	}
	if (pool.nfree < POOL_MAX && pool_on()) {
		p->next = pool.free;
		pool.free = p;
		pool.nfree++;
	} else {
		sk_free(p);
	}
}

void sk_pkt_free(struct sk_pkt *p)
{
	while (p) {
		struct sk_pkt *next = p->next;
		SK_ASSERT(p->refcnt > 0);
		if (--p->refcnt == 0)
			seg_release(p);
		p = next;
	}
}

void sk_pkt_free_list(struct sk_pkt *p)
{
	while (p) {
		struct sk_pkt *next = p->nextpkt;
		sk_pkt_free(p);
		p = next;
	}
}

void sk_pkt_trim(struct sk_pkt *p, uint32_t len)
{
	struct sk_pkt *s = p;
	uint32_t left = len;
	uint16_t nsegs = 1;

	if (len >= p->pkt_len)
		return;
	/* Find the segment holding byte len-1 (the head when len is 0). */
	while (left > s->len && s->next) {
		left -= s->len;
		s = s->next;
		nsegs++;
	}
	s->len = left;
	sk_pkt_free(s->next);
	s->next = NULL;
	p->pkt_len = len;
	p->nsegs = nsegs;
}

uint8_t *sk_pkt_pullup(struct sk_pkt *p, uint32_t n)
{
	uint32_t need, left;
	struct sk_pkt *s;

	if (p->len >= n)
		return p->data;
	if (n > p->pkt_len || p->refcnt > 1 || sk_pkt_tailroom(p) < n - p->len)
		return NULL;
	/*
	 * A shared segment must not be changed: it may only be used up
	 * whole (dropping our reference), not cut.  Check first so that a
	 * refusal leaves the packet as it was.
	 */
	need = n - p->len;
	for (s = p->next, left = need; left && s; s = s->next) {
		if (s->len > left && s->refcnt > 1)
			return NULL;
		left -= s->len < left ? s->len : left;
	}
	if (left)
		return NULL;	/* pkt_len claims more than the chain has */
	while (need) {
		s = p->next;
		uint32_t k = s->len < need ? s->len : need;
		memcpy(p->data + p->len, s->data, k);
		p->len += k;
		need -= k;
		if (k == s->len) {
			p->next = s->next;
			s->next = NULL;
			p->nsegs--;
			sk_pkt_free(s);
		} else {
			s->data += k;
			s->len -= k;
		}
	}
	return p->data;
}

int sk_pkt_copy_out(const struct sk_pkt *p, uint32_t off, uint32_t len, void *dst)
{
	uint8_t *d = dst;

	if (off > p->pkt_len || len > p->pkt_len - off)
		return -EINVAL;
	while (p && off >= p->len) {
		off -= p->len;
		p = p->next;
	}
	while (len) {
		if (!p)
			return -EINVAL;	/* pkt_len larger than the chain */
		uint32_t k = p->len - off < len ? p->len - off : len;
		memcpy(d, p->data + off, k);
		d += k;
		len -= k;
		off = 0;
		p = p->next;
	}
	return 0;
}

struct sk_pkt *sk_pkt_copy(const struct sk_pkt *p)
{
	struct sk_pkt *head = sk_pkt_alloc(), *tail;
	const struct sk_pkt *s = p;
	uint32_t off = 0;

	if (!head)
		return NULL;
	head->ol_flags = p->ol_flags;
	head->hash = p->hash;
	head->l2_len = p->l2_len;
	head->l3_len = p->l3_len;
	head->l4_len = p->l4_len;
	head->meta[0] = p->meta[0];
	head->meta[1] = p->meta[1];
	tail = head;
	/* Fill each fresh buffer to its data room, whatever the source's
	 * segmentation: a frame of up to SK_PKT_DATAROOM comes out flat. */
	for (; s; s = s->next, off = 0) {
		while (off < s->len) {
			if (tail->len == SK_PKT_DATAROOM) {
				struct sk_pkt *n = sk_pkt_alloc();
				if (!n) {
					sk_pkt_free(head);
					return NULL;
				}
				tail->next = n;
				tail = n;
				head->nsegs++;
			}
			uint32_t room = SK_PKT_DATAROOM - tail->len;
			uint32_t k = s->len - off < room ? s->len - off : room;
			memcpy(tail->data + tail->len, s->data + off, k);
			tail->len += k;
			head->pkt_len += k;
			off += k;
		}
	}
	return head;
}

void sk_pkt_stats(struct sk_pkt_stats *out)
{
	out->allocs = pool.allocs;
	out->frees = pool.frees;
	out->alloc_failures = pool.alloc_failures;
	out->cached = pool.nfree;
}

void sk_pkt_pool_trim(void)
{
	while (pool.free) {
		struct sk_pkt *p = pool.free;
		pool.free = p->next;
		sk_free(p);
	}
	while (pool.hdrs) {
		struct sk_pkt *p = pool.hdrs;
		pool.hdrs = p->next;
		sk_free(p);
	}
	pool.nfree = pool.nhdrs = 0;
}
