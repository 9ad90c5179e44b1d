/*
 * proto.h - what the memcached front ends share (internal to apps/memcached).
 *
 * A session (struct mc_sess) is one client's protocol state: a TCP
 * connection (conn.c) or one UDP datagram at a time (udp.c).  Its life is a
 * loop of three steps, driven by conn.c / udp.c:
 *
 *   parse   mc_sess_parse() reads complete commands from a byte range
 *           (struct mc_input) and appends them to the session's batch: one
 *           struct mc_cmd per command (how to answer it) and zero or more
 *           struct mc_req (what the store must do).  It stops when the input
 *           runs dry, the batch is full, or a command must run alone
 *           (flush_all, stats, quit: a "barrier").
 *   run     mc_sess_run() hands every request of the batch to ONE mc_exec()
 *           (so a pipeline of gets costs one message per owner shard), then
 *           formats every answer, in request order, into the output.
 *   output  struct mc_out gathers answers in a staging buffer and hands them
 *           to the socket in few large writes; big values go by reference
 *           from item memory (sk_write_ref).  UDP cuts messages into
 *           datagrams instead.
 *
 * The protocols live in proto_text.c (classic text), proto_meta.c (mg, ms,
 * md, ma, me, mn) and proto_bin.c (binary); the session core, the output and
 * the TCP loop in conn.c.  Parsing never allocates: lines are parsed in
 * place, tokens are offsets, keys are copied into the request (which must
 * outlive the input buffer anyway), values go straight into the new item.
 */
#ifndef SK_MC_PROTO_H
#define SK_MC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "skerry/future.h"

struct sk_sock;
struct sk_udp;

#define MC_VERSION	"1.6.18-skerry"	/* what "version" answers */
#define MC_BATCH_CMDS	64	/* commands per batch */
#define MC_BATCH_REQS	64	/* store requests per batch (multi-get chunks) */
#define MC_STAGE_SIZE	16384	/* TCP output staging buffer */
#define MC_COPY_MAX	1024	/* values up to this are copied, not referenced */
#define MC_LINE_MAX	2048	/* a line without "\n" longer than this closes
				 * the connection, as stock (except get/gets) */
#define MC_GET_LINE_MAX	(1u << 20)	/* longest multi-get line we buffer */
#define MC_META_MAXTOK	20	/* meta: more tokens than this is an error */
#define MC_META_OPAQUE	32	/* longest O token (with the 'O'), as stock */

/* ---- input --------------------------------------------------------------- */

/* A byte range to parse; the parser advances pos over what it consumed. */
struct mc_input {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool final;	/* no more bytes will follow (a UDP datagram) */
};

enum mc_parse_rc {
	MC_P_OK,	/* one command done: go on */
	MC_P_MORE,	/* consumed what it could; needs more input */
	MC_P_FULL,	/* the batch is full or ends with a barrier: run it */
	MC_P_CLOSE,	/* close the connection (after what is queued) */
};

/* ---- output -------------------------------------------------------------- */

struct mc_out {
	char *buf;		/* staging area */
	size_t len, cap;
	struct sk_sock *sock;	/* TCP: where flushes go */
	struct mc_udp_out *udp;	/* UDP: message assembly (udp.c) */
	uint64_t written;	/* bytes handed on (for bytes_written) */
	int err;		/* first socket error; output is dropped after it */
};

/* Make room for @n more bytes (flushing or growing); NULL only on error. */
char *mc_out_room_slow(struct mc_out *o, size_t n);
/* Hand the staged bytes to the socket (TCP; no-op for UDP). */
void mc_out_flush(struct mc_out *o);
/* Append a value (+@n bytes at @data inside @it), taking the caller's
 * reference to @it: copied when small, else sent from item memory. */
void mc_out_value(struct mc_out *o, struct mc_item *it, const char *data, size_t n);
/* UDP (udp.c): room for @n more bytes in the message being assembled. */
void mc_udp_out_grow(struct mc_out *o, size_t n);
/* UDP: the answer object ends here (stock sends each as its own message);
 * an empty one is sent only with @empty_too (a multi-get miss).  TCP: no-op. */
void mc_out_boundary(struct mc_out *o, bool empty_too);

static inline char *mc_out_room(struct mc_out *o, size_t n)
{
	if (SK_LIKELY(o->cap - o->len >= n))
		return o->buf + o->len;
	return mc_out_room_slow(o, n);
}

static inline void mc_out_commit(struct mc_out *o, const char *end)
{
	o->len = (size_t)(end - o->buf);
}

static inline void mc_out_str(struct mc_out *o, const char *s, size_t n)
{
	char *p = mc_out_room(o, n);
	if (SK_LIKELY(p != NULL)) {
		memcpy(p, s, n);
		o->len += n;
	}
}

#define MC_OUT_LIT(o, lit) mc_out_str((o), (lit), sizeof(lit) - 1)

/* ---- numbers ------------------------------------------------------------- */

/* Decimal digits of @v at @p; returns the end.  No terminator. */
static inline char *mc_fmt_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static inline char *mc_fmt_i64(char *p, int64_t v)
{
	if (v < 0) {
		*p++ = '-';
		return mc_fmt_u64(p, (uint64_t)0 - (uint64_t)v);
	}
	return mc_fmt_u64(p, (uint64_t)v);
}

/*
 * Stock's safe_strto* on a token (not NUL-terminated): leading white space
 * and a sign are allowed, then digits, then the token's end or any white
 * space (whatever follows it is ignored).  Values wrap like stock's casts:
 * mc_strtoul keeps the low 32 bits, mc_strtol the low 32 bits of a long.
 */
bool mc_strtoull(const char *s, size_t n, uint64_t *out);
bool mc_strtoul(const char *s, size_t n, uint32_t *out);
bool mc_strtol(const char *s, size_t n, int32_t *out);

/* ---- tokens -------------------------------------------------------------- */

struct mc_tok {
	uint32_t off, len;	/* in the line */
};

#define MC_MAX_TOKENS 24	/* as stock: 23 words and the "rest" */

/*
 * Split @line (@n bytes) at spaces as stock does, into at most
 * MC_MAX_TOKENS - 1 words.  Returns stock's ntokens: the words plus one
 * terminal entry, whose off is where an unsplit rest starts (len 0).
 */
unsigned mc_tokenize(const char *line, size_t n, struct mc_tok *t);

/* ---- commands and batches ----------------------------------------------- */

/* mc_cmd.proto: who formats the answer. */
enum { MC_CP_TEXT, MC_CP_META, MC_CP_BIN };

/* mc_cmd.flags */
#define MC_CF_NOREPLY	0x01	/* answer nothing (text noreply, quiet binary) */
#define MC_CF_CAS	0x02	/* gets/gats: print the cas */
#define MC_CF_MORE	0x04	/* a multi-get chunk: more keys follow */
#define MC_CF_BARRIER	0x08	/* runs after the requests, alone (async) */
#define MC_CF_TOUCH	0x10	/* gat/gats */

struct mc_meta_cmd {
	uint8_t nret;			/* return flags in ret[] */
	uint8_t vflags;			/* MC_MF_* */
	uint8_t nopaque;		/* length of opaque[] (with the 'O') */
	char ret[MC_META_MAXTOK];	/* flags to echo, in request order */
	char opaque[MC_META_OPAQUE];
};
#define MC_MF_VALUE	0x01	/* v */
#define MC_MF_QUIET	0x02	/* q */
#define MC_MF_B64	0x04	/* b: the key travels base64-encoded */
#define MC_MF_DECR	0x08	/* ma: decrement */
#define MC_MF_VIVIFY	0x10	/* ma N / mg N */

struct mc_bin_cmd {
	uint8_t opcode;		/* as sent (quiet variants included) */
	uint32_t opaque;	/* echoed, wire order */
	uint32_t extra;		/* opcode specific (stats: subcommand) */
};

struct mc_cmd {
	uint8_t proto;		/* MC_CP_* */
	uint8_t kind;		/* protocol specific */
	uint8_t flags;		/* MC_CF_* */
	uint8_t phase;		/* barriers: 0 = not started */
	uint16_t first;		/* first request in the batch */
	uint16_t nreq;		/* requests it owns */
	union {
		struct {
			const char *str;	/* a fixed answer, CRLF included */
			uint32_t len;
			uint32_t arg;		/* flush_all: mc time; stats: which */
		} t;
		struct mc_meta_cmd m;
		struct mc_bin_cmd b;
	} u;
};

struct mc_batch {
	struct mc_batch *next;	/* per-shard free list */
	unsigned ncmd, nreq;
	unsigned replied;	/* answers formatted so far */
	int exec_err;		/* mc_exec failed: every request answers OOM */
	int barrier_err;	/* the barrier's future failed */
	struct mc_stats stats;	/* "stats" gathers here */
	struct mc_cmd cmd[MC_BATCH_CMDS];
	struct mc_req req[MC_BATCH_REQS];
	struct mc_res res[MC_BATCH_REQS];
	char stage[MC_STAGE_SIZE];
};

/* ---- sessions ------------------------------------------------------------ */

enum { MC_PROTO_NONE, MC_PROTO_TEXT, MC_PROTO_BIN };
enum { MC_RS_CMD, MC_RS_VALUE, MC_RS_SWALLOW };

struct mc_sess {
	struct mc_out out;
	struct mc_batch *b;		/* while there is work; pooled per shard */
	void (*resume)(struct mc_sess *s);	/* mc_sess_run() finished late */
	uint8_t proto;			/* MC_PROTO_* */
	uint8_t rstate;			/* MC_RS_* */
	bool udp;
	bool quit;			/* close once the answers are out */
	bool running;			/* mc_sess_run() waits on a future */
	uint32_t need;			/* MORE: bytes the next command needs
					 * contiguous (binary); 0 = a line */
	uint32_t get_resume;		/* offset of the next key of a chunked
					 * multi-get in its line; 0 = none */
	/* a store waiting for its value (MC_RS_VALUE) */
	struct mc_item *vitem;
	uint32_t vlen, vdone;		/* bytes to copy into the item */
	bool vcrlf;			/* text: the value ends with "\r\n" */
	struct mc_cmd vcmd;
	struct mc_req vreq;
	uint64_t swallow;		/* MC_RS_SWALLOW: bytes to drop */
};

/* Set up / tear down a session (mc_sess_fini drops a pending value). */
void mc_sess_init(struct mc_sess *s, struct sk_sock *sock, struct mc_udp_out *udp);
void mc_sess_fini(struct mc_sess *s);

/* Take a batch if the session has none.  false: -ENOMEM. */
bool mc_sess_hold(struct mc_sess *s);
/* Give an empty batch back to the shard's pool (when idle). */
void mc_sess_release(struct mc_sess *s);

/* Parse @in into the batch (mc_sess_hold() first). */
enum mc_parse_rc mc_sess_parse(struct mc_sess *s, struct mc_input *in);

/*
 * Run the batch: execute its requests and format every answer.  true: all
 * done now.  false: waiting for the store (or a barrier); s->resume(s) is
 * called when everything is done.  The batch is empty again afterwards.
 */
bool mc_sess_run(struct mc_sess *s);

/* True when the batch cannot take another command. */
static inline bool mc_batch_full(const struct mc_batch *b)
{
	return b->ncmd >= MC_BATCH_CMDS || b->nreq >= MC_BATCH_REQS;
}

/* The next free command slot, zeroed enough to be filled in. */
static inline struct mc_cmd *mc_cmd_new(struct mc_batch *b, uint8_t proto, uint8_t kind)
{
	struct mc_cmd *c = &b->cmd[b->ncmd];
	c->proto = proto;
	c->kind = kind;
	c->flags = 0;
	c->phase = 0;
	c->first = (uint16_t)b->nreq;
	c->nreq = 0;
	return c;
}

/* Commit the command last returned by mc_cmd_new(). */
static inline void mc_cmd_add(struct mc_batch *b)
{
	b->ncmd++;
}

/* The next free request, for mc_cmd_new()'s command. */
static inline struct mc_req *mc_req_new(struct mc_batch *b, struct mc_cmd *c,
					uint8_t op, const char *key, size_t nkey)
{
	struct mc_req *r = &b->req[b->nreq];
	b->res[b->nreq].item = NULL;
	b->nreq++;
	c->nreq++;
	r->op = op;
	r->mode = 0;
	r->nkey = (uint8_t)nkey;
	r->flags = 0;
	r->exptime = 0;
	r->cas = 0;
	r->item = NULL;
	memcpy(r->key, key, nkey);
	r->key[nkey] = '\0';
	return r;
}

/* A fixed answer (CRLF included) as a command, in order with the rest. */
void mc_sess_static(struct mc_sess *s, uint8_t proto, const char *str, size_t len,
		    bool noreply);
#define MC_STATIC(s, lit, noreply) \
	mc_sess_static((s), MC_CP_TEXT, (lit), sizeof(lit) - 1, (noreply))

/*
 * Read the value of the store prepared in s->vcmd / s->vreq (the new item
 * in s->vitem, s->vlen bytes to fill): copy what @in holds, and once it is
 * complete check it and commit the command.  MC_P_OK when committed,
 * MC_P_MORE when more bytes are needed, MC_P_FULL when the batch must run
 * first.  Callers set s->rstate = MC_RS_VALUE and call it.
 */
enum mc_parse_rc mc_sess_value(struct mc_sess *s, struct mc_input *in);

/* Drop the next @n input bytes (the value of a refused store). */
static inline void mc_sess_swallow(struct mc_sess *s, uint64_t n)
{
	s->swallow = n;
	s->rstate = MC_RS_SWALLOW;
}

/* ---- protocols ----------------------------------------------------------- */

/* proto_text.c: one text command line (already known complete). */
enum mc_parse_rc mc_text_parse(struct mc_sess *s, struct mc_input *in);
void mc_text_reply(struct mc_sess *s, struct mc_cmd *c);
/* proto_text.c: the async part of a barrier; ready future = done. */
sk_future mc_text_barrier(struct mc_sess *s, struct mc_cmd *c);

/* proto_meta.c: a meta command line split into tokens. */
enum mc_parse_rc mc_meta_parse(struct mc_sess *s, struct mc_input *in, const char *line,
			       struct mc_tok *t, unsigned ntok, size_t line_end);
void mc_meta_reply(struct mc_sess *s, struct mc_cmd *c);

/* proto_bin.c */
enum mc_parse_rc mc_bin_parse(struct mc_sess *s, struct mc_input *in);
void mc_bin_reply(struct mc_sess *s, struct mc_cmd *c);
sk_future mc_bin_barrier(struct mc_sess *s, struct mc_cmd *c);

/*
 * Stats lines shared by text ("STAT name value\r\n") and binary (one
 * packet each): emit(s, c, name, value) is called per line.
 */
typedef void (*mc_stat_emit_fn)(struct mc_sess *s, struct mc_cmd *c, const char *name,
				const char *val, size_t vlen);
enum { MC_STATS_GENERAL, MC_STATS_SETTINGS, MC_STATS_ITEMS, MC_STATS_SLABS,
       MC_STATS_SIZES, MC_STATS_CONNS };
void mc_stats_lines(struct mc_sess *s, struct mc_cmd *c, unsigned which,
		    const struct mc_stats *st, mc_stat_emit_fn emit);
/* Which "stats <sub>" names we know: MC_STATS_* or -1. */
int mc_stats_which(const char *name, size_t n);

/* Error counters stock keeps that mc_stats lacks (protocol side only). */
extern _Atomic uint64_t mc_store_too_large, mc_store_no_memory;

/* base64 (meta b flag): 0 on bad input; out may alias in for decode. */
size_t mc_b64_decode(const char *in, size_t n, char *out, size_t cap);
size_t mc_b64_encode(const char *in, size_t n, char *out, size_t cap);

#endif /* SK_MC_PROTO_H */
