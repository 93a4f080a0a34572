/* Unit tests of the limits file and environment parsing, including the
 * golden files shared with the Go side (pkg/device/testdata). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "check.h"


static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void golden(const char *dir)
{
	char path[512], err[256];
	struct mosaic_config c;
	snprintf(path, sizeof path, "%s/limits-valid.conf", dir);
	char *text = slurp(path);
	CHECK(text != NULL, "cannot read %s", path);
	if (text == NULL)
		return;
	CHECK(mosaic_parse_limits(text, &c, err, sizeof err) == 0, "valid file rejected: %s", err);
	CHECK(c.policy == MOSAIC_POLICY_DEFAULT, "policy %d", c.policy);
	CHECK(c.cards[0].present && strcmp(c.cards[0].uuid, "GPU-6c8b3c2e-1f3a-4d9e-9b1a-0a1b2c3d4e5f") == 0,
	      "card 0 uuid %s", c.cards[0].uuid);
	CHECK(c.cards[0].memory == 4294967296ULL && c.cards[0].cores == 25, "card 0 %llu %d",
	      (unsigned long long)c.cards[0].memory, c.cards[0].cores);
	CHECK(c.cards[1].present && strcmp(c.cards[1].uuid, "GPU-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0") == 0,
	      "card 1 uuid %s", c.cards[1].uuid);
	CHECK(c.cards[1].memory == 8589934592ULL && c.cards[1].cores == 0, "card 1 %llu %d",
	      (unsigned long long)c.cards[1].memory, c.cards[1].cores);
	CHECK(!c.cards[2].present, "card 2 present");
	const char *bad[] = {"limits-invalid-cores.conf", "limits-invalid-key.conf", "limits-invalid-version.conf"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, bad[i]);
		text = slurp(path);
		CHECK(text != NULL, "cannot read %s", path);
		if (text != NULL)
			CHECK(mosaic_parse_limits(text, &c, err, sizeof err) != 0, "%s accepted", bad[i]);
	}
}

#define U0 "GPU-6c8b3c2e-1f3a-4d9e-9b1a-0a1b2c3d4e5f"

static void inline_files(void)
{
	static const struct {
		const char *text;
		int ok;
	} cases[] = {
		{"mosaic-limits 1\n", 1},
		{"\n# c\n  \nmosaic-limits 1\r\npolicy force\r\ncard 3 " U0 " memory=0 cores=100\r\n", 1},
		{"", 0},
		{"# only a comment\n", 0},
		{"policy default\nmosaic-limits 1\n", 0},
		{"mosaic-limits 1 extra\n", 0},
		{"mosaic-limits 01\n", 0},
		{"mosaic-limits 1\npolicy sometimes\n", 0},
		{"mosaic-limits 1\npolicy default\npolicy force\n", 0},
		{"mosaic-limits 1\nlimit 0\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=12x cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=-1 cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=1.5 cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=1g cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=18446744073709551616 cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=1 cores=-1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=1 memory=2 cores=1\n", 0},
		{"mosaic-limits 1\ncard 16 " U0 " memory=1 cores=1\n", 0},
		{"mosaic-limits 1\ncard x " U0 " memory=1 cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 nouuid memory=1 cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=1 cores=1\ncard 0 GPU-1 memory=1 cores=1\n", 0},
		{"mosaic-limits 1\ncard 0 " U0 " memory=1 cores=1\ncard 1 " U0 " memory=1 cores=1\n", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mosaic_config c;
		char err[256] = "";
		int rc = mosaic_parse_limits(cases[i].text, &c, err, sizeof err);
		CHECK((rc == 0) == cases[i].ok, "case %zu: rc %d (%s)", i, rc, err);
	}
	struct mosaic_config c;
	char err[256];
	mosaic_parse_limits(cases[1].text, &c, err, sizeof err);
	CHECK(c.policy == MOSAIC_POLICY_FORCE && c.cards[3].memory == MOSAIC_UNLIMITED && c.cards[3].cores == 100,
	      "memory=0 is no limit: %llu", (unsigned long long)c.cards[3].memory);
}

static void sizes(void)
{
	static const struct {
		const char *s;
		int ok;
		uint64_t want;
	} cases[] = {
		{"0", 1, 0},
		{"1073741824", 1, 1073741824ULL},
		{"1g", 1, 1ULL << 30},
		{"1G", 1, 1ULL << 30},
		{"1024m", 1, 1ULL << 30},
		{"1024M", 1, 1ULL << 30},
		{"1048576k", 1, 1ULL << 30},
		{"1048576K", 1, 1ULL << 30},
		{"1Gi", 1, 1ULL << 30},
		{"512Mi", 1, 512ULL << 20},
		{"4Ki", 1, 4096},
		{"18446744073709551615", 1, UINT64_MAX},
		{"", 0, 0},
		{"12x", 0, 0},
		{"-1", 0, 0},
		{"+1", 0, 0},
		{"1.5g", 0, 0},
		{" 1g", 0, 0},
		{"1g ", 0, 0},
		{"1gb", 0, 0},
		{"1GiB", 0, 0},
		{"1gi", 0, 0},
		{"g", 0, 0},
		{"0x10", 0, 0},
		{"18446744073709551616", 0, 0},
		{"17179869184g", 0, 0},
		{"99999999999999999999999", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 12345;
		int rc = mosaic_parse_size(cases[i].s, &v);
		CHECK((rc == 0) == cases[i].ok, "'%s': rc %d", cases[i].s, rc);
		if (rc == 0 && cases[i].ok)
			CHECK(v == cases[i].want, "'%s': %llu", cases[i].s, (unsigned long long)v);
	}
}

/* A fake environment for mosaic_apply_env. */
static const char *const *fake_env;

static const char *fake_get(const char *name)
{
	for (const char *const *e = fake_env; e != NULL && *e != NULL; e += 2)
		if (strcmp(e[0], name) == 0)
			return e[1];
	return NULL;
}

static int with_env(struct mosaic_config *c, const char *const *env)
{
	char err[256];
	fake_env = env;
	return mosaic_apply_env(c, fake_get, err, sizeof err);
}

static void env(void)
{
	struct mosaic_config c;
	char err[256];

	memset(&c, 0, sizeof c);
	const char *e1[] = {"CUDA_DEVICE_MEMORY_LIMIT", "1g", "CUDA_DEVICE_MEMORY_LIMIT_1", "512m",
			    "CUDA_DEVICE_SM_LIMIT", "30", NULL};
	CHECK(with_env(&c, e1) == 0, "env rejected");
	const struct mosaic_card *k0 = mosaic_config_card(&c, 0), *k1 = mosaic_config_card(&c, 1);
	CHECK(k0 != NULL && k0->memory == 1ULL << 30 && k0->cores == 30, "card 0 from env");
	CHECK(k1 != NULL && k1->memory == 512ULL << 20 && k1->cores == 30, "card 1 from env");
	CHECK(mosaic_config_card(&c, 7) != NULL && mosaic_config_card(&c, 7)->memory == 1ULL << 30, "card 7");

	memset(&c, 0, sizeof c);
	const char *e2[] = {"CUDA_DEVICE_MEMORY_LIMIT_0", "2g", NULL};
	CHECK(with_env(&c, e2) == 0 && mosaic_config_card(&c, 0)->memory == 2ULL << 30 &&
		      mosaic_config_card(&c, 1) == NULL,
	      "per-card only");

	const char *bad[][3] = {{"CUDA_DEVICE_MEMORY_LIMIT", "12x", NULL},
				{"CUDA_DEVICE_MEMORY_LIMIT", "-1", NULL},
				{"CUDA_DEVICE_MEMORY_LIMIT", "1.5g", NULL},
				{"CUDA_DEVICE_MEMORY_LIMIT", "99999999999999999999g", NULL},
				{"CUDA_DEVICE_MEMORY_LIMIT_2", "", NULL},
				{"CUDA_DEVICE_SM_LIMIT", "101", NULL},
				{"CUDA_DEVICE_SM_LIMIT", "5%", NULL},
				{"GPU_CORE_UTILIZATION_POLICY", "sometimes", NULL}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&c, 0, sizeof c);
		CHECK(with_env(&c, bad[i]) != 0, "%s=%s accepted", bad[i][0], bad[i][1]);
	}

	/* With a file, the environment may lower limits but never raise them. */
	const char *file = "mosaic-limits 1\npolicy default\ncard 0 " U0 " memory=1073741824 cores=50\n"
			   "card 1 GPU-2 memory=0 cores=0\n";
	CHECK(mosaic_parse_limits(file, &c, err, sizeof err) == 0, "%s", err);
	const char *up[] = {"CUDA_DEVICE_MEMORY_LIMIT", "4g", "CUDA_DEVICE_SM_LIMIT", "80",
			    "GPU_CORE_UTILIZATION_POLICY", "disable", NULL};
	CHECK(with_env(&c, up) == 0, "raise rejected");
	CHECK(c.cards[0].memory == 1ULL << 30 && c.cards[0].cores == 50 && c.policy == MOSAIC_POLICY_DEFAULT,
	      "env raised a limit: %llu %d %d", (unsigned long long)c.cards[0].memory, c.cards[0].cores, c.policy);
	CHECK(c.cards[1].memory == 4ULL << 30 && c.cards[1].cores == 80, "unlimited card lowered: %llu %d",
	      (unsigned long long)c.cards[1].memory, c.cards[1].cores);
	CHECK(mosaic_config_card(&c, 2) == NULL, "env created a card next to a file");
	const char *down[] = {"CUDA_DEVICE_MEMORY_LIMIT_0", "256m", "CUDA_DEVICE_SM_LIMIT", "20",
			      "GPU_CORE_UTILIZATION_POLICY", "force", NULL};
	CHECK(with_env(&c, down) == 0, "lower rejected");
	CHECK(c.cards[0].memory == 256ULL << 20 && c.cards[0].cores == 20 && c.policy == MOSAIC_POLICY_FORCE,
	      "env did not lower: %llu %d %d", (unsigned long long)c.cards[0].memory, c.cards[0].cores, c.policy);
}

/* mosaic_load_config: MOSAIC_LIMITS_FILE, fail closed on a bad file or env. */
static void load(const char *dir)
{
	char path[512];
	struct mosaic_config c;
	if (access(MOSAIC_DEFAULT_LIMITS_FILE, F_OK) == 0) {
		fprintf(stderr, "skip load tests: %s exists\n", MOSAIC_DEFAULT_LIMITS_FILE);
		return;
	}
	setenv("MOSAIC_ENFORCER_LOG", "quiet", 1);
	snprintf(path, sizeof path, "%s/limits-valid.conf", dir);
	setenv("MOSAIC_LIMITS_FILE", path, 1);
	mosaic_load_config(&c);
	CHECK(!c.fail_closed && c.cards[0].memory == 4294967296ULL, "valid file via env");
	setenv("CUDA_DEVICE_MEMORY_LIMIT", "1x", 1);
	mosaic_load_config(&c);
	CHECK(c.fail_closed, "junk env next to a file must fail closed");
	unsetenv("CUDA_DEVICE_MEMORY_LIMIT");
	snprintf(path, sizeof path, "%s/limits-invalid-key.conf", dir);
	setenv("MOSAIC_LIMITS_FILE", path, 1);
	mosaic_load_config(&c);
	CHECK(c.fail_closed, "invalid file must fail closed");
	setenv("MOSAIC_LIMITS_FILE", "/nonexistent/limits.conf", 1);
	mosaic_load_config(&c);
	CHECK(c.fail_closed, "missing named file must fail closed");
	unsetenv("MOSAIC_LIMITS_FILE");
	mosaic_load_config(&c);
	CHECK(!c.fail_closed && mosaic_config_card(&c, 0) == NULL, "no file, no env: no limits");
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "../pkg/device/testdata";
	golden(dir);
	inline_files();
	sizes();
	env();
	load(dir);
	if (failures) {
		fprintf(stderr, "test_config: %d failures\n", failures);
		return 1;
	}
	printf("test_config: ok\n");
	return 0;
}
