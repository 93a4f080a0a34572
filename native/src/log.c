#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cached_level = -1;

enum mosaic_log_level mosaic_log_level(void)
{
	int lvl = __atomic_load_n(&cached_level, __ATOMIC_RELAXED);
	if (lvl >= 0)
		return (enum mosaic_log_level)lvl;
	const char *s = getenv("MOSAIC_ENFORCER_LOG");
	lvl = MOSAIC_LOG_ERROR;
	if (s != NULL) {
		if (strcmp(s, "quiet") == 0 || strcmp(s, "off") == 0)
			lvl = MOSAIC_LOG_QUIET;
		else if (strcmp(s, "warn") == 0)
			lvl = MOSAIC_LOG_WARN;
		else if (strcmp(s, "info") == 0)
			lvl = MOSAIC_LOG_INFO;
		else if (strcmp(s, "debug") == 0)
			lvl = MOSAIC_LOG_DEBUG;
	}
	__atomic_store_n(&cached_level, lvl, __ATOMIC_RELAXED);
	return (enum mosaic_log_level)lvl;
}

void mosaic_log(enum mosaic_log_level level, const char *fmt, ...)
{
	static const char *names[] = {"", "error", "warn", "info", "debug"};
	if (level > mosaic_log_level() || level == MOSAIC_LOG_QUIET)
		return;
	/* One write(2) per message so lines of concurrent processes stay whole. */
	char buf[512];
	int n = snprintf(buf, sizeof buf, "mosaic-enforcer[%d] %s: ", (int)getpid(), names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}
