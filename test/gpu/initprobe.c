/* Init time of the enforcer in a process started among many: cuInit, wait
 * for the start file (leaving START_FILE.ready.<pid>), then time the first hooked call (it loads the limits,
 * matches devices and joins the shared accounting). Prints nanoseconds.
 *   usage: initprobe START_FILE */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "mosaic_cuda.h"

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW);
	if (argc != 2 || h == NULL)
		return 2;
	__typeof__(&cuInit) init = (__typeof__(&cuInit))dlsym(h, "cuInit");
	__typeof__(&cuDeviceTotalMem_v2) total = (__typeof__(&cuDeviceTotalMem_v2))dlsym(h, "cuDeviceTotalMem_v2");
	if (init == NULL || total == NULL || init(0) != CUDA_SUCCESS)
		return 1;
	char ready[4096];
	snprintf(ready, sizeof ready, "%s.ready.%d", argv[1], (int)getpid());
	FILE *f = fopen(ready, "w");
	if (f != NULL)
		fclose(f);
	while (access(argv[1], F_OK) != 0)
		usleep(5000);
	size_t bytes = 0;
	double t0 = now_ns();
	CUresult r = total(&bytes, 0);
	double t1 = now_ns();
	printf("%.0f %zu\n", t1 - t0, bytes);
	return r != CUDA_SUCCESS;
}
