/* A stub libnvidia-ml.so.1: the stub driver's devices, seen through NVML.
 * Memory used is read from the stub driver's shared counters file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mosaic_cuda.h"
#include "stub.h"

#define EXPORT __attribute__((visibility("default")))

static struct nvmlDevice_st {
	unsigned idx;
} devs[8];

EXPORT nvmlReturn_t nvmlInit_v2(void) { return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d)
{
	if (i >= 8)
		return NVML_ERROR_INVALID_ARGUMENT;
	devs[i].idx = i;
	*d = &devs[i];
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *i)
{
	*i = d->idx;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len)
{
	int swap = getenv("STUB_UUID_SWAP") != NULL;
	unsigned i = swap && d->idx < 2 ? 1 - d->idx : d->idx;
	snprintf(uuid, len, "%s", i == 0 ? STUB_UUID0 : i == 1 ? STUB_UUID1 : "GPU-unknown");
	return NVML_SUCCESS;
}

static void mem(nvmlDevice_t d, unsigned long long *total, unsigned long long *used)
{
	const char *p = getenv("STUB_PHYS_BYTES");
	*total = p ? strtoull(p, NULL, 10) : 16ULL << 30;
	*used = 0;
	const char *f = getenv("STUB_SHARED_FILE");
	int fd = f ? open(f, O_RDONLY) : -1;
	if (fd >= 0) {
		uint64_t c[16];
		if (pread(fd, c, sizeof c, 0) == (ssize_t)sizeof c)
			*used = c[d->idx];
		close(fd);
	}
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
	mem(d, &m->total, &m->used);
	m->free = m->total - m->used;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m)
{
	mem(d, &m->total, &m->used);
	m->reserved = 0;
	m->free = m->total - m->used;
	return NVML_SUCCESS;
}

/* The driver's process lists: every device is in use by one process of
 * the host's (pid STUB_HOST_PID, 1 GiB), which a container cannot see. */
#define STUB_HOST_PID 4242424u

static nvmlReturn_t host_list(unsigned int *count, void *infos, int v1)
{
	if (*count < 1 || infos == NULL) {
		*count = 1;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	if (v1) {
		nvmlProcessInfo_v1_t *p = infos;
		p->pid = STUB_HOST_PID, p->usedGpuMemory = 1ULL << 30;
	} else {
		nvmlProcessInfo_t *p = infos;
		p->pid = STUB_HOST_PID, p->usedGpuMemory = 1ULL << 30, p->gpuInstanceId = p->computeInstanceId = 0xFFFFFFFFu;
	}
	*count = 1;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t d, nvmlProcessDetailList_v1_t *l)
{
	(void)d;
	if (l == NULL || l->version != nvmlProcessDetailList_v1)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (l->numProcArrayEntries < 1 || l->procArray == NULL) {
		l->numProcArrayEntries = 1;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	l->procArray[0] = (nvmlProcessDetail_v1_t){.pid = STUB_HOST_PID, .usedGpuMemory = 1ULL << 30,
						   .gpuInstanceId = 0xFFFFFFFFu, .computeInstanceId = 0xFFFFFFFFu};
	l->numProcArrayEntries = 1;
	return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_v1_t *p)
{
	(void)d;
	return host_list(n, p, 1);
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_t *p)
{
	(void)d;
	return host_list(n, p, 0);
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_t *p)
{
	(void)d;
	return host_list(n, p, 0);
}
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_t *p)
{
	(void)d;
	return host_list(n, p, 0);
}
