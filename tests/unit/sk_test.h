/*
 * sk_test.h - the smallest test harness that reports real results.
 *
 * A test file defines cases with SK_TEST(name) { ... } and checks with
 * CHECK()/CHECK_EQ(); one failed check fails the case (and the run goes on).
 * main() comes from here: it runs every case (or those named on the command
 * line), prints "ok"/"not ok" per case, and ends with
 * "# <binary>: N passed, M failed"; the exit status is 1 if any case failed.
 * SK_SKIP(reason) ends a case that cannot run here; it counts as neither.
 * scripts/test adds these lines up over all binaries and builds.
 */
#ifndef SK_TEST_H
#define SK_TEST_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sk_test_case {
	const char *name;
	void (*fn)(void);
};

#define SK_TEST_MAX 256
static struct sk_test_case sk_test_cases[SK_TEST_MAX];
static int sk_test_ncases;
/* Atomic: checks may run on several shard threads at once. */
static _Atomic int sk_test_failed_checks;

static inline void sk_test_register(const char *name, void (*fn)(void))
{
	if (sk_test_ncases < SK_TEST_MAX)
		sk_test_cases[sk_test_ncases++] = (struct sk_test_case){ name, fn };
}

#define SK_TEST(name)                                                          \
	static void name(void);                                                \
	__attribute__((constructor)) static void sk_test_reg_##name(void)      \
	{                                                                      \
		sk_test_register(#name, name);                                 \
	}                                                                      \
	static void name(void)

/*
 * Skip the rest of the case (a facility the machine lacks): it is reported
 * as "ok - name # SKIP reason" and counted neither passed nor failed.
 */
static const char *sk_test_skip_reason;
#define SK_SKIP(reason)                                                        \
	do {                                                                   \
		sk_test_skip_reason = (reason);                                \
		return;                                                        \
	} while (0)

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			sk_test_failed_checks++;                               \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n",         \
				__FILE__, __LINE__, #cond);                    \
		}                                                              \
	} while (0)

#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long sk_a_ = (long long)(a), sk_b_ = (long long)(b);      \
		if (sk_a_ != sk_b_) {                                          \
			sk_test_failed_checks++;                               \
			fprintf(stderr, "  %s:%d: CHECK_EQ(%s, %s): %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, sk_a_, sk_b_);     \
		}                                                              \
	} while (0)

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0;
	const char *prog = strrchr(argv[0], '/');
	prog = prog ? prog + 1 : argv[0];

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < sk_test_ncases; i++) {
		if (argc > 1) {
			int want = 0;
			for (int a = 1; a < argc; a++)
				want |= strcmp(argv[a], sk_test_cases[i].name) == 0;
			if (!want)
				continue;
		}
		int before = sk_test_failed_checks;
		sk_test_skip_reason = NULL;
		sk_test_cases[i].fn();
		if (sk_test_failed_checks == before && sk_test_skip_reason) {
			skipped++;
			printf("ok - %s # SKIP %s\n", sk_test_cases[i].name,
			       sk_test_skip_reason);
		} else if (sk_test_failed_checks == before) {
			passed++;
			printf("ok - %s\n", sk_test_cases[i].name);
		} else {
			failed++;
			printf("not ok - %s\n", sk_test_cases[i].name);
		}
	}
	if (skipped)
		printf("# %s: %d skipped\n", prog, skipped);
	printf("# %s: %d passed, %d failed\n", prog, passed, failed);
	return failed ? 1 : 0;
}

#endif /* SK_TEST_H */
