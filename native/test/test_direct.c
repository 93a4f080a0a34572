/* A program linked to libcuda directly (no dlsym): the preloaded enforcer's
 * exported symbols interpose. Device 0's limit is TEST_LIMIT bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "mosaic_cuda.h"

CUresult cuCtxCreate_v2(CUcontext *ctx, unsigned int flags, CUdevice dev);

int main(void)
{
	const char *s = getenv("TEST_LIMIT");
	unsigned long long limit = s ? strtoull(s, NULL, 10) : 0;
	CUcontext ctx;
	CUdeviceptr p, q;
	size_t free = 0, total = 0;
	int fails = 0;
	cuInit(0);
	cuCtxCreate_v2(&ctx, 0, 0);
	if (cuMemAlloc_v2(&p, limit + 1) != CUDA_ERROR_OUT_OF_MEMORY)
		fails++, fprintf(stderr, "FAIL direct: over the limit allowed\n");
	if (cuMemAlloc_v2(&p, limit) != CUDA_SUCCESS)
		fails++, fprintf(stderr, "FAIL direct: the limit refused\n");
	if (cuMemAlloc_v2(&q, 1) != CUDA_ERROR_OUT_OF_MEMORY)
		fails++, fprintf(stderr, "FAIL direct: one byte past the limit allowed\n");
	cuMemGetInfo_v2(&free, &total);
	if (total != limit || free != 0)
		fails++, fprintf(stderr, "FAIL direct: cuMemGetInfo %zu/%zu\n", free, total);
	cuMemFree_v2(p);
	cuMemGetInfo_v2(&free, &total);
	if (free != limit)
		fails++, fprintf(stderr, "FAIL direct: free %zu after cuMemFree\n", free);
	return fails != 0;
}
