/* Memory hooks: every allocation path reserves its bytes in the shared
 * accounting before the driver allocates, and rolls back if the driver
 * fails. Over the limit is always CUDA_ERROR_OUT_OF_MEMORY. */
#define _GNU_SOURCE
#include <stdint.h>

#include "allocmap.h"
#include "devices.h"
#include "hooks.h"
#include "shared.h"

#define EXPORT __attribute__((visibility("default")))

/* Limits of the device, or NULL when its memory is not limited. */
static const struct mosaic_dev *limited(const struct mosaic_dev *d)
{
	return d != NULL && d->memory != MOSAIC_UNLIMITED ? d : NULL;
}

static const struct mosaic_dev *current(void)
{
	CUdevice dev;
	return limited(mosaic_current_dev(&dev));
}

static int reserve(const struct mosaic_dev *d, uint64_t bytes)
{
	return d == NULL || mosaic_shm_reserve(d->card, bytes, d->memory) == 0 ? 0 : -1;
}

/* After the driver call: keep the charge on success, give it back else. */
static CUresult settle(CUresult r, const struct mosaic_dev *d, uint64_t bytes, uint64_t key,
		       enum mosaic_alloc_kind kind)
{
	if (d == NULL)
		return r;
	if (r != CUDA_SUCCESS || mosaic_map_put(key, kind, d->card, bytes) != 0)
		mosaic_shm_release(d->card, bytes);
	return r;
}

/* Takes the entry before the driver frees, so that an address the driver
 * hands out again at once cannot be confused with this one. */
static int untrack(uint64_t key, enum mosaic_alloc_kind kind, int *card, uint64_t *bytes)
{
	if (!__atomic_load_n(&mosaic_mem_active, __ATOMIC_ACQUIRE))
		return -1;
	return mosaic_map_take(key, kind, card, bytes);
}

static CUresult freed(CUresult r, int tracked, uint64_t key, enum mosaic_alloc_kind kind, int card, uint64_t bytes)
{
	if (tracked != 0)
		return r;
	if (r == CUDA_SUCCESS)
		mosaic_shm_release(card, bytes);
	else
		mosaic_map_put(key, kind, card, bytes);
	return r;
}

#define REAL_OR_FAIL(name)                                                                                   \
	__typeof__(&name) real = CU_REAL(name);                                                              \
	if (real == NULL)                                                                                    \
	return CUDA_ERROR_NOT_INITIALIZED

#define DEVICE_ALLOC(name, dptr, bytes, ...)                                                                 \
	do {                                                                                                 \
		REAL_OR_FAIL(name);                                                                          \
		const struct mosaic_dev *d = current();                                                      \
		if (reserve(d, (bytes)) != 0)                                                                \
			return CUDA_ERROR_OUT_OF_MEMORY;                                                     \
		CUresult r = real(__VA_ARGS__);                                                              \
		return settle(r, d, (bytes), r == CUDA_SUCCESS ? (uint64_t) * (dptr) : 0, MOSAIC_KIND_PTR);  \
	} while (0)

#define FREE(name, kind, key, ...)                                                                           \
	do {                                                                                                 \
		REAL_OR_FAIL(name);                                                                          \
		int card = 0;                                                                                \
		uint64_t bytes = 0;                                                                          \
		int t = untrack((key), (kind), &card, &bytes);                                               \
		return freed(real(__VA_ARGS__), t, (key), (kind), card, bytes);                              \
	} while (0)

EXPORT CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)
{
	DEVICE_ALLOC(cuMemAlloc, dptr, bytesize, dptr, bytesize);
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
	DEVICE_ALLOC(cuMemAlloc_v2, dptr, bytesize, dptr, bytesize);
}

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
	/* Charged to the current device: managed memory can live there. */
	DEVICE_ALLOC(cuMemAllocManaged, dptr, bytesize, dptr, bytesize, flags);
}

/* Stream-ordered allocations are charged per allocation, at the call, to
 * the current device; memory a pool keeps after frees is not charged. */
EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
	DEVICE_ALLOC(cuMemAllocAsync, dptr, bytesize, dptr, bytesize, hStream);
}

EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
	DEVICE_ALLOC(cuMemAllocAsync_ptsz, dptr, bytesize, dptr, bytesize, hStream);
}

EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream)
{
	DEVICE_ALLOC(cuMemAllocFromPoolAsync, dptr, bytesize, dptr, bytesize, pool, hStream);
}

EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
					     CUstream hStream)
{
	DEVICE_ALLOC(cuMemAllocFromPoolAsync_ptsz, dptr, bytesize, dptr, bytesize, pool, hStream);
}

EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
				   unsigned int ElementSizeBytes)
{
	REAL_OR_FAIL(cuMemAllocPitch_v2);
	const struct mosaic_dev *d = current();
	/* The pitch is known only afterwards: reserve rows rounded up to 512
	 * bytes (the pitch alignment of current GPUs), then correct. */
	uint64_t row = (WidthInBytes + 511) & ~(uint64_t)511, est, actual;
	if (d != NULL && (row < WidthInBytes || __builtin_mul_overflow(row, (uint64_t)Height, &est)))
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (d == NULL)
		return real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
	if (reserve(d, est) != 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	CUresult r = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
	if (r != CUDA_SUCCESS)
		return settle(r, d, est, 0, MOSAIC_KIND_PTR);
	if (__builtin_mul_overflow((uint64_t)*pPitch, (uint64_t)Height, &actual))
		actual = UINT64_MAX;
	if (actual > est && reserve(d, actual - est) != 0) {
		CU_REAL(cuMemFree_v2)(*dptr);
		mosaic_shm_release(d->card, est);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (actual < est)
		mosaic_shm_release(d->card, est - actual);
	return settle(r, d, actual, *dptr, MOSAIC_KIND_PTR);
}

EXPORT CUresult cuMemFree(CUdeviceptr_v1 dptr) { FREE(cuMemFree, MOSAIC_KIND_PTR, dptr, dptr); }

EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) { FREE(cuMemFree_v2, MOSAIC_KIND_PTR, dptr, dptr); }

/* Given back when the free is enqueued: later stream-ordered allocations
 * reuse that memory. */
EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
	FREE(cuMemFreeAsync, MOSAIC_KIND_PTR, dptr, dptr, hStream);
}

EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
	FREE(cuMemFreeAsync_ptsz, MOSAIC_KIND_PTR, dptr, dptr, hStream);
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
			    unsigned long long flags)
{
	REAL_OR_FAIL(cuMemCreate);
	const struct mosaic_dev *d = NULL;
	if (prop != NULL && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE)
		d = limited(mosaic_dev_get(prop->location.id));
	if (reserve(d, size) != 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	CUresult r = real(handle, size, prop, flags);
	return settle(r, d, size, r == CUDA_SUCCESS ? *handle : 0, MOSAIC_KIND_HANDLE);
}

EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
	FREE(cuMemRelease, MOSAIC_KIND_HANDLE, handle, handle);
}

static uint64_t format_bytes(CUarray_format f)
{
	switch (f) {
	case CU_AD_FORMAT_UNSIGNED_INT8:
	case CU_AD_FORMAT_SIGNED_INT8:
		return 1;
	case CU_AD_FORMAT_UNSIGNED_INT16:
	case CU_AD_FORMAT_SIGNED_INT16:
	case CU_AD_FORMAT_HALF:
		return 2;
	case CU_AD_FORMAT_UNSIGNED_INT32:
	case CU_AD_FORMAT_SIGNED_INT32:
	case CU_AD_FORMAT_FLOAT:
		return 4;
	}
	return 16; /* formats not listed here: charge the widest element */
}

static uint64_t dim(size_t v) { return v == 0 ? 1 : v; }

/* Bytes of a w x h x d array; UINT64_MAX on overflow (then refused). */
static uint64_t array_bytes(uint64_t w, uint64_t h, uint64_t d, CUarray_format f, unsigned channels)
{
	uint64_t b = format_bytes(f) * (channels == 0 ? 1 : channels);
	if (__builtin_mul_overflow(b, w, &b) || __builtin_mul_overflow(b, h, &b) || __builtin_mul_overflow(b, d, &b))
		return UINT64_MAX;
	return b;
}

EXPORT CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *desc)
{
	REAL_OR_FAIL(cuArrayCreate_v2);
	const struct mosaic_dev *d = current();
	uint64_t bytes = desc == NULL ? 0 : array_bytes(dim(desc->Width), dim(desc->Height), 1, desc->Format,
							  desc->NumChannels);
	if (reserve(d, bytes) != 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	CUresult r = real(pHandle, desc);
	return settle(r, d, bytes, r == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*pHandle : 0, MOSAIC_KIND_ARRAY);
}

EXPORT CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *desc)
{
	REAL_OR_FAIL(cuArray3DCreate_v2);
	const struct mosaic_dev *d = current();
	uint64_t bytes = desc == NULL ? 0 : array_bytes(dim(desc->Width), dim(desc->Height), dim(desc->Depth),
							  desc->Format, desc->NumChannels);
	if (reserve(d, bytes) != 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	CUresult r = real(pHandle, desc);
	return settle(r, d, bytes, r == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*pHandle : 0, MOSAIC_KIND_ARRAY);
}

EXPORT CUresult cuArrayDestroy(CUarray hArray)
{
	FREE(cuArrayDestroy, MOSAIC_KIND_ARRAY, (uint64_t)(uintptr_t)hArray, hArray);
}

EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *desc,
				       unsigned int numMipmapLevels)
{
	REAL_OR_FAIL(cuMipmappedArrayCreate);
	const struct mosaic_dev *d = current();
	uint64_t bytes = 0;
	int layered = desc != NULL && (desc->Flags & (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_CUBEMAP)) != 0;
	for (unsigned l = 0; desc != NULL && l < numMipmapLevels && l < 64; l++) {
		uint64_t w = dim(desc->Width >> l), h = desc->Height ? dim(desc->Height >> l) : 1;
		uint64_t z = layered ? dim(desc->Depth) : (desc->Depth ? dim(desc->Depth >> l) : 1);
		uint64_t level = array_bytes(w, h, z, desc->Format, desc->NumChannels);
		if (__builtin_add_overflow(bytes, level, &bytes))
			bytes = UINT64_MAX;
	}
	if (reserve(d, bytes) != 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	CUresult r = real(pHandle, desc, numMipmapLevels);
	return settle(r, d, bytes, r == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*pHandle : 0, MOSAIC_KIND_MIPMAP);
}

EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray h)
{
	FREE(cuMipmappedArrayDestroy, MOSAIC_KIND_MIPMAP, (uint64_t)(uintptr_t)h, h);
}

/* total = min(limit, physical); free = min(physical free, total - used). */
static void clamp_info(const struct mosaic_dev *d, uint64_t *free, uint64_t *total)
{
	uint64_t used = mosaic_shm_used(d->card);
	uint64_t t = d->memory < *total ? d->memory : *total;
	uint64_t f = t > used ? t - used : 0;
	*total = t;
	*free = f < *free ? f : *free;
}

EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
	REAL_OR_FAIL(cuMemGetInfo_v2);
	CUresult r = real(free, total);
	const struct mosaic_dev *d;
	if (r != CUDA_SUCCESS || (d = current()) == NULL)
		return r;
	uint64_t f = *free, t = *total;
	clamp_info(d, &f, &t);
	*free = f;
	*total = t;
	return r;
}

EXPORT CUresult cuMemGetInfo(unsigned int *free, unsigned int *total)
{
	REAL_OR_FAIL(cuMemGetInfo);
	CUresult r = real(free, total);
	const struct mosaic_dev *d;
	if (r != CUDA_SUCCESS || (d = current()) == NULL)
		return r;
	uint64_t f = *free, t = *total;
	clamp_info(d, &f, &t);
	*free = (unsigned int)f;
	*total = (unsigned int)t;
	return r;
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	REAL_OR_FAIL(cuDeviceTotalMem_v2);
	CUresult r = real(bytes, dev);
	const struct mosaic_dev *d;
	if (r == CUDA_SUCCESS && (d = limited(mosaic_dev_get(dev))) != NULL && d->memory < *bytes)
		*bytes = d->memory;
	return r;
}

EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
	REAL_OR_FAIL(cuDeviceTotalMem);
	CUresult r = real(bytes, dev);
	const struct mosaic_dev *d;
	if (r == CUDA_SUCCESS && (d = limited(mosaic_dev_get(dev))) != NULL && d->memory < *bytes)
		*bytes = (unsigned int)d->memory;
	return r;
}
