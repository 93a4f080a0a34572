/* Leveled logging to stderr. Never called on the allocation or launch hot
 * path except on errors that end the call. */
#ifndef MOSAIC_LOG_H
#define MOSAIC_LOG_H

enum mosaic_log_level {
	MOSAIC_LOG_QUIET = 0,
	MOSAIC_LOG_ERROR = 1,
	MOSAIC_LOG_WARN = 2,
	MOSAIC_LOG_INFO = 3,
	MOSAIC_LOG_DEBUG = 4,
};

/* Level from MOSAIC_ENFORCER_LOG: quiet|error|warn|info|debug; error when
 * unset or unknown. */
enum mosaic_log_level mosaic_log_level(void);

__attribute__((format(printf, 2, 3))) void mosaic_log(enum mosaic_log_level level, const char *fmt, ...);

#endif
