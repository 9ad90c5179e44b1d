/*
 * skerry/log.h - log lines with time, level and shard.
 *
 *   2026-11-25T01:50:23.123456Z [shard 1] info: memory: ...
 *
 * Each line is written with one console write, so lines of different shards
 * never interleave.  Lines below the global level are dropped cheaply.
 */
#ifndef SKERRY_LOG_H
#define SKERRY_LOG_H

enum sk_log_level {
	SK_LOG_ERROR = 0,
	SK_LOG_WARN,
	SK_LOG_INFO,
	SK_LOG_DEBUG,
	SK_LOG_TRACE,
};

extern int sk_log_level;

void sk_log_set_level(enum sk_log_level level);
/* Parse "error|warn|info|debug|trace"; -1 if unknown. */
int sk_log_parse_level(const char *name);
void sk_log_write(enum sk_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define sk_log(level, ...)                                                     \
	do {                                                                   \
		if ((int)(level) <= sk_log_level)                              \
			sk_log_write((level), __VA_ARGS__);                    \
	} while (0)
#define sk_log_error(...) sk_log(SK_LOG_ERROR, __VA_ARGS__)
#define sk_log_warn(...)  sk_log(SK_LOG_WARN, __VA_ARGS__)
#define sk_log_info(...)  sk_log(SK_LOG_INFO, __VA_ARGS__)
#define sk_log_debug(...) sk_log(SK_LOG_DEBUG, __VA_ARGS__)

/* Invariant check that is never compiled out; prints and aborts. */
#define SK_ASSERT(cond)                                                        \
	do {                                                                   \
		if (SK_UNLIKELY_(!(cond)))                                     \
			sk_assert_fail(#cond, __FILE__, __LINE__);             \
	} while (0)
#define SK_UNLIKELY_(x) __builtin_expect(!!(x), 0)
_Noreturn void sk_assert_fail(const char *what, const char *file, int line);

#endif /* SKERRY_LOG_H */
