/* test_options.c - the shared command line. */
#include <errno.h>

#include "sk_test.h"
#include "skerry/options.h"

static unsigned long long port = 11211;
static bool flag;
static int verbose;
static uint64_t limit = 64 << 20;
static const char *name = "x";

static const struct sk_option own[] = {
	{ "port", 'p', SK_OPT_UINT, &port, "PORT", "port" },
	{ "flag", 'f', SK_OPT_FLAG, &flag, NULL, "a flag" },
	{ NULL, 'v', SK_OPT_COUNT, &verbose, NULL, "verbose" },
	{ "limit", 'm', SK_OPT_SIZE, &limit, "SIZE", "limit" },
	{ "name", 0, SK_OPT_STRING, &name, "NAME", "name" },
	{ 0 },
};
static const struct sk_program prog = { "test-prog", "A test.", own };

static int parse(int argc, const char **argv, struct sk_opts *o)
{
	return sk_options_parse(&prog, argc, (char **)argv, o);
}

SK_TEST(runtime_and_program_options_parse)
{
	struct sk_opts o;
	const char *a[] = { "p", "-t", "3", "--cpuset=0-1,5", "-p11300", "-fvv",
			    "--limit", "2m", "--name=abc", "--memory", "1g",
			    "--log-level", "debug", "--idle-spin-us", "7" };
	CHECK_EQ(parse(15, a, &o), 0);
	CHECK_EQ(o.smp, 3);
	CHECK_EQ(o.ncpus, 3);
	CHECK_EQ(o.cpus[0], 0);
	CHECK_EQ(o.cpus[1], 1);
	CHECK_EQ(o.cpus[2], 5);
	CHECK_EQ(port, 11300);
	CHECK(flag);
	CHECK_EQ(verbose, 2);
	CHECK_EQ(limit, 2 << 20);
	CHECK(strcmp(name, "abc") == 0);
	CHECK_EQ(o.memory, 1ull << 30);
	CHECK_EQ(o.log_level, 3);
	CHECK_EQ(o.idle_spin_ns, 7000);

	const char *b[] = { "p", "--smp=2" };
	CHECK_EQ(parse(2, b, &o), 0);
	CHECK_EQ(o.smp, 2);
	CHECK_EQ(o.ncpus, 0);
}

SK_TEST(bad_options_are_refused)
{
	struct sk_opts o;
	const char *unknown[] = { "p", "--bogus" };
	CHECK_EQ(parse(2, unknown, &o), -EINVAL);
	const char *short_unknown[] = { "p", "-Z" };
	CHECK_EQ(parse(2, short_unknown, &o), -EINVAL);
	const char *missing[] = { "p", "-t" };
	CHECK_EQ(parse(2, missing, &o), -EINVAL);
	const char *notnum[] = { "p", "-t", "two" };
	CHECK_EQ(parse(3, notnum, &o), -EINVAL);
	const char *neg[] = { "p", "--port", "-1" };
	CHECK_EQ(parse(3, neg, &o), -EINVAL);
	const char *cpus[] = { "p", "--cpuset", "3-1" };
	CHECK_EQ(parse(3, cpus, &o), -EINVAL);
	const char *level[] = { "p", "--log-level", "loud" };
	CHECK_EQ(parse(3, level, &o), -EINVAL);
	const char *stray[] = { "p", "extra" };
	CHECK_EQ(parse(2, stray, &o), -EINVAL);
	const char *flagval[] = { "p", "--flag=1" };
	CHECK_EQ(parse(2, flagval, &o), -EINVAL);
	const char *toomany[] = { "p", "-t", "100000" };
	CHECK_EQ(parse(3, toomany, &o), -EINVAL);
}

SK_TEST(help_and_version_stop_with_1)
{
	struct sk_opts o;
	const char *h[] = { "p", "--help" };
	CHECK_EQ(parse(2, h, &o), 1);
	const char *v[] = { "p", "-V" };
	CHECK_EQ(parse(2, v, &o), 1);
}

SK_TEST(sizes_and_cpusets)
{
	uint64_t v;
	CHECK_EQ(sk_parse_size("64", &v), 0);
	CHECK_EQ(v, 64);
	CHECK_EQ(sk_parse_size("4k", &v), 0);
	CHECK_EQ(v, 4096);
	CHECK_EQ(sk_parse_size("3G", &v), 0);
	CHECK_EQ(v, 3ull << 30);
	CHECK_EQ(sk_parse_size("1MB", &v), 0);
	CHECK_EQ(v, 1 << 20);
	CHECK_EQ(sk_parse_size("1x", &v), -EINVAL);
	CHECK_EQ(sk_parse_size("", &v), -EINVAL);
	CHECK_EQ(sk_parse_size("99999999999999999999", &v), -EINVAL);
	unsigned c[8];
	CHECK_EQ(sk_parse_cpuset("2", c, 8), 1);
	CHECK_EQ(sk_parse_cpuset("0-3,6", c, 8), 5);
	CHECK_EQ(c[4], 6);
	CHECK_EQ(sk_parse_cpuset("1,1", c, 8), -EINVAL);
	CHECK_EQ(sk_parse_cpuset("0-9", c, 8), -EINVAL);
	CHECK_EQ(sk_parse_cpuset("a", c, 8), -EINVAL);
	CHECK_EQ(sk_parse_cpuset("1,", c, 8), 1);
}
