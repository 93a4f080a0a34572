#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define MAX_FILE 65536

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Plain decimal digits, no sign, no spaces, no overflow. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	*out = v;
	return 0;
}

int mosaic_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {{"", 0},   {"k", 10},  {"K", 10},  {"m", 20},  {"M", 20},
		     {"g", 30}, {"G", 30},  {"Ki", 10}, {"Mi", 20}, {"Gi", 30}};
	if (s == NULL)
		return -1;
	size_t n = strspn(s, "0123456789");
	uint64_t v;
	if (parse_u64(s, n, &v) != 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(s + n, units[i].suffix) != 0)
			continue;
		if (units[i].shift != 0 && v > (UINT64_MAX >> units[i].shift))
			return -1;
		*out = v << units[i].shift;
		return 0;
	}
	return -1;
}

static int parse_policy(const char *s, enum mosaic_policy *out)
{
	if (strcmp(s, "default") == 0)
		*out = MOSAIC_POLICY_DEFAULT;
	else if (strcmp(s, "force") == 0)
		*out = MOSAIC_POLICY_FORCE;
	else if (strcmp(s, "disable") == 0)
		*out = MOSAIC_POLICY_DISABLE;
	else
		return -1;
	return 0;
}

#define MAX_TOKENS 8

static int split(char *line, char **tok)
{
	int n = 0;
	for (char *save = NULL, *t = strtok_r(line, " \t\r", &save); t != NULL; t = strtok_r(NULL, " \t\r", &save)) {
		if (n == MAX_TOKENS)
			return MAX_TOKENS + 1;
		tok[n++] = t;
	}
	return n;
}

static int parse_card(char **tok, int n, struct mosaic_config *cfg, int lineno, char *err, size_t errlen)
{
	uint64_t ord, mem = 0, cores = 0;
	int have_mem = 0, have_cores = 0;
	if (n < 5)
		return fail(err, errlen, "line %d: want 'card <ordinal> <uuid> memory=<bytes> cores=<0-100>'", lineno);
	if (parse_u64(tok[1], strlen(tok[1]), &ord) != 0 || ord >= MOSAIC_MAX_CARDS)
		return fail(err, errlen, "line %d: bad ordinal '%s' (0-%d)", lineno, tok[1], MOSAIC_MAX_CARDS - 1);
	size_t ulen = strlen(tok[2]);
	if (ulen < 5 || ulen >= sizeof cfg->cards[0].uuid || strchr(tok[2], '=') != NULL ||
	    (strncmp(tok[2], "GPU-", 4) != 0 && strncmp(tok[2], "MIG-", 4) != 0))
		return fail(err, errlen, "line %d: bad uuid '%s'", lineno, tok[2]);
	for (int i = 3; i < n; i++) {
		char *eq = strchr(tok[i], '=');
		if (eq == NULL)
			return fail(err, errlen, "line %d: want key=value, got '%s'", lineno, tok[i]);
		size_t klen = (size_t)(eq - tok[i]);
		const char *val = eq + 1;
		if (klen == 6 && strncmp(tok[i], "memory", 6) == 0 && !have_mem) {
			if (parse_u64(val, strlen(val), &mem) != 0)
				return fail(err, errlen, "line %d: bad memory '%s'", lineno, val);
			have_mem = 1;
		} else if (klen == 5 && strncmp(tok[i], "cores", 5) == 0 && !have_cores) {
			if (parse_u64(val, strlen(val), &cores) != 0 || cores > 100)
				return fail(err, errlen, "line %d: bad cores '%s' (0-100)", lineno, val);
			have_cores = 1;
		} else {
			return fail(err, errlen, "line %d: unknown or repeated key '%.*s'", lineno, (int)klen, tok[i]);
		}
	}
	if (!have_mem || !have_cores)
		return fail(err, errlen, "line %d: memory= and cores= are both required", lineno);
	struct mosaic_card *c = &cfg->cards[ord];
	if (c->present)
		return fail(err, errlen, "line %d: duplicate ordinal %llu", lineno, (unsigned long long)ord);
	for (int i = 0; i < MOSAIC_MAX_CARDS; i++)
		if (cfg->cards[i].present && strcmp(cfg->cards[i].uuid, tok[2]) == 0)
			return fail(err, errlen, "line %d: duplicate uuid %s", lineno, tok[2]);
	c->present = 1;
	memcpy(c->uuid, tok[2], ulen + 1);
	c->memory = mem == 0 ? MOSAIC_UNLIMITED : mem;
	c->cores = (int)cores;
	return 0;
}

int mosaic_parse_limits(const char *text, struct mosaic_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->policy = MOSAIC_POLICY_DEFAULT;
	cfg->from_file = 1;
	size_t len = strlen(text);
	if (len >= MAX_FILE)
		return fail(err, errlen, "file larger than %d bytes", MAX_FILE);
	char *copy = strdup(text);
	if (copy == NULL)
		return fail(err, errlen, "out of memory");
	int rc = 0, lineno = 0, have_header = 0, have_policy = 0;
	for (char *line = copy, *next; line != NULL && rc == 0; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		char *tok[MAX_TOKENS];
		int n = split(line, tok);
		if (n == 0 || tok[0][0] == '#')
			continue;
		if (n > MAX_TOKENS) {
			rc = fail(err, errlen, "line %d: too many fields", lineno);
		} else if (!have_header) {
			if (n != 2 || strcmp(tok[0], "mosaic-limits") != 0)
				rc = fail(err, errlen, "line %d: first line must be 'mosaic-limits 1'", lineno);
			else if (strcmp(tok[1], "1") != 0)
				rc = fail(err, errlen, "line %d: unsupported version '%s'", lineno, tok[1]);
			have_header = 1;
		} else if (strcmp(tok[0], "policy") == 0) {
			if (n != 2 || have_policy || parse_policy(tok[1], &cfg->policy) != 0)
				rc = fail(err, errlen, "line %d: want one 'policy default|force|disable'", lineno);
			have_policy = 1;
		} else if (strcmp(tok[0], "card") == 0) {
			rc = parse_card(tok, n, cfg, lineno, err, errlen);
		} else {
			rc = fail(err, errlen, "line %d: unknown directive '%s'", lineno, tok[0]);
		}
	}
	if (rc == 0 && !have_header)
		rc = fail(err, errlen, "missing 'mosaic-limits 1' header");
	free(copy);
	return rc;
}

static uint64_t lower_memory(uint64_t cur, uint64_t env) { return env < cur ? env : cur; }

/* 0 and 100 both mean "no compute limit"; compare them as 100. */
static int lower_cores(int cur, int env)
{
	int c = (cur == 0) ? 100 : cur, e = (env == 0) ? 100 : env;
	int v = e < c ? e : c;
	return v == 100 ? cur : v;
}

int mosaic_apply_env(struct mosaic_config *cfg, mosaic_getenv_fn get, char *err, size_t errlen)
{
	const char *s;
	uint64_t v;
	if ((s = get("GPU_CORE_UTILIZATION_POLICY")) != NULL) {
		enum mosaic_policy p;
		if (parse_policy(s, &p) != 0)
			return fail(err, errlen, "GPU_CORE_UTILIZATION_POLICY='%s': want default|force|disable", s);
		/* With a limits file the environment may only tighten. */
		if (!cfg->from_file || p > cfg->policy)
			cfg->policy = p;
	}
	if ((s = get("CUDA_DEVICE_SM_LIMIT")) != NULL) {
		if (parse_u64(s, strlen(s), &v) != 0 || v > 100)
			return fail(err, errlen, "CUDA_DEVICE_SM_LIMIT='%s': want 0-100", s);
		for (int i = 0; i < MOSAIC_MAX_CARDS; i++)
			if (cfg->cards[i].present)
				cfg->cards[i].cores = cfg->from_file ? lower_cores(cfg->cards[i].cores, (int)v) : (int)v;
		if (!cfg->from_file) {
			cfg->all.present = 1;
			cfg->all.cores = (int)v;
		}
	}
	if ((s = get("CUDA_DEVICE_MEMORY_LIMIT")) != NULL) {
		if (mosaic_parse_size(s, &v) != 0)
			return fail(err, errlen, "CUDA_DEVICE_MEMORY_LIMIT='%s': want bytes with k/m/g/Ki/Mi/Gi", s);
		uint64_t lim = v == 0 ? MOSAIC_UNLIMITED : v;
		for (int i = 0; i < MOSAIC_MAX_CARDS; i++)
			if (cfg->cards[i].present)
				cfg->cards[i].memory = lower_memory(cfg->cards[i].memory, lim);
		if (!cfg->from_file) {
			cfg->all.present = 1;
			cfg->all.memory = lim;
		}
	} else if (!cfg->from_file) {
		cfg->all.memory = MOSAIC_UNLIMITED;
	}
	for (int i = 0; i < MOSAIC_MAX_CARDS; i++) {
		char name[40];
		snprintf(name, sizeof name, "CUDA_DEVICE_MEMORY_LIMIT_%d", i);
		if ((s = get(name)) == NULL)
			continue;
		if (mosaic_parse_size(s, &v) != 0)
			return fail(err, errlen, "%s='%s': want bytes with k/m/g/Ki/Mi/Gi", name, s);
		uint64_t lim = v == 0 ? MOSAIC_UNLIMITED : v;
		struct mosaic_card *c = &cfg->cards[i];
		if (cfg->from_file) {
			if (c->present)
				c->memory = lower_memory(c->memory, lim);
			continue;
		}
		if (!c->present) {
			*c = cfg->all;
			c->present = 1;
			c->uuid[0] = '\0';
		}
		c->memory = lim;
	}
	return 0;
}

static const char *sys_getenv(const char *name) { return getenv(name); }

static int read_file(const char *path, char **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
	char *buf = malloc(MAX_FILE);
	size_t len = 0;
	ssize_t r = 0;
	while (buf != NULL && len < MAX_FILE - 1 && (r = read(fd, buf + len, MAX_FILE - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	if (buf == NULL || r < 0) {
		free(buf);
		return fail(err, errlen, "cannot read %s", path);
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		free(buf);
		return fail(err, errlen, "%s: binary content", path);
	}
	*out = buf;
	return 0;
}

int mosaic_prepared(void) { return access(MOSAIC_PREPARED_MARK, F_OK) == 0; }

void mosaic_load_config(struct mosaic_config *cfg)
{
	char err[256] = "";
	const char *path = MOSAIC_DEFAULT_LIMITS_FILE;
	/* The test override only counts where the node agent prepared
	 * nothing; where it did, a missing file is read and fails closed. */
	if (!mosaic_prepared() && access(path, F_OK) != 0 && errno == ENOENT)
		path = getenv("MOSAIC_LIMITS_FILE");
	int rc = 0;
	if (path != NULL) {
		char *text = NULL;
		rc = read_file(path, &text, err, sizeof err);
		if (rc == 0)
			rc = mosaic_parse_limits(text, cfg, err, sizeof err);
		free(text);
		if (rc != 0)
			mosaic_log(MOSAIC_LOG_ERROR, "limits file rejected, denying all GPU memory: %s", err);
	} else {
		memset(cfg, 0, sizeof *cfg);
		cfg->policy = MOSAIC_POLICY_DEFAULT;
	}
	if (rc == 0 && (rc = mosaic_apply_env(cfg, sys_getenv, err, sizeof err)) != 0)
		mosaic_log(MOSAIC_LOG_ERROR, "environment rejected, denying all GPU memory: %s", err);
	if (rc != 0) {
		memset(cfg, 0, sizeof *cfg);
		cfg->fail_closed = 1;
		cfg->policy = MOSAIC_POLICY_DEFAULT;
	}
}

const struct mosaic_card *mosaic_config_card(const struct mosaic_config *cfg, int ordinal)
{
	if (ordinal >= 0 && ordinal < MOSAIC_MAX_CARDS && cfg->cards[ordinal].present)
		return &cfg->cards[ordinal];
	return cfg->all.present ? &cfg->all : NULL;
}
