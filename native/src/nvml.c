/* NVML hooks: nvidia-smi and NVML users inside the container see the
 * container's limit and usage. Devices are matched to cards by UUID. */
#define _GNU_SOURCE
#include "devices.h"
#include "hooks.h"
#include "shared.h"

#define EXPORT __attribute__((visibility("default")))

/* Returns 0 and fills total/used when the device's memory is limited. */
static int container_view(nvmlDevice_t device, uint64_t phys_total, uint64_t *total, uint64_t *used)
{
	char uuid[96] = "";
	unsigned int idx = 0;
	int ordinal = -1;
	if (NVML_REAL(nvmlDeviceGetUUID) == NULL || mosaic_real.nvmlDeviceGetUUID(device, uuid, sizeof uuid) != NVML_SUCCESS)
		uuid[0] = '\0';
	if (NVML_REAL(nvmlDeviceGetIndex) != NULL && mosaic_real.nvmlDeviceGetIndex(device, &idx) == NVML_SUCCESS)
		ordinal = (int)idx;
	struct mosaic_dev d = mosaic_limits_for(uuid, ordinal);
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
