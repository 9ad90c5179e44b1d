/*
 * proto_text.c - memcached's classic text protocol, as stock 1.6.18 speaks it.
 *
 * Roadmap:
 *   lines     mc_text_parse() takes one "\n"-terminated line in place: a
 *             fast path for "get ", else stock's tokenizer (spaces only, at
 *             most 24 tokens, tokens as offsets) and the command table
 *             (TEXT_COMMANDS, an X-macro).  Two-letter "m?" commands go to
 *             proto_meta.c.
 *   commands  each handler checks its line exactly as stock does (same
 *             token counts, number parsing and error strings) and adds a
 *             struct mc_cmd (+ requests) to the batch; storage commands
 *             then read their value into a new item (conn.c).
 *   answers   mc_text_reply() turns results into stock's lines; get answers
 *             are built without printf (hand-rolled numbers) and send the
 *             value from item memory.
 *   barriers  flush_all and stats run after the requests before them:
 *             mc_text_barrier() starts their cross-shard future.
 *   shared    number parsing, the tokenizer and the stats lines are used by
 *             proto_meta.c and proto_bin.c too.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mc.h"
#include "proto.h"
#include "skerry/log.h"
#include "skerry/shard.h"

_Atomic uint64_t mc_store_too_large, mc_store_no_memory;

/* ---- numbers, as stock's safe_strto*() ------------------------------------ */

static inline bool is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * strtoull() on a token: *mag gets the magnitude, *neg the sign.  false
 * when there are no digits, on overflow (ERANGE), or when the digits are
 * followed by something other than white space or the token's end.
 */
static bool scan_number(const char *s, size_t n, uint64_t *mag, bool *neg)
{
	size_t i = 0;
	uint64_t v = 0;

	while (i < n && is_space(s[i]))
		i++;
	*neg = false;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		*neg = s[i++] == '-';
	size_t digits = i;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (i == digits || (i < n && !is_space(s[i])))
		return false;
	*mag = v;
	return true;
}

bool mc_strtoull(const char *s, size_t n, uint64_t *out)
{
	uint64_t v;
	bool neg;

	if (!scan_number(s, n, &v, &neg))
		return false;
	if (neg)
		v = (uint64_t)0 - v;
	/* A "negative" result is refused only when a '-' was written. */
	if ((int64_t)v < 0 && neg)
		return false;
	*out = v;
	return true;
}

bool mc_strtoul(const char *s, size_t n, uint32_t *out)
{
	uint64_t v;

	if (!mc_strtoull(s, n, &v))
		return false;
	*out = (uint32_t)v;	/* stock stores an unsigned long in a uint32 */
	return true;
}

bool mc_strtol(const char *s, size_t n, int32_t *out)
{
	uint64_t v;
	bool neg;

	if (!scan_number(s, n, &v, &neg))
		return false;
	if (v > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
		return false;	/* ERANGE for a long */
	if (neg)
		v = (uint64_t)0 - v;
	*out = (int32_t)(uint32_t)v;	/* stock stores a long in an int32 */
	return true;
}

/* ---- tokens ---------------------------------------------------------------- */

unsigned mc_tokenize(const char *line, size_t n, struct mc_tok *t)
{
	unsigned nt = 0;
	size_t s = 0, e;

	for (e = 0; e < n; e++) {
		if (line[e] != ' ')
			continue;
		if (s != e) {
			t[nt].off = (uint32_t)s;
			t[nt].len = (uint32_t)(e - s);
			if (++nt == MC_MAX_TOKENS - 1) {
				s = e + 1;
				t[nt].off = (uint32_t)s;
				t[nt].len = 0;
				return nt + 1;
			}
		}
		s = e + 1;
	}
	if (s != e) {
		t[nt].off = (uint32_t)s;
		t[nt].len = (uint32_t)(e - s);
		nt++;
	}
	t[nt].off = (uint32_t)n;
	t[nt].len = 0;
	return nt + 1;
}

static inline bool tok_is(const char *line, const struct mc_tok *t, const char *w, size_t n)
{
	return t->len == n && memcmp(line + t->off, w, n) == 0;
}
#define TOK_IS(line, t, lit) tok_is((line), (t), (lit), sizeof(lit) - 1)

/* Stock's set_noreply_maybe(): the last word is "noreply". */
static inline bool noreply_maybe(const char *line, const struct mc_tok *t, unsigned nt)
{
	return nt >= 2 && TOK_IS(line, &t[nt - 2], "noreply");
}

/* ---- command kinds --------------------------------------------------------- */

enum {
	TK_STATIC,	/* c->u.t.str */
	TK_GET,
	TK_STORE,
	TK_DELETE,
	TK_ARITH,
	TK_TOUCH,
	TK_SILENT,	/* a request nobody answers (delete after a refused set) */
	TK_FLUSH,
	TK_STATS,
	TK_STATS_RESET,
};

/* A parsed line: what the handlers get. */
struct line {
	const char *p;		/* the line, without "\r\n" */
	size_t n;
	size_t consumed;	/* bytes to consume for it (with "\n") */
	struct mc_tok t[MC_MAX_TOKENS];
	unsigned nt;		/* stock's ntokens (words + 1) */
};

static inline enum mc_parse_rc done(struct mc_input *in, const struct line *l)
{
	in->pos += l->consumed;
	return MC_P_OK;
}

static enum mc_parse_rc answer(struct mc_sess *s, struct mc_input *in,
			       const struct line *l, const char *str, size_t len,
			       bool noreply)
{
	mc_sess_static(s, MC_CP_TEXT, str, len, noreply);
	return done(in, l);
}
#define ANSWER(s, in, l, lit, nr) answer((s), (in), (l), (lit), sizeof(lit) - 1, (nr))

#define WANT_TOKENS(min, max)                                                  \
	do {                                                                   \
		if ((min) > 0 && l->nt < (unsigned)(min))                      \
			return ANSWER(s, in, l, "ERROR\r\n", false);           \
		if ((max) > 0 && l->nt > (unsigned)(max))                      \
			return ANSWER(s, in, l, "ERROR\r\n", false);           \
	} while (0)
#define WANT_TOKENS_OR(a, b)                                                   \
	do {                                                                   \
		if (l->nt != (unsigned)(a) && l->nt != (unsigned)(b))          \
			return ANSWER(s, in, l, "ERROR\r\n", false);           \
	} while (0)

/* ---- retrieval ------------------------------------------------------------- */

/*
 * get/gets/gat/gats: every key of the line in one command, answered in key
 * order.  Keys are validated up front (stock answers only the error when
 * any key is too long), then added to the batch; a line with more keys than
 * the batch holds is run in chunks without being consumed, resuming at
 * s->get_resume.
 */
static enum mc_parse_rc get_keys(struct mc_sess *s, struct mc_input *in,
				 const struct line *l, size_t keys, bool cas, bool touch,
				 uint32_t exptime)
{
	struct mc_batch *b = s->b;
	const char *p = l->p;
	size_t n = l->n, i;

	if (s->get_resume == 0) {
		unsigned nkeys = 0;
		for (i = keys; i < n;) {
			while (i < n && p[i] == ' ')
				i++;
			size_t k = i;
			while (i < n && p[i] != ' ')
				i++;
			if (i - k > MC_KEY_MAX)
				return ANSWER(s, in, l,
					      "CLIENT_ERROR bad command line format\r\n", false);
			nkeys += i > k;
		}
		/* Start a big multi-get in a fresh batch. */
		if (nkeys > MC_BATCH_REQS - b->nreq && b->ncmd)
			return MC_P_FULL;
	} else {
		keys = s->get_resume;
	}

	struct mc_cmd *c = mc_cmd_new(b, MC_CP_TEXT, TK_GET);
	c->flags = (uint8_t)((cas ? MC_CF_CAS : 0) | (touch ? MC_CF_TOUCH : 0));
	for (i = keys; i < n && b->nreq < MC_BATCH_REQS;) {
		while (i < n && p[i] == ' ')
			i++;
		size_t k = i;
		while (i < n && p[i] != ' ')
			i++;
		if (i == k)
			break;
		struct mc_req *r = mc_req_new(b, c, MC_OP_GET, p + k, i - k);
		if (touch) {
			r->flags = MC_RF_TOUCH;
			r->exptime = exptime;
		}
	}
	while (i < n && p[i] == ' ')
		i++;
	struct mc_stats *st = mc_stats_local();
	if (touch)
		st->cmd_touch += c->nreq;
	else
		st->cmd_get += c->nreq;
	mc_cmd_add(b);
	if (i < n) {
		c->flags |= MC_CF_MORE;
		s->get_resume = (uint32_t)i;
		return MC_P_FULL;
	}
	s->get_resume = 0;
	return done(in, l);
}

static enum mc_parse_rc cmd_get(struct mc_sess *s, struct mc_input *in, struct line *l,
				unsigned arg)
{
	bool cas = arg & 1, touch = arg & 2;
	uint32_t exptime = 0;

	WANT_TOKENS(3, 0);
	if (touch) {
		int32_t e;
		if (!mc_strtol(l->p + l->t[1].off, l->t[1].len, &e))
			return ANSWER(s, in, l, "CLIENT_ERROR invalid exptime argument\r\n",
				      false);
		exptime = mc_exptime(e);
		return get_keys(s, in, l, l->t[1].off + l->t[1].len, cas, true, exptime);
	}
	return get_keys(s, in, l, l->t[1].off, cas, false, 0);
}

/* ---- storage --------------------------------------------------------------- */

/*
 * A store refused before its value arrived: answer, drop the value, and
 * for set (as stock) delete the old item so no stale value survives.
 */
static enum mc_parse_rc store_refused(struct mc_sess *s, struct mc_input *in, size_t consumed,
				      uint8_t proto, int err, bool noreply, bool unlink,
				      const char *key, size_t nkey, uint64_t swallow)
{
	if (err == -E2BIG) {
		atomic_fetch_add_explicit(&mc_store_too_large, 1, memory_order_relaxed);
		mc_sess_static(s, proto, "SERVER_ERROR object too large for cache\r\n", 41,
			       noreply);
	} else {
		atomic_fetch_add_explicit(&mc_store_no_memory, 1, memory_order_relaxed);
		mc_sess_static(s, proto, "SERVER_ERROR out of memory storing object\r\n", 43,
			       noreply);
	}
	if (unlink && !mc_batch_full(s->b)) {
		struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_TEXT, TK_SILENT);
		mc_req_new(s->b, c, MC_OP_DELETE, key, nkey);
		mc_cmd_add(s->b);
	}
	in->pos += consumed;
	mc_sess_swallow(s, swallow);
	return MC_P_OK;
}

static enum mc_parse_rc cmd_store(struct mc_sess *s, struct mc_input *in, struct line *l,
				  unsigned mode)
{
	bool is_cas = mode == 99;
	const char *p = l->p;
	uint32_t flags;
	int32_t exptime, vlen;
	uint64_t cas = 0;

	if (is_cas)
		WANT_TOKENS_OR(7, 8);
	else
		WANT_TOKENS_OR(6, 7);
	bool noreply = noreply_maybe(p, l->t, l->nt);
	if (l->t[1].len > MC_KEY_MAX)
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);
	if (!mc_strtoul(p + l->t[2].off, l->t[2].len, &flags) ||
	    !mc_strtol(p + l->t[3].off, l->t[3].len, &exptime) ||
	    !mc_strtol(p + l->t[4].off, l->t[4].len, &vlen))
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);
	if (is_cas && !mc_strtoull(p + l->t[5].off, l->t[5].len, &cas))
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);
	/* "cas ... 0" matches nothing (no item has cas 0); to the store 0
	 * means "no cas", so ask with a value no item has either. */
	if (is_cas && cas == 0)
		cas = UINT64_MAX;
	if (vlen < 0 || vlen > INT_MAX - 2)
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);

	const char *key = p + l->t[1].off;
	size_t nkey = l->t[1].len;
	int err;
	struct mc_item *it = mc_item_new(key, (unsigned)nkey, flags, mc_exptime(exptime),
					 (uint32_t)vlen, &err);
	if (!it)
		return store_refused(s, in, l->consumed, MC_CP_TEXT, err, noreply,
				     mode == MC_SET, key, nkey, (uint64_t)vlen + 2);

	struct mc_cmd *c = &s->vcmd;
	c->proto = MC_CP_TEXT;
	c->kind = TK_STORE;
	c->flags = noreply ? MC_CF_NOREPLY : 0;
	c->phase = 0;
	struct mc_req *r = &s->vreq;
	r->op = MC_OP_STORE;
	r->mode = (uint8_t)(is_cas ? MC_SET : mode);
	r->nkey = (uint8_t)nkey;
	r->flags = 0;
	r->cas = cas;
	memcpy(r->key, key, nkey);
	r->key[nkey] = '\0';
	s->vitem = it;
	s->vlen = (uint32_t)vlen + 2;	/* the value and its "\r\n" */
	s->vdone = 0;
	s->vcrlf = true;
	s->rstate = MC_RS_VALUE;
	in->pos += l->consumed;
	return mc_sess_value(s, in);
}

/* ---- other keyed commands -------------------------------------------------- */

static enum mc_parse_rc cmd_delete(struct mc_sess *s, struct mc_input *in, struct line *l,
				   unsigned arg)
{
	const char *p = l->p;
	bool noreply = false;

	(void)arg;
	WANT_TOKENS(3, 5);
	if (l->nt > 3) {
		/* The legacy "delete <key> 0" form stock still accepts. */
		bool hold_is_zero = TOK_IS(p, &l->t[2], "0");
		noreply = noreply_maybe(p, l->t, l->nt);
		bool valid = (l->nt == 4 && (hold_is_zero || noreply)) ||
			     (l->nt == 5 && hold_is_zero && noreply);
		if (!valid)
			return ANSWER(s, in, l, "CLIENT_ERROR bad command line format.  "
					     "Usage: delete <key> [noreply]\r\n", noreply);
	}
	if (l->t[1].len > MC_KEY_MAX)
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_TEXT, TK_DELETE);
	if (noreply)
		c->flags |= MC_CF_NOREPLY;
	mc_req_new(s->b, c, MC_OP_DELETE, p + l->t[1].off, l->t[1].len);
	mc_cmd_add(s->b);
	return done(in, l);
}

static enum mc_parse_rc cmd_arith(struct mc_sess *s, struct mc_input *in, struct line *l,
				  unsigned mode)
{
	const char *p = l->p;
	uint64_t delta;

	WANT_TOKENS_OR(4, 5);
	bool noreply = noreply_maybe(p, l->t, l->nt);
	if (l->t[1].len > MC_KEY_MAX)
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);
	if (!mc_strtoull(p + l->t[2].off, l->t[2].len, &delta))
		return ANSWER(s, in, l, "CLIENT_ERROR invalid numeric delta argument\r\n",
			      noreply);
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_TEXT, TK_ARITH);
	if (noreply)
		c->flags |= MC_CF_NOREPLY;
	struct mc_req *r = mc_req_new(s->b, c, MC_OP_ARITH, p + l->t[1].off, l->t[1].len);
	r->mode = (uint8_t)mode;
	r->delta = delta;
	r->cas = 0;
	mc_cmd_add(s->b);
	return done(in, l);
}

static enum mc_parse_rc cmd_touch(struct mc_sess *s, struct mc_input *in, struct line *l,
				  unsigned arg)
{
	const char *p = l->p;
	int32_t e;

	(void)arg;
	WANT_TOKENS_OR(4, 5);
	bool noreply = noreply_maybe(p, l->t, l->nt);
	if (l->t[1].len > MC_KEY_MAX)
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);
	if (!mc_strtol(p + l->t[2].off, l->t[2].len, &e))
		return ANSWER(s, in, l, "CLIENT_ERROR invalid exptime argument\r\n", noreply);
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_TEXT, TK_TOUCH);
	if (noreply)
		c->flags |= MC_CF_NOREPLY;
	struct mc_req *r = mc_req_new(s->b, c, MC_OP_TOUCH, p + l->t[1].off, l->t[1].len);
	r->exptime = mc_exptime(e);
	mc_stats_local()->cmd_touch++;
	mc_cmd_add(s->b);
	return done(in, l);
}

/* ---- server commands ------------------------------------------------------- */

/* A command that must run alone after the ones before it. */
static enum mc_parse_rc barrier(struct mc_sess *s, struct mc_input *in, const struct line *l,
				uint8_t kind, uint32_t arg, bool noreply)
{
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_TEXT, kind);
	c->flags = MC_CF_BARRIER | (noreply ? MC_CF_NOREPLY : 0);
	c->u.t.arg = arg;
	mc_cmd_add(s->b);
	in->pos += l->consumed;
	return MC_P_FULL;
}

static enum mc_parse_rc cmd_flush_all(struct mc_sess *s, struct mc_input *in,
				      struct line *l, unsigned arg)
{
	int32_t e = 0;

	(void)arg;
	WANT_TOKENS(2, 4);
	bool noreply = noreply_maybe(l->p, l->t, l->nt);
	mc_stats_local()->cmd_flush++;
	if (l->nt != (noreply ? 3u : 2u) &&
	    !mc_strtol(l->p + l->t[1].off, l->t[1].len, &e))
		return ANSWER(s, in, l, "CLIENT_ERROR invalid exptime argument\r\n", noreply);
	return barrier(s, in, l, TK_FLUSH, e > 0 ? mc_exptime(e) : mc_now(), noreply);
}

static enum mc_parse_rc cmd_version(struct mc_sess *s, struct mc_input *in, struct line *l,
				    unsigned arg)
{
	(void)arg;
	return ANSWER(s, in, l, "VERSION " MC_VERSION "\r\n", false);
}

static enum mc_parse_rc cmd_verbosity(struct mc_sess *s, struct mc_input *in,
				      struct line *l, unsigned arg)
{
	uint32_t level;

	(void)arg;
	WANT_TOKENS_OR(3, 4);
	bool noreply = noreply_maybe(l->p, l->t, l->nt);
	if (!mc_strtoul(l->p + l->t[1].off, l->t[1].len, &level))
		return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n", noreply);
	/* Settings are read-only once the shards run: accepted, not applied. */
	return ANSWER(s, in, l, "OK\r\n", noreply);
}

static enum mc_parse_rc cmd_quit(struct mc_sess *s, struct mc_input *in, struct line *l,
				 unsigned arg)
{
	(void)arg;
	in->pos += l->consumed;
	s->quit = true;
	return MC_P_CLOSE;
}

static enum mc_parse_rc cmd_shutdown(struct mc_sess *s, struct mc_input *in,
				     struct line *l, unsigned arg)
{
	(void)arg;
	if (!mc_settings.enable_shutdown)
		return ANSWER(s, in, l, "ERROR: shutdown not enabled\r\n", false);
	if (l->nt == 2 || (l->nt == 3 && TOK_IS(l->p, &l->t[1], "graceful"))) {
		sk_log_info("shutdown requested by a client");
		sk_smp_request_stop(0);
		in->pos += l->consumed;
		s->quit = true;
		return MC_P_CLOSE;
	}
	return ANSWER(s, in, l, "CLIENT_ERROR invalid shutdown mode\r\n", false);
}

int mc_stats_which(const char *name, size_t n)
{
	static const struct { const char *name; int which; } subs[] = {
		{ "settings", MC_STATS_SETTINGS }, { "items", MC_STATS_ITEMS },
		{ "slabs", MC_STATS_SLABS },	   { "sizes", MC_STATS_SIZES },
		{ "conns", MC_STATS_CONNS },
	};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strlen(subs[i].name) == n && memcmp(subs[i].name, name, n) == 0)
			return subs[i].which;
	return -1;
}

static enum mc_parse_rc cmd_stats(struct mc_sess *s, struct mc_input *in, struct line *l,
				  unsigned arg)
{
	const char *p = l->p;

	(void)arg;
	if (l->nt == 2)
		return barrier(s, in, l, TK_STATS, MC_STATS_GENERAL, false);
	const struct mc_tok *sub = &l->t[1];
	if (TOK_IS(p, sub, "reset"))
		return barrier(s, in, l, TK_STATS_RESET, 0, false);
	if (TOK_IS(p, sub, "detail")) {
		if (l->nt < 4)
			return ANSWER(s, in, l,
				      "CLIENT_ERROR usage: stats detail on|off|dump\r\n", false);
		if (TOK_IS(p, &l->t[2], "on") || TOK_IS(p, &l->t[2], "off"))
			return ANSWER(s, in, l, "OK\r\n", false);
		if (TOK_IS(p, &l->t[2], "dump"))
			return ANSWER(s, in, l, "END\r\n", false);
		return ANSWER(s, in, l, "CLIENT_ERROR usage: stats detail on|off|dump\r\n",
			      false);
	}
	if (TOK_IS(p, sub, "cachedump")) {
		uint32_t id, limit;
		if (l->nt < 5)
			return ANSWER(s, in, l, "CLIENT_ERROR bad command line\r\n", false);
		if (!mc_strtoul(p + l->t[2].off, l->t[2].len, &id) ||
		    !mc_strtoul(p + l->t[3].off, l->t[3].len, &limit))
			return ANSWER(s, in, l, "CLIENT_ERROR bad command line format\r\n",
				      false);
		if (id >= 64)
			return ANSWER(s, in, l, "CLIENT_ERROR Illegal slab id\r\n", false);
		return ANSWER(s, in, l, "END\r\n", false);
	}
	int which = mc_stats_which(p + sub->off, sub->len);
	if (which < 0)
		return ANSWER(s, in, l, "ERROR\r\n", false);
	return barrier(s, in, l, TK_STATS, (uint32_t)which, false);
}

/*
 * The command table.  Handlers get the argument in the third column
 * (get: 1 = cas, 2 = touch; stores: the mode, 99 = cas).  Ordered by how
 * often clients send them.
 */
#define TEXT_COMMANDS(X)                                                       \
	X("get", cmd_get, 0)                                                   \
	X("set", cmd_store, MC_SET)                                            \
	X("gets", cmd_get, 1)                                                  \
	X("delete", cmd_delete, 0)                                             \
	X("add", cmd_store, MC_ADD)                                            \
	X("replace", cmd_store, MC_REPLACE)                                    \
	X("append", cmd_store, MC_APPEND)                                      \
	X("prepend", cmd_store, MC_PREPEND)                                    \
	X("cas", cmd_store, 99)                                                \
	X("incr", cmd_arith, MC_INCR)                                          \
	X("decr", cmd_arith, MC_DECR)                                          \
	X("touch", cmd_touch, 0)                                               \
	X("gat", cmd_get, 2)                                                   \
	X("gats", cmd_get, 3)                                                  \
	X("bget", cmd_get, 0)                                                  \
	X("flush_all", cmd_flush_all, 0)                                       \
	X("stats", cmd_stats, 0)                                               \
	X("version", cmd_version, 0)                                           \
	X("verbosity", cmd_verbosity, 0)                                       \
	X("quit", cmd_quit, 0)                                                 \
	X("shutdown", cmd_shutdown, 0)

typedef enum mc_parse_rc (*text_handler)(struct mc_sess *s, struct mc_input *in,
					 struct line *l, unsigned arg);
static const struct text_cmd {
	const char *name;
	uint8_t len;
	text_handler fn;
	unsigned arg;
} text_cmds[] = {
#define X(name, fn, arg) { name, sizeof(name) - 1, fn, arg },
	TEXT_COMMANDS(X)
#undef X
};

enum mc_parse_rc mc_text_parse(struct mc_sess *s, struct mc_input *in)
{
	const char *start = (const char *)in->p + in->pos;
	size_t avail = in->len - in->pos;
	const char *nl = memchr(start, '\n', avail);
	struct line l;

	if (!nl) {
		if (in->final)
			in->pos = in->len;	/* a UDP datagram: the rest is lost */
		return MC_P_MORE;
	}
	l.p = start;
	l.consumed = (size_t)(nl - start) + 1;
	l.n = (size_t)(nl - start);
	if (l.n > 1 && start[l.n - 1] == '\r')
		l.n--;
	/* Stock sees the line as a C string: it ends at a NUL. */
	const char *z = memchr(start, '\0', l.n);
	if (SK_UNLIKELY(z != NULL))
		l.n = (size_t)(z - start);

	/* The hot path: "get <key>..." needs no tokens. */
	if (l.n > 4 && memcmp(start, "get ", 4) == 0 && start[4] != ' ') {
		l.nt = 3;
		return get_keys(s, in, &l, 4, false, false, 0);
	}

	l.nt = mc_tokenize(start, l.n, l.t);
	if (l.nt < 2 || l.t[0].len < 2)
		return ANSWER(s, in, &l, "ERROR\r\n", false);
	const char *cmd = start + l.t[0].off;
	if (cmd[0] == 'm' && l.t[0].len == 2) {
		enum mc_parse_rc rc = mc_meta_parse(s, in, start, l.t, l.nt, l.consumed);
		return rc;
	}
	for (size_t i = 0; i < sizeof(text_cmds) / sizeof(text_cmds[0]); i++) {
		const struct text_cmd *tc = &text_cmds[i];
		if (tc->len == l.t[0].len && memcmp(tc->name, cmd, tc->len) == 0)
			return tc->fn(s, in, &l, tc->arg);
	}
	/* Stock hangs up on what looks like HTTP. */
	const struct mc_tok *last = &l.t[l.nt - 2];
	if (last->len >= 5 && memcmp(start + last->off, "HTTP/", 5) == 0) {
		in->pos += l.consumed;
		return MC_P_CLOSE;
	}
	return ANSWER(s, in, &l, "ERROR\r\n", false);
}

/* ---- answers --------------------------------------------------------------- */

static void reply_get(struct mc_sess *s, struct mc_cmd *c)
{
	struct mc_batch *b = s->b;
	struct mc_out *o = &s->out;
	unsigned end = (unsigned)c->first + c->nreq;

	for (unsigned i = c->first; i < end; i++) {
		struct mc_res *res = &b->res[i];
		struct mc_item *it = res->item;
		if (res->status == MC_OK && it) {
			/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n" */
			char *p = mc_out_room(o, 6 + MC_KEY_MAX + 3 * 21 + 2);
			if (p) {
				memcpy(p, "VALUE ", 6);
				p += 6;
				memcpy(p, mc_item_key(it), it->nkey);
				p += it->nkey;
				*p++ = ' ';
				p = mc_fmt_u64(p, it->client_flags);
				*p++ = ' ';
				p = mc_fmt_u64(p, it->nbytes);
				if (c->flags & MC_CF_CAS) {
					*p++ = ' ';
					p = mc_fmt_u64(p, res->cas);
				}
				*p++ = '\r';
				*p++ = '\n';
				mc_out_commit(o, p);
			}
			mc_out_value(o, it, mc_item_value(it), (size_t)it->nbytes + 2);
			res->item = NULL;
		}
		/* UDP: stock sends each key's answer as its own message. */
		if (s->udp && (i + 1 < end || (c->flags & MC_CF_MORE)))
			mc_out_boundary(o, true);
	}
	if (!(c->flags & MC_CF_MORE))
		MC_OUT_LIT(o, "END\r\n");
}

static void reply_store(struct mc_sess *s, struct mc_cmd *c)
{
	struct mc_out *o = &s->out;
	switch (s->b->res[c->first].status) {
	case MC_OK:
		MC_OUT_LIT(o, "STORED\r\n");
		break;
	case MC_EXISTS:
		MC_OUT_LIT(o, "EXISTS\r\n");
		break;
	case MC_MISS:
		MC_OUT_LIT(o, "NOT_FOUND\r\n");
		break;
	case MC_NOMEM:
		MC_OUT_LIT(o, "SERVER_ERROR out of memory storing object\r\n");
		break;
	default:	/* NOT_STORED, and append/prepend past -I, as stock */
		MC_OUT_LIT(o, "NOT_STORED\r\n");
		break;
	}
}

static void reply_arith(struct mc_sess *s, struct mc_cmd *c)
{
	struct mc_out *o = &s->out;
	struct mc_res *res = &s->b->res[c->first];

	switch (res->status) {
	case MC_OK: {
		char *p = mc_out_room(o, 22);
		if (p) {
			p = mc_fmt_u64(p, res->value);
			*p++ = '\r';
			*p++ = '\n';
			mc_out_commit(o, p);
		}
		break;
	}
	case MC_MISS:
		MC_OUT_LIT(o, "NOT_FOUND\r\n");
		break;
	case MC_NON_NUMERIC:
		MC_OUT_LIT(o, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
		break;
	default:
		MC_OUT_LIT(o, "SERVER_ERROR out of memory\r\n");
		break;
	}
}

static void stat_line(struct mc_sess *s, struct mc_cmd *c, const char *name,
		      const char *val, size_t vlen)
{
	size_t n = strlen(name);
	char *p = mc_out_room(&s->out, 5 + n + 1 + vlen + 2);

	(void)c;
	if (!p)
		return;
	memcpy(p, "STAT ", 5);
	p += 5;
	memcpy(p, name, n);
	p += n;
	*p++ = ' ';
	memcpy(p, val, vlen);
	p += vlen;
	*p++ = '\r';
	*p++ = '\n';
	mc_out_commit(&s->out, p);
}

static void reply_stats(struct mc_sess *s, struct mc_cmd *c)
{
	if (s->b->barrier_err) {
		MC_OUT_LIT(&s->out, "SERVER_ERROR out of memory writing stats\r\n");
		return;
	}
	mc_stats_lines(s, c, c->u.t.arg, &s->b->stats, stat_line);
	MC_OUT_LIT(&s->out, "END\r\n");
}

void mc_text_reply(struct mc_sess *s, struct mc_cmd *c)
{
	struct mc_batch *b = s->b;

	if (SK_UNLIKELY(b->exec_err) && c->nreq) {
		if (!(c->flags & MC_CF_NOREPLY) && c->kind != TK_SILENT)
			MC_OUT_LIT(&s->out, "SERVER_ERROR out of memory\r\n");
		return;
	}
	switch (c->kind) {
	case TK_GET:
		reply_get(s, c);
		return;
	case TK_ARITH:
		/* The store hands the new number's item back: not needed. */
		if (b->res[c->first].item) {
			mc_item_put(b->res[c->first].item);
			b->res[c->first].item = NULL;
		}
		break;
	default:
		break;
	}
	if (c->flags & MC_CF_NOREPLY)
		return;
	switch (c->kind) {
	case TK_STATIC:
		mc_out_str(&s->out, c->u.t.str, c->u.t.len);
		break;
	case TK_STORE:
		reply_store(s, c);
		break;
	case TK_DELETE:
		if (b->res[c->first].status == MC_OK)
			MC_OUT_LIT(&s->out, "DELETED\r\n");
		else
			MC_OUT_LIT(&s->out, "NOT_FOUND\r\n");
		break;
	case TK_ARITH:
		reply_arith(s, c);
		break;
	case TK_TOUCH:
		if (b->res[c->first].status == MC_OK)
			MC_OUT_LIT(&s->out, "TOUCHED\r\n");
		else
			MC_OUT_LIT(&s->out, "NOT_FOUND\r\n");
		break;
	case TK_FLUSH:
		MC_OUT_LIT(&s->out, "OK\r\n");
		break;
	case TK_STATS:
		reply_stats(s, c);
		break;
	case TK_STATS_RESET:
		MC_OUT_LIT(&s->out, "RESET\r\n");
		break;
	default:	/* TK_SILENT */
		break;
	}
}

sk_future mc_text_barrier(struct mc_sess *s, struct mc_cmd *c)
{
	switch (c->kind) {
	case TK_FLUSH:
		return mc_flush_all(c->u.t.arg);
	case TK_STATS_RESET:
		atomic_store_explicit(&mc_store_too_large, 0, memory_order_relaxed);
		atomic_store_explicit(&mc_store_no_memory, 0, memory_order_relaxed);
		return mc_stats_reset();
	case TK_STATS:
		if (c->u.t.arg == MC_STATS_SETTINGS || c->u.t.arg == MC_STATS_SIZES ||
		    c->u.t.arg == MC_STATS_CONNS)
			return sk_make_ready(0);
		return mc_stats_gather(&s->b->stats);
	default:
		return sk_make_ready(0);
	}
}

/* ---- stats lines (text and binary) ------------------------------------------ */

/* The process id, read once from /proc (0 where there is none). */
static long process_id(void)
{
	static long pid = -1;
	if (pid < 0) {
		FILE *f = fopen("/proc/self/stat", "r");
		pid = 0;
		if (f) {
			if (fscanf(f, "%ld", &pid) != 1)
				pid = 0;
			fclose(f);
		}
	}
	return pid;
}

#define EMIT_U(name, v)                                                        \
	do {                                                                   \
		char b_[24];                                                   \
		emit(s, c, (name), b_, (size_t)(mc_fmt_u64(b_, (uint64_t)(v)) - b_)); \
	} while (0)
#define EMIT_S(name, str) emit(s, c, (name), (str), strlen(str))

static void general_lines(struct mc_sess *s, struct mc_cmd *c, const struct mc_stats *st,
			  mc_stat_emit_fn emit)
{
	char buf[64];
	uint32_t uptime = mc_now() - 2;
	clock_t cpu = clock();
	double user = cpu == (clock_t)-1 ? 0.0 : (double)cpu / CLOCKS_PER_SEC;

	EMIT_U("pid", process_id());
	EMIT_U("uptime", uptime);
	EMIT_U("time", (uint64_t)time(NULL));
	EMIT_S("version", MC_VERSION);
	EMIT_U("pointer_size", sizeof(void *) * 8);
	snprintf(buf, sizeof(buf), "%.6f", user);
	EMIT_S("rusage_user", buf);
	EMIT_S("rusage_system", "0.000000");
	EMIT_U("max_connections", mc_settings.maxconns);
	EMIT_U("curr_connections", st->curr_connections);
	EMIT_U("total_connections", st->total_connections);
	EMIT_U("rejected_connections", st->rejected_connections);
	EMIT_U("connection_structures", st->curr_connections);
	EMIT_U("cmd_get", st->cmd_get);
	EMIT_U("cmd_set", st->cmd_set);
	EMIT_U("cmd_flush", st->cmd_flush);
	EMIT_U("cmd_touch", st->cmd_touch);
	EMIT_U("cmd_meta", st->cmd_meta);
	EMIT_U("get_hits", st->get_hits);
	EMIT_U("get_misses", st->get_misses);
	EMIT_U("get_expired", st->get_expired);
	EMIT_U("get_flushed", st->get_flushed);
	EMIT_U("delete_misses", st->delete_misses);
	EMIT_U("delete_hits", st->delete_hits);
	EMIT_U("incr_misses", st->incr_misses);
	EMIT_U("incr_hits", st->incr_hits);
	EMIT_U("decr_misses", st->decr_misses);
	EMIT_U("decr_hits", st->decr_hits);
	EMIT_U("cas_misses", st->cas_misses);
	EMIT_U("cas_hits", st->cas_hits);
	EMIT_U("cas_badval", st->cas_badval);
	EMIT_U("touch_hits", st->touch_hits);
	EMIT_U("touch_misses", st->touch_misses);
	EMIT_U("store_too_large",
	       atomic_load_explicit(&mc_store_too_large, memory_order_relaxed));
	EMIT_U("store_no_memory",
	       atomic_load_explicit(&mc_store_no_memory, memory_order_relaxed));
	EMIT_U("auth_cmds", 0);
	EMIT_U("auth_errors", 0);
	EMIT_U("bytes_read", st->bytes_read);
	EMIT_U("bytes_written", st->bytes_written);
	EMIT_U("limit_maxbytes", st->limit_maxbytes);
	EMIT_U("accepting_conns", 1);
	EMIT_U("listen_disabled_num", 0);
	EMIT_U("time_in_listen_disabled_us", 0);
	EMIT_U("threads", mc_settings.nshards);
	EMIT_U("conn_yields", st->conn_yields);
	EMIT_U("hash_power_level", st->hash_power_level);
	EMIT_U("hash_bytes", st->hash_bytes);
	EMIT_U("hash_is_expanding", st->hash_is_expanding);
	EMIT_U("malloc_fails", 0);
	EMIT_U("bytes", st->bytes);
	EMIT_U("curr_items", st->curr_items);
	EMIT_U("total_items", st->total_items);
	EMIT_U("expired_unfetched", st->expired_unfetched);
	EMIT_U("evicted_unfetched", st->evicted_unfetched);
	EMIT_U("evicted_active", 0);
	EMIT_U("evictions", st->evictions);
	EMIT_U("reclaimed", st->reclaimed);
}

static void settings_lines(struct mc_sess *s, struct mc_cmd *c, mc_stat_emit_fn emit)
{
	const struct mc_settings *m = &mc_settings;

	EMIT_U("maxbytes", m->maxbytes);
	EMIT_U("maxconns", m->maxconns);
	EMIT_U("tcpport", m->port);
	EMIT_U("udpport", m->udp_port);
	EMIT_S("inter", m->listen_addr ? m->listen_addr : "NULL");
	EMIT_U("verbosity", (uint64_t)(m->verbose > 0 ? m->verbose : 0));
	EMIT_U("oldest", 0);
	EMIT_S("evictions", "on");
	EMIT_S("domain_socket", "NULL");
	EMIT_S("umask", "700");
	EMIT_S("shutdown_command", m->enable_shutdown ? "yes" : "no");
	EMIT_S("growth_factor", "1.25");
	EMIT_U("chunk_size", 48);
	EMIT_U("num_threads", m->nshards);
	EMIT_U("num_threads_per_udp", m->nshards);
	EMIT_S("stat_key_prefix", ":");
	EMIT_S("detail_enabled", "no");
	EMIT_U("reqs_per_event", 20);
	EMIT_S("cas_enabled", m->cas_enabled ? "yes" : "no");
	EMIT_U("tcp_backlog", 1024);
	EMIT_S("binding_protocol", "auto-negotiate");
	EMIT_S("auth_enabled_sasl", "no");
	EMIT_S("auth_enabled_ascii", "no");
	EMIT_U("item_size_max", m->item_size_max);
	EMIT_S("maxconns_fast", "yes");
	EMIT_U("hashpower_init", 0);
	EMIT_S("slab_reassign", "no");
	EMIT_U("slab_automove", 0);
	EMIT_S("lru_crawler", "no");
	EMIT_S("flush_enabled", "yes");
	EMIT_S("dump_enabled", "no");
	EMIT_S("lru_maintainer_thread", "no");
	EMIT_S("lru_segmented", "no");
	EMIT_U("idle_timeout", 0);
	EMIT_S("ssl_enabled", "no");
}

/* One slab class for everything: the store allocates exact sizes. */
static void items_lines(struct mc_sess *s, struct mc_cmd *c, const struct mc_stats *st,
			mc_stat_emit_fn emit)
{
	if (!st->curr_items)
		return;
	EMIT_U("items:1:number", st->curr_items);
	EMIT_U("items:1:number_hot", 0);
	EMIT_U("items:1:number_warm", 0);
	EMIT_U("items:1:number_cold", st->curr_items);
	EMIT_U("items:1:age_hot", 0);
	EMIT_U("items:1:age_warm", 0);
	EMIT_U("items:1:age", 0);
	EMIT_U("items:1:mem_requested", st->bytes);
	EMIT_U("items:1:evicted", st->evictions);
	EMIT_U("items:1:evicted_nonzero", 0);
	EMIT_U("items:1:evicted_time", 0);
	EMIT_U("items:1:outofmemory", 0);
	EMIT_U("items:1:tailrepairs", 0);
	EMIT_U("items:1:reclaimed", st->reclaimed);
	EMIT_U("items:1:expired_unfetched", st->expired_unfetched);
	EMIT_U("items:1:evicted_unfetched", st->evicted_unfetched);
	EMIT_U("items:1:evicted_active", 0);
}

void mc_stats_lines(struct mc_sess *s, struct mc_cmd *c, unsigned which,
		    const struct mc_stats *st, mc_stat_emit_fn emit)
{
	switch (which) {
	case MC_STATS_GENERAL:
		general_lines(s, c, st, emit);
		break;
	case MC_STATS_SETTINGS:
		settings_lines(s, c, emit);
		break;
	case MC_STATS_ITEMS:
		items_lines(s, c, st, emit);
		break;
	case MC_STATS_SLABS:
		if (st->curr_items) {
			EMIT_U("1:used_chunks", st->curr_items);
			EMIT_U("1:mem_requested", st->bytes);
		}
		EMIT_U("active_slabs", st->curr_items ? 1 : 0);
		EMIT_U("total_malloced", st->bytes);
		break;
	case MC_STATS_SIZES:
		EMIT_S("sizes_status", "disabled");
		break;
	default:	/* conns: not tracked per connection */
		break;
	}
}
