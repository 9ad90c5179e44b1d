/*
 * options.c - the command line shared by every skerry program.
 *
 * A table walk, not getopt: the same code runs in the unikernel, where the
 * command line comes from the boot loader.  Runtime options come first in
 * the table search, then the program's own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sk_config.h"
#include "skerry/log.h"
#include "skerry/options.h"

void sk_opts_init(struct sk_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->log_level = SK_LOG_INFO;
	o->idle_spin_ns = 50000;
	o->task_budget_ns = 500000;
	o->stop_grace_ns = 10000000000ull;
}

int sk_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if ((*end == 'b' || *end == 'B') && shift)
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int sk_parse_cpuset(const char *s, unsigned *cpus, unsigned max)
{
	unsigned n = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		char *end;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		unsigned long a = strtoul(p, &end, 10), b = a;
		p = end;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			b = strtoul(p, &end, 10);
			p = end;
		}
		if (b < a || b > 4095)
			return -EINVAL;
		for (unsigned long c = a; c <= b; c++) {
			for (unsigned i = 0; i < n; i++)
				if (cpus[i] == c)
					return -EINVAL;	/* listed twice */
			if (n == max)
				return -EINVAL;
			cpus[n++] = (unsigned)c;
		}
		if (*p == ',')
			p++;
		else if (*p)
			return -EINVAL;
	}
	return (int)n;
}

/* Runtime options, stored in a static struct while parsing. */
static unsigned long long opt_smp;
static const char *opt_cpuset, *opt_log_level;
static uint64_t opt_memory;
static unsigned long long opt_spin_us, opt_budget_us, opt_grace_ms;
static bool opt_help, opt_version;

static const struct sk_option runtime_options[] = {
	{ "smp", 't', SK_OPT_UINT, &opt_smp, "N", "number of shards (0 = one per available core)" },
	{ "cpuset", 0, SK_OPT_STRING, &opt_cpuset, "LIST", "CPUs to run shards on, e.g. 0-3,6 (default: all allowed)" },
	{ "memory", 0, SK_OPT_SIZE, &opt_memory, "SIZE", "memory for all shards, e.g. 2g (0 = all RAM)" },
	{ "log-level", 0, SK_OPT_STRING, &opt_log_level, "LEVEL", "error, warn, info, debug or trace" },
	{ "idle-spin-us", 0, SK_OPT_UINT, &opt_spin_us, "US", "spin this long before an idle shard sleeps" },
	{ "task-budget-us", 0, SK_OPT_UINT, &opt_budget_us, "US", "task time per reactor round before polling" },
	{ "stop-grace-ms", 0, SK_OPT_UINT, &opt_grace_ms, "MS", "longest wait for work in flight when stopping" },
	{ "help", 'h', SK_OPT_FLAG, &opt_help, NULL, "print this help and exit" },
	{ "version", 'V', SK_OPT_FLAG, &opt_version, NULL, "print the version and exit" },
	{ 0 },
};

static void describe_default(const struct sk_option *opt, char *buf, size_t len)
{
	buf[0] = '\0';
	switch (opt->type) {
	case SK_OPT_UINT:
		snprintf(buf, len, " (default %llu)", *(unsigned long long *)opt->target);
		break;
	case SK_OPT_SIZE:
		snprintf(buf, len, " (default %" PRIu64 ")", *(uint64_t *)opt->target);
		break;
	case SK_OPT_STRING:
		if (*(const char **)opt->target)
			snprintf(buf, len, " (default %s)", *(const char **)opt->target);
		break;
	default:
		break;
	}
}

static void print_table(const struct sk_option *t)
{
	for (; t && (t->name || t->short_name); t++) {
		char left[64], def[96];
		int n = 0;
		if (t->short_name)
			n = snprintf(left, sizeof(left), "-%c%s", t->short_name, t->name ? ", " : "");
		else
			n = snprintf(left, sizeof(left), "    ");
		if (t->name)
			n += snprintf(left + n, sizeof(left) - (size_t)n, "--%s", t->name);
		if (t->arg_name)
			snprintf(left + n, sizeof(left) - (size_t)n, " %s", t->arg_name);
		describe_default(t, def, sizeof(def));
		printf("  %-26s %s%s\n", left, t->help, def);
	}
}

void sk_options_help(const struct sk_program *prog)
{
	opt_log_level = "info";
	printf("Usage: %s [OPTION]...\n%s\n\n", prog->name, prog->summary);
	if (prog->options && (prog->options->name || prog->options->short_name)) {
		printf("Options:\n");
		print_table(prog->options);
		printf("\n");
	}
	printf("Runtime options (every skerry program):\n");
	print_table(runtime_options);
	printf("\nExit status: 0 on success, 1 on failure, 2 on bad usage.\n");
}

static const struct sk_option *find(const struct sk_program *prog,
				    const char *lname, size_t llen, char sname)
{
	const struct sk_option *tables[2] = { runtime_options, prog->options };
	for (int k = 0; k < 2; k++) {
		for (const struct sk_option *t = tables[k]; t && (t->name || t->short_name); t++) {
			if (lname && t->name && strlen(t->name) == llen &&
			    strncmp(t->name, lname, llen) == 0)
				return t;
			if (!lname && sname && t->short_name == sname)
				return t;
		}
	}
	return NULL;
}

static bool takes_value(const struct sk_option *o)
{
	return o->type != SK_OPT_FLAG && o->type != SK_OPT_COUNT;
}

static int store(const struct sk_program *prog, const struct sk_option *o,
		 const char *shown, const char *val)
{
	char *end;
	switch (o->type) {
	case SK_OPT_FLAG:
		*(bool *)o->target = true;
		return 0;
	case SK_OPT_COUNT:
		(*(int *)o->target)++;
		return 0;
	case SK_OPT_UINT:
		errno = 0;
		if (*val == '-' || !*val)
			break;
		*(unsigned long long *)o->target = strtoull(val, &end, 10);
		if (errno || *end)
			break;
		return 0;
	case SK_OPT_SIZE:
		if (sk_parse_size(val, (uint64_t *)o->target) < 0)
			break;
		return 0;
	case SK_OPT_STRING:
		*(const char **)o->target = val;
		return 0;
	}
	fprintf(stderr, "%s: invalid value '%s' for option %s\n", prog->name, val, shown);
	return -EINVAL;
}

static int usage_error(const struct sk_program *prog, const char *fmt, const char *what)
{
	fprintf(stderr, "%s: ", prog->name);
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog->name);
	return -EINVAL;
}

int sk_options_parse(const struct sk_program *prog, int argc, char **argv,
		     struct sk_opts *o)
{
	sk_opts_init(o);
	opt_smp = 0;
	opt_cpuset = NULL;
	opt_memory = 0;
	opt_log_level = NULL;
	opt_spin_us = o->idle_spin_ns / 1000;
	opt_budget_us = o->task_budget_ns / 1000;
	opt_grace_ms = o->stop_grace_ns / 1000000;
	opt_help = opt_version = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct sk_option *opt;
		const char *val = NULL;
		char shown[80];

		if (a[0] != '-' || a[1] == '\0')
			return usage_error(prog, "unexpected argument '%s'", a);
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			opt = find(prog, name, len, 0);
			if (!opt)
				return usage_error(prog, "unknown option '%s'", a);
			snprintf(shown, sizeof(shown), "--%s", opt->name);
			if (takes_value(opt)) {
				if (eq)
					val = eq + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else
					return usage_error(prog, "option '%s' needs a value", shown);
			} else if (eq) {
				return usage_error(prog, "option '%s' takes no value", shown);
			}
			if (store(prog, opt, shown, val) < 0)
				return -EINVAL;
			continue;
		}
		/* One or more bundled short options: -vv, -t2, -t 2. */
		for (const char *p = a + 1; *p; p++) {
			opt = find(prog, NULL, 0, *p);
			if (!opt) {
				char bad[3] = { '-', *p, 0 };
				return usage_error(prog, "unknown option '%s'", bad);
			}
			snprintf(shown, sizeof(shown), "-%c", *p);
			if (takes_value(opt)) {
				if (p[1])
					val = p + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else
					return usage_error(prog, "option '%s' needs a value", shown);
				if (store(prog, opt, shown, val) < 0)
					return -EINVAL;
				break;
			}
			if (store(prog, opt, shown, NULL) < 0)
				return -EINVAL;
		}
	}

	if (opt_help) {
		sk_options_help(prog);
		return 1;
	}
	if (opt_version) {
		printf("%s (skerry) %s, allocator %s\n", prog->name, SK_VERSION, SK_ALLOCATOR);
		return 1;
	}
	if (opt_smp > SK_MAX_SHARDS) {
		fprintf(stderr, "%s: --smp %llu is more than the %d shards supported\n",
			prog->name, opt_smp, SK_MAX_SHARDS);
		return -EINVAL;
	}
	o->smp = (unsigned)opt_smp;
	if (opt_cpuset) {
		int n = sk_parse_cpuset(opt_cpuset, o->cpus, SK_MAX_SHARDS);
		if (n <= 0)
			return usage_error(prog, "invalid --cpuset '%s' (expected a list like 0-3,6)", opt_cpuset);
		o->ncpus = (unsigned)n;
	}
	o->memory = opt_memory;
	if (opt_log_level) {
		int lvl = sk_log_parse_level(opt_log_level);
		if (lvl < 0)
			return usage_error(prog, "invalid --log-level '%s'", opt_log_level);
		o->log_level = lvl;
	}
	/* 0 means "sleep at once"; the reactor reads 0 as its default. */
	o->idle_spin_ns = opt_spin_us ? opt_spin_us * 1000 : 1;
	o->task_budget_ns = opt_budget_us ? opt_budget_us * 1000 : o->task_budget_ns;
	o->stop_grace_ns = opt_grace_ms * 1000000;
	return 0;
}
