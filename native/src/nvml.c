/* NVML hooks: nvidia-smi and NVML users inside the container see the
 * container's limit and usage, and its own processes. Devices are matched
 * to cards by UUID. */
#define _GNU_SOURCE
#include "devices.h"
#include "hooks.h"
#include "shared.h"

#define EXPORT __attribute__((visibility("default")))

/* What the container holds of the device (card -1: nothing to show). */
static struct mosaic_dev dev_of(nvmlDevice_t device)
{
	char uuid[96] = "";
	unsigned int idx = 0;
	int ordinal = -1;
	if (NVML_REAL(nvmlDeviceGetUUID) == NULL || mosaic_real.nvmlDeviceGetUUID(device, uuid, sizeof uuid) != NVML_SUCCESS)
		uuid[0] = '\0';
	if (NVML_REAL(nvmlDeviceGetIndex) != NULL && mosaic_real.nvmlDeviceGetIndex(device, &idx) == NVML_SUCCESS)
		ordinal = (int)idx;
	return mosaic_limits_for(uuid, ordinal);
}

/* Returns 0 and fills total/used when the device's memory is limited. */
static int container_view(nvmlDevice_t device, uint64_t phys_total, uint64_t *total, uint64_t *used)
{
	struct mosaic_dev d = dev_of(device);
	if (d.card < 0 || d.memory == MOSAIC_UNLIMITED)
		return -1;
	*total = d.memory < phys_total ? d.memory : phys_total;
	*used = mosaic_shm_used(d.card);
	if (*used > *total)
		*used = *total;
	return 0;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	__typeof__(&nvmlDeviceGetMemoryInfo) real = NVML_REAL(nvmlDeviceGetMemoryInfo);
	if (real == NULL)
		return NVML_ERROR_UNINITIALIZED;
	nvmlReturn_t r = real(device, memory);
	uint64_t total, used;
	if (r == NVML_SUCCESS && container_view(device, memory->total, &total, &used) == 0) {
		memory->total = total;
		memory->used = used;
		memory->free = total - used;
	}
	return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	__typeof__(&nvmlDeviceGetMemoryInfo_v2) real = NVML_REAL(nvmlDeviceGetMemoryInfo_v2);
	if (real == NULL)
		return NVML_ERROR_UNINITIALIZED;
	nvmlReturn_t r = real(device, memory);
	uint64_t total, used;
	if (r == NVML_SUCCESS && container_view(device, memory->total, &total, &used) == 0) {
		memory->total = total;
		memory->reserved = 0;
		memory->used = used;
		memory->free = total - used;
	}
	return r;
}

/* Process lists. The driver names every process on the card by its host
 * pid: in a container without the host's PID namespace nvidia-smi can
 * resolve none of them, and on a shared card they are the neighbours'. On
 * a card the container holds a share of, the list is the container's own
 * processes that hold memory there, by their pids in its namespace, with
 * what the enforcer counts they hold (not the driver's context overhead).
 * Graphics and MPS lists are empty there: the container's work is compute,
 * counted in the compute list. Other cards get the driver's answer. */
#define NO_INSTANCE 0xFFFFFFFFu

static nvmlReturn_t own_list(int card, unsigned int *count, void *infos, int v1, int graphics)
{
	uint32_t pids[256];
	uint64_t bytes[256];
	int n = graphics ? 0 : mosaic_shm_processes(card, pids, bytes, 256);
	if (n > 256)
		n = 256;
	if (count == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if ((unsigned int)n > *count || (n > 0 && infos == NULL)) {
		*count = (unsigned int)n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (int i = 0; i < n; i++) {
		if (v1) {
			nvmlProcessInfo_v1_t *p = (nvmlProcessInfo_v1_t *)infos + i;
			p->pid = pids[i], p->usedGpuMemory = bytes[i];
		} else {
			nvmlProcessInfo_t *p = (nvmlProcessInfo_t *)infos + i;
			p->pid = pids[i], p->usedGpuMemory = bytes[i];
			p->gpuInstanceId = p->computeInstanceId = NO_INSTANCE;
		}
	}
	*count = (unsigned int)n;
	return NVML_SUCCESS;
}

#define PROCESS_LIST(name, type, v1, graphics)                                                               \
	EXPORT nvmlReturn_t name(nvmlDevice_t device, unsigned int *count, type *infos)                     \
	{                                                                                                    \
		__typeof__(&name) real = NVML_REAL(name);                                                    \
		if (real == NULL)                                                                            \
			return NVML_ERROR_UNINITIALIZED;                                                     \
		int card = dev_of(device).card;                                                              \
		if (card < 0)                                                                                \
			return real(device, count, infos);                                                   \
		return own_list(card, count, infos, v1, graphics);                                           \
	}

PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses, nvmlProcessInfo_v1_t, 1, 0)
PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses_v2, nvmlProcessInfo_t, 0, 0)
PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses_v3, nvmlProcessInfo_t, 0, 0)
PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses, nvmlProcessInfo_v1_t, 1, 1)
PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses_v2, nvmlProcessInfo_t, 0, 1)
PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses_v3, nvmlProcessInfo_t, 0, 1)
PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses, nvmlProcessInfo_v1_t, 1, 1)
PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v2, nvmlProcessInfo_t, 0, 1)
PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v3, nvmlProcessInfo_t, 0, 1)

/* The one call for every kind of list (nvidia-smi's since driver 550).
 * On a held card a list layout this library does not know is refused, not
 * passed through: the driver's list is the neighbours'. */
EXPORT nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t device, nvmlProcessDetailList_v1_t *plist)
{
	__typeof__(&nvmlDeviceGetRunningProcessDetailList) real = NVML_REAL(nvmlDeviceGetRunningProcessDetailList);
	if (real == NULL)
		return NVML_ERROR_UNINITIALIZED;
	int card = dev_of(device).card;
	if (card < 0)
		return real(device, plist);
	if (plist == NULL || plist->version != nvmlProcessDetailList_v1 || plist->mode > NVML_PROCESS_MODE_ALL)
		return NVML_ERROR_INVALID_ARGUMENT;
	uint32_t pids[256];
	uint64_t bytes[256];
	int graphics = plist->mode == NVML_PROCESS_MODE_GRAPHICS || plist->mode == NVML_PROCESS_MODE_MPS;
	int n = graphics ? 0 : mosaic_shm_processes(card, pids, bytes, 256);
	if (n > 256)
		n = 256;
	if ((unsigned int)n > plist->numProcArrayEntries || (n > 0 && plist->procArray == NULL)) {
		plist->numProcArrayEntries = (unsigned int)n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (int i = 0; i < n; i++)
		plist->procArray[i] = (nvmlProcessDetail_v1_t){.pid = pids[i], .usedGpuMemory = bytes[i],
								.gpuInstanceId = NO_INSTANCE, .computeInstanceId = NO_INSTANCE};
	plist->numProcArrayEntries = (unsigned int)n;
	return NVML_SUCCESS;
}
