/*
 * proto_bin.c - memcached's binary protocol, as stock 1.6.18 answers it.
 *
 * Roadmap: mc_bin_parse() needs the 24-byte header plus extras and key
 * contiguous (conn.c gathers them when a read cut them), checks the
 * lengths per opcode as stock does (a malformed packet is answered with
 * "Invalid arguments" and the connection closed), maps the quiet opcodes
 * onto their loud twins with MC_CF_NOREPLY, and adds one request; values
 * of set/add/replace/append/prepend are read straight into the new item.
 * mc_bin_reply() writes the response header (magic 0x81, the request's
 * opcode and opaque, the item's cas) and body; errors carry stock's text.
 * Quiet commands answer only errors, and quiet gets not even misses.
 * flush and stat are barriers, run after everything before them.
 */
#include <string.h>

#include "mc.h"
#include "proto.h"

enum {
	OP_GET = 0x00, OP_SET, OP_ADD, OP_REPLACE, OP_DELETE, OP_INCR, OP_DECR,
	OP_QUIT, OP_FLUSH, OP_GETQ, OP_NOOP, OP_VERSION, OP_GETK, OP_GETKQ,
	OP_APPEND, OP_PREPEND, OP_STAT, OP_SETQ, OP_ADDQ, OP_REPLACEQ, OP_DELETEQ,
	OP_INCRQ, OP_DECRQ, OP_QUITQ, OP_FLUSHQ, OP_APPENDQ, OP_PREPENDQ,
	OP_VERBOSITY, OP_TOUCH, OP_GAT, OP_GATQ,
	OP_GATK = 0x23, OP_GATKQ = 0x24,
};

enum {
	ST_OK = 0x00, ST_ENOENT = 0x01, ST_EEXISTS = 0x02, ST_E2BIG = 0x03,
	ST_EINVAL = 0x04, ST_NOT_STORED = 0x05, ST_DELTA_BADVAL = 0x06,
	ST_UNKNOWN = 0x81, ST_ENOMEM = 0x82,
};

/* Command kinds. */
enum { BK_ERROR, BK_GET, BK_STORE, BK_DELETE, BK_ARITH, BK_EMPTY, BK_VERSION,
       BK_FLUSH, BK_STAT, BK_SILENT };

static const char *status_text(unsigned st)
{
	switch (st) {
	case ST_ENOENT:		return "Not found";
	case ST_EEXISTS:	return "Data exists for key.";
	case ST_E2BIG:		return "Too large.";
	case ST_EINVAL:		return "Invalid arguments";
	case ST_NOT_STORED:	return "Not stored.";
	case ST_DELTA_BADVAL:	return "Non-numeric server-side value for incr or decr";
	case ST_UNKNOWN:	return "Unknown command";
	case ST_ENOMEM:		return "Out of memory";
	default:		return "";
	}
}

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static inline char *put32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
	return p + 4;
}

static inline char *put64(char *p, uint64_t v)
{
	return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

/* A response header; the opaque is copied as the client sent it. */
static char *bin_hdr(char *p, const struct mc_cmd *c, unsigned status, unsigned keylen,
		     unsigned extlen, uint32_t bodylen, uint64_t cas)
{
	p[0] = (char)0x81;
	p[1] = (char)c->u.b.opcode;
	p[2] = (char)(keylen >> 8);
	p[3] = (char)keylen;
	p[4] = (char)extlen;
	p[5] = 0;
	p[6] = (char)(status >> 8);
	p[7] = (char)status;
	put32(p + 8, bodylen);
	memcpy(p + 12, &c->u.b.opaque, 4);
	put64(p + 16, cas);
	return p + 24;
}

static void bin_error(struct mc_sess *s, const struct mc_cmd *c, unsigned status)
{
	const char *txt = status_text(status);
	size_t n = strlen(txt);
	char *p = mc_out_room(&s->out, 24 + n);
	if (!p)
		return;
	p = bin_hdr(p, c, status, 0, 0, (uint32_t)n, 0);
	memcpy(p, txt, n);
	mc_out_commit(&s->out, p + n);
}

static void bin_empty(struct mc_sess *s, const struct mc_cmd *c, uint64_t cas)
{
	char *p = mc_out_room(&s->out, 24);
	if (p)
		mc_out_commit(&s->out, bin_hdr(p, c, ST_OK, 0, 0, 0, cas));
}

/* ---- parsing --------------------------------------------------------------- */

static struct mc_cmd *bin_cmd(struct mc_sess *s, uint8_t kind, uint8_t opcode,
			      const uint8_t *h, bool quiet)
{
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_BIN, kind);
	c->u.b.opcode = opcode;
	memcpy(&c->u.b.opaque, h + 12, 4);
	c->u.b.extra = 0;
	if (quiet)
		c->flags |= MC_CF_NOREPLY;
	return c;
}

static enum mc_parse_rc bin_fail(struct mc_sess *s, uint8_t opcode, const uint8_t *h,
				 unsigned status, bool close)
{
	struct mc_cmd *c = bin_cmd(s, BK_ERROR, opcode, h, false);
	c->u.b.extra = status;
	mc_cmd_add(s->b);
	return close ? MC_P_CLOSE : MC_P_OK;
}

/* set/add/replace/append/prepend: the value goes into a new item. */
static enum mc_parse_rc bin_store(struct mc_sess *s, struct mc_input *in, const uint8_t *h,
				  uint8_t opcode, uint8_t mode, bool quiet,
				  const uint8_t *ext, const char *key, unsigned nkey,
				  uint32_t vlen, uint64_t cas)
{
	uint32_t flags = 0, exptime = 0;
	if (ext) {
		flags = be32(ext);
		exptime = be32(ext + 4);
	}
	int err;
	struct mc_item *it = mc_item_new(key, nkey, flags, mc_exptime((int64_t)exptime), vlen,
					 &err);
	if (!it) {
		atomic_fetch_add_explicit(err == -E2BIG ? &mc_store_too_large
							: &mc_store_no_memory, 1,
					  memory_order_relaxed);
		bin_fail(s, opcode, h, err == -E2BIG ? ST_E2BIG : ST_ENOMEM, false);
		if (mode == MC_SET && !mc_batch_full(s->b)) {
			/* As stock: a refused set must not leave the old value. */
			struct mc_cmd *d = bin_cmd(s, BK_SILENT, opcode, h, true);
			mc_req_new(s->b, d, MC_OP_DELETE, key, nkey);
			mc_cmd_add(s->b);
		}
		mc_sess_swallow(s, vlen);
		return MC_P_OK;
	}
	struct mc_cmd *c = &s->vcmd;
	c->proto = MC_CP_BIN;
	c->kind = BK_STORE;
	c->flags = quiet ? MC_CF_NOREPLY : 0;
	c->phase = 0;
	c->u.b.opcode = opcode;
	memcpy(&c->u.b.opaque, h + 12, 4);
	c->u.b.extra = mode;
	struct mc_req *r = &s->vreq;
	r->op = MC_OP_STORE;
	/* Any cas makes set/add/replace a cas store, as stock. */
	r->mode = (uint8_t)((cas && (mode == MC_ADD || mode == MC_REPLACE)) ? MC_SET : mode);
	r->nkey = (uint8_t)nkey;
	r->flags = 0;
	r->cas = cas;
	memcpy(r->key, key, nkey);
	r->key[nkey] = '\0';
	s->vitem = it;
	s->vlen = vlen;
	s->vdone = 0;
	s->vcrlf = false;
	s->rstate = MC_RS_VALUE;
	return mc_sess_value(s, in);
}

enum mc_parse_rc mc_bin_parse(struct mc_sess *s, struct mc_input *in)
{
	size_t avail = in->len - in->pos;
	const uint8_t *h = in->p + in->pos;

	if (avail < 24) {
		s->need = 24;
		return MC_P_MORE;
	}
	if (h[0] != 0x80)
		return MC_P_CLOSE;	/* stock drops a connection that desyncs */
	unsigned keylen = be16(h + 2), extlen = h[4];
	uint32_t bodylen = be32(h + 8);
	size_t hdr = 24 + (size_t)extlen + keylen;
	if (avail < hdr) {
		s->need = (uint32_t)hdr;
		return MC_P_MORE;
	}
	s->need = 0;
	in->pos += hdr;

	uint8_t opcode = h[1];
	const uint8_t *ext = h + 24;
	const char *key = (const char *)h + 24 + extlen;
	uint64_t cas = be64(h + 16);

	if (keylen + extlen > bodylen)
		return bin_fail(s, opcode, h, ST_UNKNOWN, true);
	if (keylen > MC_KEY_MAX)
		return bin_fail(s, opcode, h, ST_EINVAL, true);

	bool quiet = true, bad = false;
	uint8_t op = opcode;
	switch (opcode) {
	case OP_SETQ: op = OP_SET; break;
	case OP_ADDQ: op = OP_ADD; break;
	case OP_REPLACEQ: op = OP_REPLACE; break;
	case OP_DELETEQ: op = OP_DELETE; break;
	case OP_INCRQ: op = OP_INCR; break;
	case OP_DECRQ: op = OP_DECR; break;
	case OP_QUITQ: op = OP_QUIT; break;
	case OP_FLUSHQ: op = OP_FLUSH; break;
	case OP_APPENDQ: op = OP_APPEND; break;
	case OP_PREPENDQ: op = OP_PREPEND; break;
	case OP_GETQ: op = OP_GET; break;
	case OP_GETKQ: op = OP_GETK; break;
	case OP_GATQ: op = OP_GAT; break;
	case OP_GATKQ: op = OP_GATK; break;
	default: quiet = false; break;
	}

	struct mc_stats *st = mc_stats_local();
	struct mc_cmd *c;
	struct mc_req *r;
	switch (op) {
	case OP_VERSION:
	case OP_NOOP:
		if (extlen || keylen || bodylen) {
			bad = true;
			break;
		}
		c = bin_cmd(s, op == OP_NOOP ? BK_EMPTY : BK_VERSION, opcode, h, false);
		mc_cmd_add(s->b);
		return MC_P_OK;
	case OP_QUIT:
		if (extlen || keylen || bodylen) {
			bad = true;
			break;
		}
		if (!quiet) {
			c = bin_cmd(s, BK_EMPTY, opcode, h, false);
			mc_cmd_add(s->b);
		}
		s->quit = true;
		return MC_P_CLOSE;
	case OP_FLUSH: {
		if (keylen || bodylen != extlen || (extlen != 0 && extlen != 4)) {
			bad = true;
			break;
		}
		uint32_t e = extlen ? be32(ext) : 0;
		c = bin_cmd(s, BK_FLUSH, opcode, h, quiet);
		c->flags |= MC_CF_BARRIER;
		c->u.b.extra = e > 0 ? mc_exptime((int64_t)e) : mc_now();
		st->cmd_flush++;
		mc_cmd_add(s->b);
		return MC_P_FULL;
	}
	case OP_SET:
	case OP_ADD:
	case OP_REPLACE:
		if (extlen != 8 || keylen == 0 || bodylen < keylen + 8u) {
			bad = true;
			break;
		}
		return bin_store(s, in, h, opcode,
				 op == OP_SET ? MC_SET : op == OP_ADD ? MC_ADD : MC_REPLACE,
				 quiet, ext, key, keylen, bodylen - keylen - 8, cas);
	case OP_APPEND:
	case OP_PREPEND:
		if (keylen == 0 || extlen) {
			bad = true;
			break;
		}
		return bin_store(s, in, h, opcode, op == OP_APPEND ? MC_APPEND : MC_PREPEND,
				 quiet, NULL, key, keylen, bodylen - keylen, cas);
	case OP_GET:
	case OP_GETK:
		if (extlen || bodylen != keylen || keylen == 0) {
			bad = true;
			break;
		}
		c = bin_cmd(s, BK_GET, opcode, h, quiet);
		mc_req_new(s->b, c, MC_OP_GET, key, keylen);
		st->cmd_get++;
		mc_cmd_add(s->b);
		return MC_P_OK;
	case OP_TOUCH:
	case OP_GAT:
	case OP_GATK:
		if (extlen != 4 || keylen == 0) {
			bad = true;
			break;
		}
		c = bin_cmd(s, BK_GET, opcode, h, quiet);
		r = mc_req_new(s->b, c, MC_OP_GET, key, keylen);
		r->flags = MC_RF_TOUCH;
		r->exptime = mc_exptime((int64_t)be32(ext));
		st->cmd_touch++;
		mc_cmd_add(s->b);
		return MC_P_OK;
	case OP_DELETE:
		if (keylen == 0 || extlen || bodylen != keylen) {
			bad = true;
			break;
		}
		c = bin_cmd(s, BK_DELETE, opcode, h, quiet);
		r = mc_req_new(s->b, c, MC_OP_DELETE, key, keylen);
		r->cas = cas;
		mc_cmd_add(s->b);
		return MC_P_OK;
	case OP_INCR:
	case OP_DECR: {
		if (keylen == 0 || extlen != 20 || bodylen != keylen + 20u) {
			bad = true;
			break;
		}
		uint32_t e = be32(ext + 16);
		c = bin_cmd(s, BK_ARITH, opcode, h, quiet);
		r = mc_req_new(s->b, c, MC_OP_ARITH, key, keylen);
		r->mode = op == OP_INCR ? MC_INCR : MC_DECR;
		r->delta = be64(ext);
		r->initial = be64(ext + 8);
		r->cas = cas;
		if (e != 0xffffffffu) {	/* all ones: do not create */
			r->flags = MC_RF_VIVIFY;
			r->viv_exptime = mc_exptime((int64_t)e);
		}
		mc_cmd_add(s->b);
		return MC_P_OK;
	}
	case OP_STAT: {
		if (extlen) {
			bad = true;
			break;
		}
		c = bin_cmd(s, BK_STAT, opcode, h, false);
		c->flags |= MC_CF_BARRIER;
		if (keylen == 0)
			c->u.b.extra = MC_STATS_GENERAL;
		else if (keylen >= 5 && memcmp(key, "reset", 5) == 0)
			c->u.b.extra = 100;
		else if (keylen >= 8 && memcmp(key, "settings", 8) == 0)
			c->u.b.extra = MC_STATS_SETTINGS;
		else {
			int w = mc_stats_which(key, keylen);
			c->u.b.extra = w < 0 ? 101 : (uint32_t)w;
		}
		mc_cmd_add(s->b);
		return MC_P_FULL;
	}
	default:
		/* Unknown (and verbosity, sasl, as stock): drop the body. */
		bin_fail(s, opcode, h, ST_UNKNOWN, false);
		mc_sess_swallow(s, bodylen - keylen - extlen);
		return MC_P_OK;
	}
	(void)bad;
	return bin_fail(s, opcode, h, ST_EINVAL, true);
}

/* ---- answers --------------------------------------------------------------- */

static void reply_get(struct mc_sess *s, struct mc_cmd *c, struct mc_req *r,
		      struct mc_res *res)
{
	struct mc_out *o = &s->out;
	uint8_t op = c->u.b.opcode;
	bool withkey = op == OP_GETK || op == OP_GETKQ || op == OP_GATK || op == OP_GATKQ;
	struct mc_item *it = res->item;
	char *p;

	if (res->status != MC_OK || !it) {
		if (c->flags & MC_CF_NOREPLY)
			return;
		if (!withkey) {
			bin_error(s, c, ST_ENOENT);
			return;
		}
		if ((p = mc_out_room(o, 24 + r->nkey))) {
			p = bin_hdr(p, c, ST_ENOENT, r->nkey, 0, r->nkey, 0);
			memcpy(p, r->key, r->nkey);
			mc_out_commit(o, p + r->nkey);
		}
		return;
	}
	res->item = NULL;
	bool value = op != OP_TOUCH;
	unsigned klen = withkey ? it->nkey : 0;
	uint32_t body = 4 + klen + (value ? it->nbytes : 0);
	if ((p = mc_out_room(o, 24 + 4 + klen))) {
		p = bin_hdr(p, c, ST_OK, klen, 4, body, res->cas);
		p = put32(p, it->client_flags);
		memcpy(p, mc_item_key(it), klen);
		mc_out_commit(o, p + klen);
	}
	if (value)
		mc_out_value(o, it, mc_item_value(it), it->nbytes);
	else
		mc_item_put(it);
}

static void reply_store(struct mc_sess *s, struct mc_cmd *c, struct mc_res *res)
{
	unsigned mode = c->u.b.extra;

	switch (res->status) {
	case MC_OK:
		if (!(c->flags & MC_CF_NOREPLY))
			bin_empty(s, c, res->cas);
		return;
	case MC_EXISTS:
		bin_error(s, c, ST_EEXISTS);
		return;
	case MC_MISS:
		bin_error(s, c, ST_ENOENT);
		return;
	default:	/* not stored, no memory, too large: stock maps all three */
		bin_error(s, c, mode == MC_ADD ? ST_EEXISTS :
				mode == MC_REPLACE ? ST_ENOENT : ST_NOT_STORED);
		return;
	}
}

static void reply_arith(struct mc_sess *s, struct mc_cmd *c, struct mc_res *res)
{
	if (res->item) {
		mc_item_put(res->item);
		res->item = NULL;
	}
	switch (res->status) {
	case MC_OK:
		if (!(c->flags & MC_CF_NOREPLY)) {
			char *p = mc_out_room(&s->out, 32);
			if (p) {
				p = bin_hdr(p, c, ST_OK, 0, 0, 8, res->cas);
				mc_out_commit(&s->out, put64(p, res->value));
			}
		}
		return;
	case MC_MISS:
		bin_error(s, c, ST_ENOENT);
		return;
	case MC_NON_NUMERIC:
		bin_error(s, c, ST_DELTA_BADVAL);
		return;
	case MC_EXISTS:
		bin_error(s, c, ST_EEXISTS);
		return;
	case MC_NOT_STORED:
		bin_error(s, c, ST_NOT_STORED);
		return;
	default:
		bin_error(s, c, ST_ENOMEM);
		return;
	}
}

static void stat_packet(struct mc_sess *s, struct mc_cmd *c, const char *name,
			const char *val, size_t vlen)
{
	size_t n = strlen(name);
	char *p = mc_out_room(&s->out, 24 + n + vlen);
	if (!p)
		return;
	p = bin_hdr(p, c, ST_OK, (unsigned)n, 0, (uint32_t)(n + vlen), 0);
	memcpy(p, name, n);
	memcpy(p + n, val, vlen);
	mc_out_commit(&s->out, p + n + vlen);
}

static void reply_stat(struct mc_sess *s, struct mc_cmd *c)
{
	unsigned which = c->u.b.extra;

	if (which == 101) {
		bin_error(s, c, ST_ENOENT);
		return;
	}
	if (s->b->barrier_err) {
		bin_error(s, c, ST_ENOMEM);
		return;
	}
	if (which != 100)
		mc_stats_lines(s, c, which, &s->b->stats, stat_packet);
	bin_empty(s, c, 0);	/* the terminating empty stat */
}

void mc_bin_reply(struct mc_sess *s, struct mc_cmd *c)
{
	struct mc_batch *b = s->b;

	if (SK_UNLIKELY(b->exec_err) && c->nreq) {
		if (c->kind != BK_SILENT)
			bin_error(s, c, ST_ENOMEM);
		return;
	}
	struct mc_req *r = &b->req[c->first];
	struct mc_res *res = &b->res[c->first];
	switch (c->kind) {
	case BK_ERROR:
		bin_error(s, c, c->u.b.extra);
		break;
	case BK_GET:
		reply_get(s, c, r, res);
		break;
	case BK_STORE:
		reply_store(s, c, res);
		break;
	case BK_DELETE:
		if (res->status == MC_OK) {
			if (!(c->flags & MC_CF_NOREPLY))
				bin_empty(s, c, 0);
		} else {
			bin_error(s, c, res->status == MC_EXISTS ? ST_EEXISTS : ST_ENOENT);
		}
		break;
	case BK_ARITH:
		reply_arith(s, c, res);
		break;
	case BK_EMPTY:
		bin_empty(s, c, 0);
		break;
	case BK_VERSION: {
		static const char v[] = MC_VERSION;
		char *p = mc_out_room(&s->out, 24 + sizeof(v) - 1);
		if (p) {
			p = bin_hdr(p, c, ST_OK, 0, 0, sizeof(v) - 1, 0);
			memcpy(p, v, sizeof(v) - 1);
			mc_out_commit(&s->out, p + sizeof(v) - 1);
		}
		break;
	}
	case BK_FLUSH:
		if (b->barrier_err)
			bin_error(s, c, ST_ENOMEM);
		else if (!(c->flags & MC_CF_NOREPLY))
			bin_empty(s, c, 0);
		break;
	case BK_STAT:
		reply_stat(s, c);
		break;
	default:	/* BK_SILENT */
		break;
	}
}

sk_future mc_bin_barrier(struct mc_sess *s, struct mc_cmd *c)
{
	if (c->kind == BK_FLUSH)
		return mc_flush_all(c->u.b.extra);
	switch (c->u.b.extra) {
	case 100:
		atomic_store_explicit(&mc_store_too_large, 0, memory_order_relaxed);
		atomic_store_explicit(&mc_store_no_memory, 0, memory_order_relaxed);
		return mc_stats_reset();
	case MC_STATS_GENERAL:
	case MC_STATS_ITEMS:
	case MC_STATS_SLABS:
		return mc_stats_gather(&s->b->stats);
	default:
		return sk_make_ready(0);
	}
}
