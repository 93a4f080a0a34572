/* Limits: the limits file written by the node agent, and the HAMi-style
 * environment variables. Pure parsing, no CUDA. */
#ifndef MOSAIC_CONFIG_H
#define MOSAIC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define MOSAIC_MAX_CARDS 16
#define MOSAIC_UNLIMITED UINT64_MAX
/* Where the node agent mounts a container's files. A build for tests may
 * move it (-DMOSAIC_RUN_DIR=...); production builds never do. */
#ifndef MOSAIC_RUN_DIR
#define MOSAIC_RUN_DIR "/run/mosaic"
#endif
#define MOSAIC_DEFAULT_LIMITS_FILE MOSAIC_RUN_DIR "/limits.conf"
#define MOSAIC_PREPARED_MARK MOSAIC_RUN_DIR "/shared"

enum mosaic_policy { MOSAIC_POLICY_DISABLE = 0, MOSAIC_POLICY_DEFAULT = 1, MOSAIC_POLICY_FORCE = 2 };

struct mosaic_card {
	int present;
	char uuid[64];   /* "" when the card came from environment variables */
	uint64_t memory; /* bytes, MOSAIC_UNLIMITED for none */
	int cores;       /* percent of the card's time; 0 or 100: no compute limit */
};

struct mosaic_config {
	int fail_closed; /* the configuration was rejected: deny every allocation */
	int from_file;
	enum mosaic_policy policy;
	/* Limits for any ordinal not in cards[] (CUDA_DEVICE_MEMORY_LIMIT and
	 * CUDA_DEVICE_SM_LIMIT without a limits file); present = 0 when none. */
	struct mosaic_card all;
	struct mosaic_card cards[MOSAIC_MAX_CARDS]; /* indexed by ordinal */
};

typedef const char *(*mosaic_getenv_fn)(const char *name);

/* Parses a limits file. Returns 0, or -1 with a message in err. */
int mosaic_parse_limits(const char *text, struct mosaic_config *cfg, char *err, size_t errlen);

/* Strict HAMi size: digits with an optional k/K, m/M, g/G, Ki, Mi or Gi
 * suffix, all binary multiples. Returns 0, or -1 on junk or overflow. */
int mosaic_parse_size(const char *s, uint64_t *out);

/* Applies the environment variables to cfg: they set the limits when
 * cfg->from_file is 0 and may only lower them otherwise. Returns 0, or -1
 * with a message in err (the caller fails closed). */
int mosaic_apply_env(struct mosaic_config *cfg, mosaic_getenv_fn get, char *err, size_t errlen);

/* Reads the limits file (or MOSAIC_LIMITS_FILE when the default one does not
 * exist) and the environment; a rejected configuration fails closed, with one
 * error message. */
void mosaic_load_config(struct mosaic_config *cfg);

/* 1 in a container the node agent prepared: it always mounts the shared
 * directory with the limits file. There the limits file, the shared
 * directory and the card regions are the agent's, never the environment's
 * (MOSAIC_LIMITS_FILE, MOSAIC_SHARED_DIR, MOSAIC_CARD_DIR are for tests and
 * for hosts without the agent), and a missing limits file fails closed. */
int mosaic_prepared(void);

/* The limits of one card: cards[ordinal] if present, else cfg->all. Returns
 * NULL when nothing limits this card. */
const struct mosaic_card *mosaic_config_card(const struct mosaic_config *cfg, int ordinal);

#endif
