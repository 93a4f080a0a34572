/* Hook overhead on the stub driver: launch and alloc/free cost per call,
 * without the enforcer, with it and no limits, with a memory limit, and with
 * a compute limit. Modes run as child processes, alternating, several
 * rounds; the table gives medians over rounds of each run's median and p99
 * (per call, from batches of 64 calls timed together).
 *   usage: bench /abs/path/libmosaic-enforcer.so  (LD_LIBRARY_PATH: stub) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mosaic_cuda.h"

#define BATCH 64
#define SAMPLES 2000
#define ROUNDS 5

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void stats(double *v, int n, double *med, double *p99)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	*med = v[n / 2];
	*p99 = v[n * 99 / 100];
}

static void child(void)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW);
	if (h == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		exit(1);
	}
	__typeof__(&cuInit) init = (__typeof__(&cuInit))dlsym(h, "cuInit");
	__typeof__(&cuLaunchKernel) launch = (__typeof__(&cuLaunchKernel))dlsym(h, "cuLaunchKernel");
	__typeof__(&cuMemAlloc_v2) alloc = (__typeof__(&cuMemAlloc_v2))dlsym(h, "cuMemAlloc_v2");
	__typeof__(&cuMemFree_v2) mfree = (__typeof__(&cuMemFree_v2))dlsym(h, "cuMemFree_v2");
	CUresult (*ctx_create)(CUcontext *, unsigned, CUdevice) = (CUresult(*)(CUcontext *, unsigned, CUdevice))dlsym(h, "cuCtxCreate_v2");
	CUcontext ctx;
	init(0);
	ctx_create(&ctx, 0, 0);
	static double l[SAMPLES], a[SAMPLES];
	for (int warm = 0; warm < 2; warm++) {
		for (int s = 0; s < SAMPLES; s++) {
			uint64_t t0 = now_ns();
			for (int i = 0; i < BATCH; i++)
				launch(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
			l[s] = (double)(now_ns() - t0) / BATCH;
		}
		for (int s = 0; s < SAMPLES / 4; s++) {
			CUdeviceptr p[BATCH];
			uint64_t t0 = now_ns();
			for (int i = 0; i < BATCH; i++)
				alloc(&p[i], 256);
			for (int i = 0; i < BATCH; i++)
				mfree(p[i]);
			a[s] = (double)(now_ns() - t0) / BATCH;
		}
	}
	double lm, lp, am, ap;
	stats(l, SAMPLES, &lm, &lp);
	stats(a, SAMPLES / 4, &am, &ap);
	printf("%.1f %.1f %.1f %.1f\n", lm, lp, am, ap);
}

struct mode {
	const char *name;
	int preload;
	const char *env;
};

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "child") == 0) {
		child();
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: bench /path/to/libmosaic-enforcer.so\n");
		return 2;
	}
	static const struct mode modes[] = {
		{"no enforcer", 0, NULL},
		{"enforcer, no limits", 1, NULL},
		{"enforcer, memory limit", 1, "CUDA_DEVICE_MEMORY_LIMIT=64g"},
		{"enforcer, cores=50", 1, "CUDA_DEVICE_SM_LIMIT=50"},
	};
	enum { NM = sizeof modes / sizeof modes[0] };
	double r[NM][4][ROUNDS];
	char shared[] = "/tmp/mosaic-bench.XXXXXX";
	if (mkdtemp(shared) == NULL)
		return 1;
	for (int round = 0; round < ROUNDS; round++) {
		for (int m = 0; m < NM; m++) {
			int fd[2];
			if (pipe(fd) != 0)
				return 1;
			pid_t pid = fork();
			if (pid == 0) {
				dup2(fd[1], 1);
				setenv("MOSAIC_SHARED_DIR", shared, 1);
				unsetenv("CUDA_DEVICE_MEMORY_LIMIT");
				unsetenv("CUDA_DEVICE_SM_LIMIT");
				if (modes[m].env != NULL)
					putenv((char *)modes[m].env);
				if (modes[m].preload)
					setenv("LD_PRELOAD", argv[1], 1);
				else
					unsetenv("LD_PRELOAD");
				execl("/proc/self/exe", argv[0], "child", (char *)NULL);
				_exit(127);
			}
			close(fd[1]);
			char buf[256] = "";
			ssize_t n = read(fd[0], buf, sizeof buf - 1);
			close(fd[0]);
			int st;
			waitpid(pid, &st, 0);
			if (n <= 0 || sscanf(buf, "%lf %lf %lf %lf", &r[m][0][round], &r[m][1][round], &r[m][2][round],
					     &r[m][3][round]) != 4) {
				fprintf(stderr, "child failed (%s)\n", modes[m].name);
				return 1;
			}
		}
	}
	printf("%-26s %14s %14s %16s %16s\n", "ns per call", "launch median", "launch p99", "alloc+free med",
	       "alloc+free p99");
	double base[4] = {0};
	for (int m = 0; m < NM; m++) {
		double v[4], p99unused;
		for (int k = 0; k < 4; k++)
			stats(r[m][k], ROUNDS, &v[k], &p99unused);
		if (m == 0)
			memcpy(base, v, sizeof base);
		printf("%-26s %14.1f %14.1f %16.1f %16.1f\n", modes[m].name, v[0], v[1], v[2], v[3]);
		if (m > 0)
			printf("%-26s %+14.1f %+14.1f %+16.1f %+16.1f\n", "  overhead", v[0] - base[0], v[1] - base[1],
			       v[2] - base[2], v[3] - base[3]);
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", shared);
	return system(cmd) == 0 ? 0 : 1;
}
