/*
 * skerry/options.h - command-line options shared by every skerry program.
 *
 * Every program accepts the runtime options below plus its own table.
 * Short options may be bundled with their value (-t2) or not (-t 2); long
 * ones take --name=value or --name value.  An unknown option or a bad value
 * prints a clear message and makes sk_options_parse() return -EINVAL (the
 * program exits 2).
 *
 * Runtime options:
 *   -t, --smp N            shards (default: one per available core)
 *       --cpuset LIST      CPUs to run on, e.g. 0-3,6 (default: all allowed)
 *       --memory SIZE      memory budget for all shards (default: all RAM)
 *       --log-level LEVEL  error|warn|info|debug|trace (default info)
 *       --idle-spin-us N   spin this long before a shard sleeps (default 50)
 *       --task-budget-us N task time per reactor round (default 500)
 *       --stop-grace-ms N  longest wait for work in flight at shutdown (10000)
 *   -h, --help             this text;  -V, --version
 */
#ifndef SKERRY_OPTIONS_H
#define SKERRY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SK_MAX_SHARDS 64

struct sk_opts {
	unsigned smp;			/* 0 = one per available core */
	unsigned ncpus;			/* entries in cpus[]; 0 = not given */
	unsigned cpus[SK_MAX_SHARDS];	/* from --cpuset */
	uint64_t memory;		/* bytes; 0 = all RAM */
	int log_level;
	uint64_t idle_spin_ns;
	uint64_t task_budget_ns;
	uint64_t stop_grace_ns;		/* longest wait for work at shutdown */
};

enum sk_opt_type {
	SK_OPT_FLAG,	/* bool *, set to true; no value */
	SK_OPT_COUNT,	/* int *, incremented per use (-v -vv); no value */
	SK_OPT_UINT,	/* unsigned long long * */
	SK_OPT_SIZE,	/* uint64_t *: 64, 64k, 64m, 1g */
	SK_OPT_STRING,	/* const char ** */
};

struct sk_option {
	const char *name;	/* long name without "--", or NULL */
	char short_name;	/* 0 if none */
	enum sk_opt_type type;
	void *target;
	const char *arg_name;	/* for --help: "PORT" */
	const char *help;	/* one line; the default is shown from *target */
};

struct sk_program {
	const char *name;	/* "skerry-demo" */
	const char *summary;	/* one line */
	const struct sk_option *options;	/* the program's own, ends with {0} */
};

/* Defaults for @o. */
void sk_opts_init(struct sk_opts *o);

/*
 * Parse argv into @o and the program's own targets.
 * Returns 0 to run, 1 when --help or --version was printed (exit 0), or
 * -EINVAL after printing why (exit 2).  Non-option arguments are errors.
 */
int sk_options_parse(const struct sk_program *prog, int argc, char **argv,
		     struct sk_opts *o);

/* Parse "0-3,6" into cpus; returns the count or -EINVAL. */
int sk_parse_cpuset(const char *s, unsigned *cpus, unsigned max);
/* Parse "64", "64k", "512m", "2g" (powers of 1024); 0 or -EINVAL. */
int sk_parse_size(const char *s, uint64_t *out);

/* Print the help text of @prog to standard output. */
void sk_options_help(const struct sk_program *prog);

#endif /* SKERRY_OPTIONS_H */
