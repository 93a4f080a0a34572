/* The one table of hooked functions. Everything else (enum, names, typed
 * pointers to the real functions, the lookups used by dlsym and
 * cuGetProcAddress) is generated from it.
 *
 * X(name, base, version, ptds):
 *   name     the exported symbol, i.e. the exact ABI variant (cuMemAlloc_v2)
 *   base     the name cuGetProcAddress is asked for (cuMemAlloc)
 *   version  first CUDA version (cudaVersion argument) that gets this variant
 *   ptds     1 for the per-thread-default-stream (_ptsz) variant
 */
#ifndef MOSAIC_HOOKS_H
#define MOSAIC_HOOKS_H

#include "mosaic_cuda.h"

#define MOSAIC_CUDA_HOOKS(X)                                                                                 \
	X(cuGetProcAddress, cuGetProcAddress, 11030, 0)                                                      \
	X(cuGetProcAddress_v2, cuGetProcAddress, 12000, 0)                                                   \
	X(cuMemAlloc, cuMemAlloc, 2000, 0)                                                                   \
	X(cuMemAlloc_v2, cuMemAlloc, 3020, 0)                                                                \
	X(cuMemAllocPitch_v2, cuMemAllocPitch, 3020, 0)                                                      \
	X(cuMemAllocManaged, cuMemAllocManaged, 6000, 0)                                                     \
	X(cuMemAllocAsync, cuMemAllocAsync, 11020, 0)                                                        \
	X(cuMemAllocAsync_ptsz, cuMemAllocAsync, 11020, 1)                                                   \
	X(cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync, 11020, 0)                                        \
	X(cuMemAllocFromPoolAsync_ptsz, cuMemAllocFromPoolAsync, 11020, 1)                                   \
	X(cuMemFree, cuMemFree, 2000, 0)                                                                     \
	X(cuMemFree_v2, cuMemFree, 3020, 0)                                                                  \
	X(cuMemFreeAsync, cuMemFreeAsync, 11020, 0)                                                          \
	X(cuMemFreeAsync_ptsz, cuMemFreeAsync, 11020, 1)                                                     \
	X(cuMemCreate, cuMemCreate, 10020, 0)                                                                \
	X(cuMemRelease, cuMemRelease, 10020, 0)                                                              \
	X(cuArrayCreate_v2, cuArrayCreate, 3020, 0)                                                          \
	X(cuArray3DCreate_v2, cuArray3DCreate, 3020, 0)                                                      \
	X(cuArrayDestroy, cuArrayDestroy, 2000, 0)                                                           \
	X(cuMipmappedArrayCreate, cuMipmappedArrayCreate, 5000, 0)                                           \
	X(cuMipmappedArrayDestroy, cuMipmappedArrayDestroy, 5000, 0)                                         \
	X(cuMemGetInfo, cuMemGetInfo, 2000, 0)                                                               \
	X(cuMemGetInfo_v2, cuMemGetInfo, 3020, 0)                                                            \
	X(cuDeviceTotalMem, cuDeviceTotalMem, 2000, 0)                                                       \
	X(cuDeviceTotalMem_v2, cuDeviceTotalMem, 3020, 0)                                                    \
	X(cuLaunchKernel, cuLaunchKernel, 4000, 0)                                                           \
	X(cuLaunchKernel_ptsz, cuLaunchKernel, 7000, 1)                                                      \
	X(cuLaunchKernelEx, cuLaunchKernelEx, 11060, 0)                                                      \
	X(cuLaunchKernelEx_ptsz, cuLaunchKernelEx, 11060, 1)                                                 \
	X(cuLaunchCooperativeKernel, cuLaunchCooperativeKernel, 9000, 0)                                     \
	X(cuLaunchCooperativeKernel_ptsz, cuLaunchCooperativeKernel, 9000, 1)                                \
	X(cuGraphLaunch, cuGraphLaunch, 10000, 0)                                                            \
	X(cuGraphLaunch_ptsz, cuGraphLaunch, 10000, 1)                                                      \
	X(cuCtxSynchronize, cuCtxSynchronize, 2000, 0)                                                       \
	X(cuStreamSynchronize, cuStreamSynchronize, 2000, 0)                                                 \
	X(cuStreamSynchronize_ptsz, cuStreamSynchronize, 7000, 1)                                            \
	X(cuEventSynchronize, cuEventSynchronize, 2000, 0)                                                   \
	X(cuStreamBeginCapture, cuStreamBeginCapture, 10000, 0)                                              \
	X(cuStreamBeginCapture_ptsz, cuStreamBeginCapture, 10000, 1)                                         \
	X(cuStreamBeginCapture_v2, cuStreamBeginCapture, 10010, 0)                                           \
	X(cuStreamBeginCapture_v2_ptsz, cuStreamBeginCapture, 10010, 1)                                      \
	X(cuStreamBeginCaptureToGraph, cuStreamBeginCaptureToGraph, 12030, 0)                                \
	X(cuStreamBeginCaptureToGraph_ptsz, cuStreamBeginCaptureToGraph, 12030, 1)                           \
	X(cuStreamEndCapture, cuStreamEndCapture, 10000, 0)                                                  \
	X(cuStreamEndCapture_ptsz, cuStreamEndCapture, 10000, 1)

/* NVML functions hooked so that nvidia-smi and friends see the limit and
 * the container's own processes. */
#define MOSAIC_NVML_HOOKS(X)                                                                                 \
	X(nvmlDeviceGetMemoryInfo, nvmlDeviceGetMemoryInfo, 0, 0)                                           \
	X(nvmlDeviceGetMemoryInfo_v2, nvmlDeviceGetMemoryInfo_v2, 0, 0)                                     \
	X(nvmlDeviceGetComputeRunningProcesses, nvmlDeviceGetComputeRunningProcesses, 0, 0)                 \
	X(nvmlDeviceGetComputeRunningProcesses_v2, nvmlDeviceGetComputeRunningProcesses_v2, 0, 0)           \
	X(nvmlDeviceGetComputeRunningProcesses_v3, nvmlDeviceGetComputeRunningProcesses_v3, 0, 0)           \
	X(nvmlDeviceGetGraphicsRunningProcesses, nvmlDeviceGetGraphicsRunningProcesses, 0, 0)               \
	X(nvmlDeviceGetGraphicsRunningProcesses_v2, nvmlDeviceGetGraphicsRunningProcesses_v2, 0, 0)         \
	X(nvmlDeviceGetGraphicsRunningProcesses_v3, nvmlDeviceGetGraphicsRunningProcesses_v3, 0, 0)         \
	X(nvmlDeviceGetMPSComputeRunningProcesses, nvmlDeviceGetMPSComputeRunningProcesses, 0, 0)           \
	X(nvmlDeviceGetMPSComputeRunningProcesses_v2, nvmlDeviceGetMPSComputeRunningProcesses_v2, 0, 0)     \
	X(nvmlDeviceGetMPSComputeRunningProcesses_v3, nvmlDeviceGetMPSComputeRunningProcesses_v3, 0, 0)     \
	X(nvmlDeviceGetRunningProcessDetailList, nvmlDeviceGetRunningProcessDetailList, 0, 0)

/* Functions of the real libraries the enforcer calls but does not hook. */
#define MOSAIC_CUDA_CALLS(X)                                                                                 \
	X(cuInit) X(cuDeviceGet) X(cuDeviceGetCount) X(cuDeviceGetUuid) X(cuDeviceGetUuid_v2)               \
	X(cuCtxGetDevice) X(cuCtxGetCurrent) X(cuEventCreate) X(cuEventRecord) X(cuEventQuery)             \
	X(cuEventElapsedTime) X(cuEventElapsedTime_v2) X(cuEventDestroy_v2)                                 \
	X(cuThreadExchangeStreamCaptureMode) X(cuMemHostAlloc) X(cuMemHostGetDevicePointer_v2) X(cuMemFreeHost) \
	X(cuStreamWaitValue32_v2) X(cuStreamCreate) X(cuStreamDestroy_v2) X(cuMemsetD32Async)

#define MOSAIC_NVML_CALLS(X) X(nvmlDeviceGetUUID) X(nvmlDeviceGetIndex)

enum mosaic_hook_id {
#define X(name, base, version, ptds) MOSAIC_HOOK_##name,
	MOSAIC_CUDA_HOOKS(X) MOSAIC_NVML_HOOKS(X)
#undef X
	MOSAIC_HOOK_COUNT
};

/* Typed pointers to the real functions, one field per table entry. */
struct mosaic_real {
#define X(name, base, version, ptds) __typeof__(&name) name;
	MOSAIC_CUDA_HOOKS(X) MOSAIC_NVML_HOOKS(X)
#undef X
#define X(name) __typeof__(&name) name;
	MOSAIC_CUDA_CALLS(X) MOSAIC_NVML_CALLS(X)
#undef X
};

extern struct mosaic_real mosaic_real;

enum mosaic_lib { MOSAIC_LIB_CUDA, MOSAIC_LIB_NVML };

struct mosaic_hook_desc {
	const char *name;
	const char *base;
	int version;
	int ptds;
	enum mosaic_lib lib;
	void *hook;     /* our exported function */
	size_t real_off; /* offsetof(struct mosaic_real, name) */
};

extern const struct mosaic_hook_desc mosaic_hooks[MOSAIC_HOOK_COUNT];

/* Loads the real library (once) and resolves every real pointer of it. */
void mosaic_load_real(enum mosaic_lib lib);
/* Index of the hook exported as name, or -1. */
int mosaic_hook_find(const char *name);
void *mosaic_real_get(int id);
void mosaic_real_set_if_unset(int id, void *fn);
/* The real dlsym, bypassing our override. */
void *mosaic_real_dlsym(void *handle, const char *name);

/* Ensures mosaic_real.name is resolved; evaluates to it (may stay NULL when
 * the driver lacks the function). */
#define MOSAIC_REAL(lib, name)                                                                               \
	(__builtin_expect(mosaic_real.name != NULL, 1) ? mosaic_real.name                                   \
						       : (mosaic_load_real(lib), mosaic_real.name))
#define CU_REAL(name) MOSAIC_REAL(MOSAIC_LIB_CUDA, name)
#define NVML_REAL(name) MOSAIC_REAL(MOSAIC_LIB_NVML, name)

#endif
