/*
 * proto_meta.c - the meta commands of memcached 1.6.18: mg, ms, md, ma, me, mn.
 *
 * Roadmap: mc_meta_parse() gets a line already split into tokens by
 * proto_text.c.  Each command checks its tokens in stock's order (token
 * count, key length, flag count, then meta_flags() for the flags
 * themselves, with stock's error strings), turns the flags into one
 * struct mc_req, and records in the command what the answer must echo:
 * the return flags in request order and the opaque token, copied because
 * the input buffer is gone by the time the answer is written.
 * mc_meta_reply() builds "HD"/"VA"/"EN"/"NF"/"NS"/"EX" lines from the
 * result.  Base64 keys (flag b) are decoded into the request and encoded
 * again for k.
 */
#include <limits.h>
#include <string.h>

#include "mc.h"
#include "proto.h"

enum { MK_GET, MK_SET, MK_DELETE, MK_ARITH, MK_DEBUG };

/* The flags of one meta command, as stock's _meta_flag_preparse(). */
struct meta_flags {
	bool vivify, value, set_stale, no_reply, has_cas, new_ttl, key_binary;
	bool no_update, has_recache;
	char mode;
	int32_t exptime, autoviv, recache;
	uint32_t client_flags;
	uint64_t cas, delta, initial;
};

static inline bool tok_int(const char *line, const struct mc_tok *t, int32_t *v)
{
	return mc_strtol(line + t->off + 1, t->len - 1, v);
}

/*
 * Parse flags t[start..nt-2].  The key (t[1]) is copied, or base64-decoded
 * for b, into key / *nkey.  Returns NULL or the error line; like stock,
 * duplicate and unknown flags stop at once, other errors let the rest be
 * parsed and report the last one.
 */
static const char *meta_flags(const char *line, const struct mc_tok *t, unsigned nt,
			      unsigned start, struct meta_flags *of, char *key,
			      size_t *nkey)
{
	const char *err = NULL, *bad = "CLIENT_ERROR bad command line format\r\n";
	const char *badtok = "CLIENT_ERROR bad token in command line format\r\n";
	uint8_t seen[128] = { 0 };

	memcpy(key, line + t[1].off, t[1].len);
	*nkey = t[1].len;
	for (unsigned i = start; i < nt - 1; i++) {
		const char *p = line + t[i].off;
		uint8_t o = (uint8_t)p[0];
		if (o >= 127 || seen[o])
			return "CLIENT_ERROR duplicate flag\r\n";
		seen[o] = 1;
		switch (o) {
		case 'b':
			*nkey = mc_b64_decode(line + t[1].off, t[1].len, key, MC_KEY_MAX);
			if (*nkey == 0)
				err = "CLIENT_ERROR error decoding key\r\n";
			of->key_binary = true;
			break;
		case 'N':
			of->vivify = true;
			if (!tok_int(line, &t[i], &of->autoviv))
				err = badtok;
			break;
		case 'T':
			if (!tok_int(line, &t[i], &of->exptime))
				err = badtok;
			else
				of->new_ttl = true;
			break;
		case 'R':
			if (!tok_int(line, &t[i], &of->recache))
				err = badtok;
			else
				of->has_recache = true;
			break;
		case 'l': case 'O': case 'P': case 'L': case 'k': case 's':
		case 't': case 'c': case 'f': case 'h':
			break;
		case 'v':
			of->value = true;
			break;
		case 'u':
			of->no_update = true;
			break;
		case 'q':
			of->no_reply = true;
			break;
		case 'F':
			if (!mc_strtoul(p + 1, t[i].len - 1, &of->client_flags))
				err = err ? err : bad;
			break;
		case 'C':
			if (!mc_strtoull(p + 1, t[i].len - 1, &of->cas))
				err = badtok;
			else
				of->has_cas = true;
			break;
		case 'M':
			if (t[i].len != 2)
				err = "CLIENT_ERROR incorrect length for M token\r\n";
			else
				of->mode = p[1];
			break;
		case 'J':
			if (!mc_strtoull(p + 1, t[i].len - 1, &of->initial))
				err = "CLIENT_ERROR invalid numeric initial value\r\n";
			break;
		case 'D':
			if (!mc_strtoull(p + 1, t[i].len - 1, &of->delta))
				err = "CLIENT_ERROR invalid numeric delta value\r\n";
			break;
		case 'I':
			of->set_stale = true;
			break;
		default:
			return "CLIENT_ERROR invalid flag\r\n";
		}
	}
	return err;
}

/*
 * Record the flags the answer echoes (@echo lists which), in request
 * order, and the opaque token.  false when O is longer than stock allows.
 */
static bool meta_echo(struct mc_cmd *c, const char *line, const struct mc_tok *t,
		      unsigned nt, unsigned start, const char *echo)
{
	struct mc_meta_cmd *m = &c->u.m;

	m->nret = 0;
	m->nopaque = 0;
	for (unsigned i = start; i < nt - 1; i++) {
		char f = line[t[i].off];
		if (!strchr(echo, f))
			continue;
		if (f == 'O') {
			if (t[i].len > MC_META_OPAQUE)
				return false;
			memcpy(m->opaque, line + t[i].off, t[i].len);
			m->nopaque = (uint8_t)t[i].len;
		}
		m->ret[m->nret++] = f;
	}
	return true;
}

static inline enum mc_parse_rc meta_answer(struct mc_sess *s, struct mc_input *in,
					   size_t consumed, const char *err)
{
	mc_sess_static(s, MC_CP_META, err, strlen(err), false);
	in->pos += consumed;
	return MC_P_OK;
}

static struct mc_req *meta_req(struct mc_sess *s, struct mc_cmd *c, uint8_t op,
			       const char *key, size_t nkey)
{
	struct mc_req *r = mc_req_new(s->b, c, op, key, nkey);
	r->viv_exptime = 0;
	r->recache = 0;
	r->new_cas = 0;
	r->delta = 0;
	r->initial = 0;
	return r;
}

static enum mc_parse_rc meta_get(struct mc_sess *s, struct mc_input *in, const char *line,
				 struct mc_tok *t, unsigned nt, size_t consumed)
{
	struct meta_flags of = { 0 };
	char key[MC_KEY_MAX + 1];
	size_t nkey;

	if (t[1].len > MC_KEY_MAX)
		return meta_answer(s, in, consumed, "CLIENT_ERROR bad command line format\r\n");
	if (nt > MC_META_MAXTOK)
		return meta_answer(s, in, consumed,
				   "CLIENT_ERROR options flags are too long\r\n");
	const char *err = meta_flags(line, t, nt, 2, &of, key, &nkey);
	if (err)
		return meta_answer(s, in, consumed, err);
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_META, MK_GET);
	if (!meta_echo(c, line, t, nt, 2, "stcflhOk"))
		return meta_answer(s, in, consumed, "CLIENT_ERROR opaque token too long\r\n");
	c->u.m.vflags = (uint8_t)((of.value ? MC_MF_VALUE : 0) | (of.no_reply ? MC_MF_QUIET : 0) |
				  (of.key_binary ? MC_MF_B64 : 0));
	struct mc_req *r = meta_req(s, c, MC_OP_GET, key, nkey);
	if (of.new_ttl) {
		r->flags |= MC_RF_TOUCH;
		r->exptime = mc_exptime(of.exptime);
	}
	if (of.vivify) {
		r->flags |= MC_RF_VIVIFY;
		r->viv_exptime = mc_exptime(of.autoviv);
	}
	if (of.has_recache) {
		r->flags |= MC_RF_RECACHE;
		r->recache = of.recache > 0 ? (uint32_t)of.recache : 0;
	}
	if (of.no_update)
		r->flags |= MC_RF_NOBUMP;
	if (of.new_ttl)
		mc_stats_local()->cmd_touch++;
	else
		mc_stats_local()->cmd_get++;
	mc_cmd_add(s->b);
	in->pos += consumed;
	return MC_P_OK;
}

static enum mc_parse_rc meta_set(struct mc_sess *s, struct mc_input *in, const char *line,
				 struct mc_tok *t, unsigned nt, size_t consumed)
{
	struct meta_flags of = { 0 };
	char key[MC_KEY_MAX + 1];
	size_t nkey;
	int32_t vlen;
	const char *err;

	if (t[1].len > MC_KEY_MAX || nt == 3)
		return meta_answer(s, in, consumed, "CLIENT_ERROR bad command line format\r\n");
	if (nt > MC_META_MAXTOK)
		return meta_answer(s, in, consumed, "CLIENT_ERROR options flags too long\r\n");
	if (!mc_strtol(line + t[2].off, t[2].len, &vlen) || vlen < 0 || vlen > INT_MAX - 2)
		return meta_answer(s, in, consumed, "CLIENT_ERROR bad command line format\r\n");

	/* From here on errors also drop the value that follows. */
	struct mc_cmd *c = &s->vcmd;
	c->proto = MC_CP_META;
	c->kind = MK_SET;
	c->flags = 0;
	c->phase = 0;
	uint8_t mode = MC_SET;
	err = meta_flags(line, t, nt, 3, &of, key, &nkey);
	if (!err) {
		/* Stock reports a bad mode before a long opaque. */
		bool opaque_ok = meta_echo(c, line, t, nt, 3, "Okc");
		switch (of.mode) {
		case 0: case 'S': mode = MC_SET; break;
		case 'E': mode = MC_ADD; break;
		case 'A': mode = MC_APPEND; break;
		case 'P': mode = MC_PREPEND; break;
		case 'R': mode = MC_REPLACE; break;
		default: err = "CLIENT_ERROR invalid mode for ms M token\r\n"; break;
		}
		if (!err && !opaque_ok)
			err = "CLIENT_ERROR opaque token too long\r\n";
	}
	if (err) {
		mc_sess_static(s, MC_CP_META, err, strlen(err), false);
		in->pos += consumed;
		mc_sess_swallow(s, (uint64_t)vlen + 2);
		return MC_P_OK;
	}
	int ierr;
	struct mc_item *it = mc_item_new(key, (unsigned)nkey, of.client_flags,
					 mc_exptime(of.exptime), (uint32_t)vlen, &ierr);
	if (!it) {
		/* As stock: the old value goes too, whatever the mode. */
		const char *msg = ierr == -E2BIG ? "SERVER_ERROR object too large for cache\r\n"
						 : "SERVER_ERROR out of memory storing object\r\n";
		atomic_fetch_add_explicit(ierr == -E2BIG ? &mc_store_too_large
							 : &mc_store_no_memory, 1,
					  memory_order_relaxed);
		mc_sess_static(s, MC_CP_META, msg, strlen(msg), false);
		if (!mc_batch_full(s->b)) {
			struct mc_cmd *d = mc_cmd_new(s->b, MC_CP_META, MK_DELETE);
			d->u.m.nret = 0;
			d->u.m.nopaque = 0;
			d->u.m.vflags = MC_MF_QUIET;
			d->flags = MC_CF_NOREPLY;
			meta_req(s, d, MC_OP_DELETE, key, nkey);
			mc_cmd_add(s->b);
		}
		in->pos += consumed;
		mc_sess_swallow(s, (uint64_t)vlen + 2);
		return MC_P_OK;
	}
	c->u.m.vflags = (uint8_t)((of.no_reply ? MC_MF_QUIET : 0) |
				  (of.key_binary ? MC_MF_B64 : 0));
	struct mc_req *r = &s->vreq;
	r->op = MC_OP_STORE;
	r->nkey = (uint8_t)nkey;
	r->flags = 0;
	r->cas = 0;
	if (of.has_cas) {
		if (mode == MC_REPLACE)
			mode = MC_SET;	/* replace + cas is cas, as stock */
		if (mode != MC_ADD)
			r->cas = of.cas;
		if (of.set_stale && mode == MC_SET)
			r->flags |= MC_RF_INVAL;
	}
	r->mode = mode;
	memcpy(r->key, key, nkey);
	r->key[nkey] = '\0';
	s->vitem = it;
	s->vlen = (uint32_t)vlen + 2;
	s->vdone = 0;
	s->vcrlf = true;
	s->rstate = MC_RS_VALUE;
	in->pos += consumed;
	return mc_sess_value(s, in);
}

static enum mc_parse_rc meta_delete(struct mc_sess *s, struct mc_input *in,
				    const char *line, struct mc_tok *t, unsigned nt,
				    size_t consumed)
{
	struct meta_flags of = { 0 };
	char key[MC_KEY_MAX + 1];
	size_t nkey;

	if (t[1].len > MC_KEY_MAX)
		return meta_answer(s, in, consumed, "CLIENT_ERROR bad command line format\r\n");
	if (nt > MC_META_MAXTOK)
		return meta_answer(s, in, consumed, "CLIENT_ERROR options flags too long\r\n");
	if (meta_flags(line, t, nt, 2, &of, key, &nkey))
		return meta_answer(s, in, consumed, "CLIENT_ERROR invalid or duplicate flag\r\n");
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_META, MK_DELETE);
	if (!meta_echo(c, line, t, nt, 2, "Ok"))
		return meta_answer(s, in, consumed, "CLIENT_ERROR opaque token too long\r\n");
	c->u.m.vflags = (uint8_t)((of.no_reply ? MC_MF_QUIET : 0) |
				  (of.key_binary ? MC_MF_B64 : 0));
	struct mc_req *r = meta_req(s, c, MC_OP_DELETE, key, nkey);
	if (of.has_cas)
		r->cas = of.cas;
	if (of.set_stale) {
		r->flags |= MC_RF_INVAL;
		if (of.new_ttl) {
			r->flags |= MC_RF_DELTTL;
			r->exptime = mc_exptime(of.exptime);
		}
	}
	mc_cmd_add(s->b);
	in->pos += consumed;
	return MC_P_OK;
}

static enum mc_parse_rc meta_arith(struct mc_sess *s, struct mc_input *in,
				   const char *line, struct mc_tok *t, unsigned nt,
				   size_t consumed)
{
	struct meta_flags of = { .delta = 1 };
	char key[MC_KEY_MAX + 1];
	size_t nkey;
	bool decr = false;

	if (t[1].len > MC_KEY_MAX)
		return meta_answer(s, in, consumed, "CLIENT_ERROR bad command line format\r\n");
	if (nt > MC_META_MAXTOK)
		return meta_answer(s, in, consumed, "CLIENT_ERROR options flags too long\r\n");
	if (meta_flags(line, t, nt, 2, &of, key, &nkey))
		return meta_answer(s, in, consumed, "CLIENT_ERROR invalid or duplicate flag\r\n");
	switch (of.mode) {
	case 0: case 'I': case '+': break;
	case 'D': case '-': decr = true; break;
	default:
		return meta_answer(s, in, consumed,
				   "CLIENT_ERROR invalid mode for ma M token\r\n");
	}
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_META, MK_ARITH);
	if (!meta_echo(c, line, t, nt, 2, "ctOk"))
		return meta_answer(s, in, consumed, "CLIENT_ERROR opaque token too long\r\n");
	c->u.m.vflags = (uint8_t)((of.value ? MC_MF_VALUE : 0) | (of.no_reply ? MC_MF_QUIET : 0) |
				  (of.key_binary ? MC_MF_B64 : 0) | (decr ? MC_MF_DECR : 0) |
				  (of.vivify ? MC_MF_VIVIFY : 0));
	struct mc_req *r = meta_req(s, c, MC_OP_ARITH, key, nkey);
	r->mode = decr ? MC_DECR : MC_INCR;
	r->delta = of.delta;
	r->initial = of.initial;
	if (of.has_cas)
		r->cas = of.cas;
	if (of.vivify) {
		r->flags |= MC_RF_VIVIFY;
		r->viv_exptime = mc_exptime(of.autoviv);
	}
	if (of.new_ttl) {
		r->flags |= MC_RF_ARITHTTL;
		r->exptime = mc_exptime(of.exptime);
	}
	mc_cmd_add(s->b);
	in->pos += consumed;
	return MC_P_OK;
}

/* me <key> [b]: a debug line about the item, read without bumping it. */
static enum mc_parse_rc meta_debug(struct mc_sess *s, struct mc_input *in,
				   const char *line, struct mc_tok *t, unsigned nt,
				   size_t consumed)
{
	char key[MC_KEY_MAX + 1];
	size_t nkey = t[1].len;
	bool b64 = false;

	if (nt < 3 || t[1].len > MC_KEY_MAX)
		return meta_answer(s, in, consumed, "CLIENT_ERROR bad command line format\r\n");
	memcpy(key, line + t[1].off, nkey);
	if (nt >= 4 && t[2].len == 1 && line[t[2].off] == 'b') {
		nkey = mc_b64_decode(line + t[1].off, t[1].len, key, MC_KEY_MAX);
		if (!nkey)
			return meta_answer(s, in, consumed,
					   "CLIENT_ERROR bad command line format\r\n");
		b64 = true;
	}
	struct mc_cmd *c = mc_cmd_new(s->b, MC_CP_META, MK_DEBUG);
	c->u.m.nret = 0;
	c->u.m.nopaque = 0;
	c->u.m.vflags = b64 ? MC_MF_B64 : 0;
	struct mc_req *r = meta_req(s, c, MC_OP_GET, key, nkey);
	r->flags |= MC_RF_NOBUMP;
	mc_stats_local()->cmd_meta++;
	mc_cmd_add(s->b);
	in->pos += consumed;
	return MC_P_OK;
}

enum mc_parse_rc mc_meta_parse(struct mc_sess *s, struct mc_input *in, const char *line,
			       struct mc_tok *t, unsigned nt, size_t consumed)
{
	char op = line[t[0].off + 1];

	if (op == 'n')	/* mn: takes no flags, ignores any */
		return meta_answer(s, in, consumed, "MN\r\n");
	if (op == 'e')
		return meta_debug(s, in, line, t, nt, consumed);
	if (nt < 3 || !strchr("gsda", op))
		return meta_answer(s, in, consumed, "ERROR\r\n");
	switch (op) {
	case 'g':
		return meta_get(s, in, line, t, nt, consumed);
	case 's':
		return meta_set(s, in, line, t, nt, consumed);
	case 'd':
		return meta_delete(s, in, line, t, nt, consumed);
	default:
		return meta_arith(s, in, line, t, nt, consumed);
	}
}

/* ---- answers --------------------------------------------------------------- */

/* " k<key>", base64 with a trailing " b" when the key came that way. */
static char *put_key(char *p, const struct mc_req *r, bool b64)
{
	*p++ = ' ';
	*p++ = 'k';
	if (!b64) {
		memcpy(p, r->key, r->nkey);
		return p + r->nkey;
	}
	p += mc_b64_encode(r->key, r->nkey, p, 4 * ((MC_KEY_MAX + 2) / 3));
	*p++ = ' ';
	*p++ = 'b';
	return p;
}

/* Echo the flags of @which (a subset of ret[]) for result @res. */
static char *put_flags(char *p, const struct mc_cmd *c, const struct mc_req *r,
		       const struct mc_res *res, const struct mc_item *it,
		       const char *which)
{
	const struct mc_meta_cmd *m = &c->u.m;

	for (unsigned i = 0; i < m->nret; i++) {
		char f = m->ret[i];
		if (!strchr(which, f))
			continue;
		switch (f) {
		case 'O':
			*p++ = ' ';
			memcpy(p, m->opaque, m->nopaque);
			p += m->nopaque;
			break;
		case 'k':
			p = put_key(p, r, m->vflags & MC_MF_B64);
			break;
		case 'c':
			*p++ = ' ';
			*p++ = 'c';
			p = mc_fmt_u64(p, res->status == MC_OK ? res->cas : 0);
			break;
		case 't':
			*p++ = ' ';
			*p++ = 't';
			p = mc_fmt_i64(p, res->ttl);
			break;
		case 's':
			*p++ = ' ';
			*p++ = 's';
			p = mc_fmt_u64(p, it->nbytes);
			break;
		case 'f':
			*p++ = ' ';
			*p++ = 'f';
			p = mc_fmt_u64(p, it->client_flags);
			break;
		case 'l':
			*p++ = ' ';
			*p++ = 'l';
			p = mc_fmt_u64(p, res->last_access);
			break;
		case 'h':
			*p++ = ' ';
			*p++ = 'h';
			*p++ = (res->rflags & MC_RES_HIT) ? '1' : '0';
			break;
		}
	}
	return p;
}

/* Room for any meta answer line. */
#define META_LINE_MAX (16 + 2 * MC_META_MAXTOK * 24 + MC_META_OPAQUE + 4 * MC_KEY_MAX)

static void reply_get(struct mc_sess *s, struct mc_cmd *c, struct mc_req *r,
		      struct mc_res *res)
{
	struct mc_out *o = &s->out;
	struct mc_item *it = res->item;
	char *p;

	if (res->status != MC_OK || !it) {
		if (c->u.m.vflags & MC_MF_QUIET)
			return;
		if (!(p = mc_out_room(o, META_LINE_MAX)))
			return;
		memcpy(p, "EN", 2);
		p = put_flags(p + 2, c, r, res, NULL, "Ok");
		*p++ = '\r';
		*p++ = '\n';
		mc_out_commit(o, p);
		return;
	}
	res->item = NULL;
	if (!(p = mc_out_room(o, META_LINE_MAX))) {
		mc_item_put(it);
		return;
	}
	if (c->u.m.vflags & MC_MF_VALUE) {
		memcpy(p, "VA ", 3);
		p = mc_fmt_u64(p + 3, it->nbytes);
	} else {
		memcpy(p, "HD", 2);
		p += 2;
	}
	p = put_flags(p, c, r, res, it, "stcflhOk");
	if (res->rflags & MC_RES_WONBY) {
		memcpy(p, " Z", 2);
		p += 2;
	}
	if (res->rflags & MC_RES_STALE) {
		memcpy(p, " X", 2);
		p += 2;
	}
	if (res->rflags & MC_RES_WIN) {
		memcpy(p, " W", 2);
		p += 2;
	}
	*p++ = '\r';
	*p++ = '\n';
	mc_out_commit(o, p);
	if (c->u.m.vflags & MC_MF_VALUE)
		mc_out_value(o, it, mc_item_value(it), (size_t)it->nbytes + 2);
	else
		mc_item_put(it);
}

/* HD/NS/EX/NF answers of ms, md and a failed ma. */
static void reply_code(struct mc_sess *s, struct mc_cmd *c, struct mc_req *r,
		       struct mc_res *res, const char *code, const char *which)
{
	char *p = mc_out_room(&s->out, META_LINE_MAX);
	if (!p)
		return;
	memcpy(p, code, 2);
	p = put_flags(p + 2, c, r, res, NULL, which);
	*p++ = '\r';
	*p++ = '\n';
	mc_out_commit(&s->out, p);
}

static void reply_set(struct mc_sess *s, struct mc_cmd *c, struct mc_req *r,
		      struct mc_res *res)
{
	switch (res->status) {
	case MC_OK:
		if (!(c->u.m.vflags & MC_MF_QUIET))
			reply_code(s, c, r, res, "HD", "Okc");
		break;
	case MC_EXISTS:
		reply_code(s, c, r, res, "EX", "Okc");
		break;
	case MC_MISS:
		reply_code(s, c, r, res, "NF", "Okc");
		break;
	case MC_NOMEM:
		MC_OUT_LIT(&s->out, "SERVER_ERROR out of memory storing object\r\n");
		break;
	default:
		reply_code(s, c, r, res, "NS", "Okc");
		break;
	}
}

static void reply_delete(struct mc_sess *s, struct mc_cmd *c, struct mc_req *r,
			 struct mc_res *res)
{
	if (c->flags & MC_CF_NOREPLY)
		return;		/* the delete after a refused ms */
	switch (res->status) {
	case MC_OK:
		if (!(c->u.m.vflags & MC_MF_QUIET))
			reply_code(s, c, r, res, "HD", "Ok");
		break;
	case MC_EXISTS:
		reply_code(s, c, r, res, "EX", "Ok");
		break;
	default:
		reply_code(s, c, r, res, "NF", "Ok");
		break;
	}
}

static void reply_arith(struct mc_sess *s, struct mc_cmd *c, struct mc_req *r,
			struct mc_res *res)
{
	struct mc_out *o = &s->out;

	if (res->item) {
		mc_item_put(res->item);
		res->item = NULL;
	}
	switch (res->status) {
	case MC_OK:
		break;
	case MC_NON_NUMERIC:
		MC_OUT_LIT(o, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
		return;
	case MC_NOMEM:
	case MC_TOO_LARGE:
		MC_OUT_LIT(o, "SERVER_ERROR out of memory\r\n");
		return;
	case MC_MISS:
		reply_code(s, c, r, res, "NF", "Ok");
		return;
	case MC_EXISTS:
		reply_code(s, c, r, res, "EX", "Ok");
		return;
	default:
		reply_code(s, c, r, res, "NS", "Ok");
		return;
	}
	if (c->u.m.vflags & MC_MF_QUIET)
		return;
	char num[24];
	size_t nlen = (size_t)(mc_fmt_u64(num, res->value) - num);
	char *p = mc_out_room(o, META_LINE_MAX + 24);
	if (!p)
		return;
	if (c->u.m.vflags & MC_MF_VALUE) {
		memcpy(p, "VA ", 3);
		p = mc_fmt_u64(p + 3, nlen);
	} else {
		memcpy(p, "HD", 2);
		p += 2;
	}
	p = put_flags(p, c, r, res, NULL, "ctOk");
	*p++ = '\r';
	*p++ = '\n';
	if (c->u.m.vflags & MC_MF_VALUE) {
		memcpy(p, num, nlen);
		p += nlen;
		*p++ = '\r';
		*p++ = '\n';
	}
	mc_out_commit(o, p);
}

static void reply_debug(struct mc_sess *s, struct mc_cmd *c, struct mc_req *r,
			struct mc_res *res)
{
	struct mc_out *o = &s->out;
	struct mc_item *it = res->item;

	if (res->status != MC_OK || !it) {
		MC_OUT_LIT(o, "EN\r\n");
		return;
	}
	res->item = NULL;
	char *p = mc_out_room(o, META_LINE_MAX + 128);
	if (p) {
		memcpy(p, "ME ", 3);
		p += 3;
		if (c->u.m.vflags & MC_MF_B64) {
			p += mc_b64_encode(r->key, r->nkey, p, 4 * ((MC_KEY_MAX + 2) / 3));
		} else {
			memcpy(p, r->key, r->nkey);
			p += r->nkey;
		}
		/* Stock prints "now - exptime": minus the TTL left. */
		memcpy(p, " exp=", 5);
		p = mc_fmt_i64(p + 5, res->ttl < 0 ? -1 : -(int64_t)res->ttl);
		memcpy(p, " la=", 4);
		p = mc_fmt_u64(p + 4, res->last_access);
		memcpy(p, " cas=", 5);
		p = mc_fmt_u64(p + 5, res->cas);
		if (res->rflags & MC_RES_HIT) {
			memcpy(p, " fetch=yes", 10);
			p += 10;
		} else {
			memcpy(p, " fetch=no", 9);
			p += 9;
		}
		/* Stock's ITEM_ntotal: header, key + NUL, value + CRLF, cas. */
		memcpy(p, " cls=1 size=", 12);
		p = mc_fmt_u64(p + 12, (uint64_t)MC_ITEM_OVERHEAD + it->nkey + 1 + it->nbytes +
				       2 + (mc_settings.cas_enabled ? 8 : 0));
		*p++ = '\r';
		*p++ = '\n';
		mc_out_commit(o, p);
	}
	mc_item_put(it);
}

void mc_meta_reply(struct mc_sess *s, struct mc_cmd *c)
{
	struct mc_batch *b = s->b;

	if (c->nreq == 0) {	/* a fixed line: an error, MN */
		mc_out_str(&s->out, c->u.t.str, c->u.t.len);
		return;
	}
	if (SK_UNLIKELY(b->exec_err)) {
		if (!(c->flags & MC_CF_NOREPLY))
			MC_OUT_LIT(&s->out, "SERVER_ERROR out of memory\r\n");
		return;
	}
	struct mc_req *r = &b->req[c->first];
	struct mc_res *res = &b->res[c->first];
	switch (c->kind) {
	case MK_GET:
		reply_get(s, c, r, res);
		break;
	case MK_SET:
		reply_set(s, c, r, res);
		break;
	case MK_DELETE:
		reply_delete(s, c, r, res);
		break;
	case MK_ARITH:
		reply_arith(s, c, r, res);
		break;
	default:
		reply_debug(s, c, r, res);
		break;
	}
}

/* ---- base64 -------------------------------------------------------------- */

static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Strict: groups of four, '=' padding only at the very end. */
size_t mc_b64_decode(const char *in, size_t n, char *out, size_t cap)
{
	char tmp[MC_KEY_MAX + 3];
	size_t o = 0;

	if (n == 0 || n % 4)
		return 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			char ch = in[i + k];
			if (ch == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad || (v[k] = b64_val(ch)) < 0)
				return 0;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (o + 3 - pad > sizeof(tmp) || o + 3 - pad > cap)
			return 0;
		tmp[o++] = (char)(w >> 16);
		if (pad < 2)
			tmp[o++] = (char)(w >> 8);
		if (pad < 1)
			tmp[o++] = (char)w;
	}
	memcpy(out, tmp, o);
	return o;
}

size_t mc_b64_encode(const char *in, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	const unsigned char *u = (const unsigned char *)in;

	if (4 * ((n + 2) / 3) > cap)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)u[i] << 16;
		if (i + 1 < n)
			w |= (uint32_t)u[i + 1] << 8;
		if (i + 2 < n)
			w |= u[i + 2];
		out[o++] = b64_chars[(w >> 18) & 63];
		out[o++] = b64_chars[(w >> 12) & 63];
		out[o++] = i + 1 < n ? b64_chars[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_chars[w & 63] : '=';
	}
	return o;
}
