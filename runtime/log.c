/*
 * log.c - formatted log lines: UTC time, shard, level, message.
 *
 * The line is built on the stack and written with one console write so that
 * shards never interleave half lines; nothing here allocates.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "skerry/log.h"
#include "skerry/reactor.h"

int sk_log_level = SK_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace" };

void sk_log_set_level(enum sk_log_level level)
{
	sk_log_level = (int)level;
}

int sk_log_parse_level(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

void sk_log_write(enum sk_log_level level, const char *fmt, ...)
{
	char line[1024];
	uint64_t ns = sk_plat_wall_ns();
	int64_t secs = (int64_t)(ns / 1000000000u);
	int y;
	unsigned mo, d, sod = (unsigned)(secs % 86400);
	size_t n;
	va_list ap;

	civil_from_days(secs / 86400, &y, &mo, &d);
	if (sk_reactor_local())
		n = (size_t)snprintf(line, sizeof(line),
			"%04d-%02u-%02uT%02u:%02u:%02u.%06uZ [shard %u] %s: ",
			y, mo, d, sod / 3600, sod / 60 % 60, sod % 60,
			(unsigned)(ns % 1000000000u / 1000), sk_reactor_id(),
			level_names[level]);
	else
		n = (size_t)snprintf(line, sizeof(line),
			"%04d-%02u-%02uT%02u:%02u:%02u.%06uZ [main] %s: ",
			y, mo, d, sod / 3600, sod / 60 % 60, sod % 60,
			(unsigned)(ns % 1000000000u / 1000), level_names[level]);
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
	line[n++] = '\n';
	sk_plat_console_write(2, line, n);
}

_Noreturn void sk_assert_fail(const char *what, const char *file, int line)
{
	sk_log_write(SK_LOG_ERROR, "assertion failed: %s (%s:%d)", what, file, line);
	abort();	/* SIGABRT: core dump and a clear exit status */
}
