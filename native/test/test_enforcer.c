/* End-to-end checks of the preloaded enforcer over the stub driver. The
 * driver is reached as applications reach it: dlopen("libcuda.so.1") and
 * dlsym, or cuGetProcAddress. One subcommand per check; run_tests.sh sets the
 * environment (limits, stub sizes) and runs them, several at once where the
 * check is about processes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mosaic_cuda.h"
#include "stub.h"
#include "check.h"

#define MiB (1ULL << 20)
#define OOM CUDA_ERROR_OUT_OF_MEMORY


static void *cuda, *nvml;

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (p == NULL) {
		fprintf(stderr, "missing %s\n", name);
		exit(2);
	}
	return p;
}

/* Typed pointers, all obtained through dlsym. */
#define F(name) static __typeof__(&name) p_##name
F(cuInit);
F(cuMemAlloc_v2);
F(cuMemAllocPitch_v2);
F(cuMemAllocManaged);
F(cuMemAllocAsync);
F(cuMemAllocAsync_ptsz);
F(cuMemAllocFromPoolAsync);
F(cuMemAllocFromPoolAsync_ptsz);
F(cuMemFree_v2);
F(cuMemFreeAsync);
F(cuMemFreeAsync_ptsz);
F(cuMemCreate);
F(cuMemRelease);
F(cuArrayCreate_v2);
F(cuArray3DCreate_v2);
F(cuArrayDestroy);
F(cuMipmappedArrayCreate);
F(cuMipmappedArrayDestroy);
F(cuMemGetInfo_v2);
F(cuDeviceTotalMem_v2);
F(cuGetProcAddress_v2);
F(cuLaunchKernel);
F(cuGraphLaunch);
F(nvmlDeviceGetMemoryInfo);
F(nvmlDeviceGetMemoryInfo_v2);
F(nvmlDeviceGetComputeRunningProcesses);
F(nvmlDeviceGetComputeRunningProcesses_v2);
F(nvmlDeviceGetComputeRunningProcesses_v3);
F(nvmlDeviceGetGraphicsRunningProcesses_v3);
F(nvmlDeviceGetRunningProcessDetailList);
#undef F
typedef CUresult (*ctx_create_fn)(CUcontext *, unsigned int, CUdevice);
typedef CUresult (*ctx_set_fn)(CUcontext);
typedef nvmlReturn_t (*nvml_handle_fn)(unsigned int, nvmlDevice_t *);
static ctx_create_fn p_cuCtxCreate_v2;
static ctx_set_fn p_cuCtxSetCurrent;
static stub_last_call_fn p_last;
static stub_counter_fn p_used, p_peak;
static CUcontext ctx[2];

#define LOAD(h, name) p_##name = (__typeof__(p_##name))sym(h, #name)

static void setup(void)
{
	cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (cuda == NULL) {
		fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror());
		exit(2);
	}
	LOAD(cuda, cuInit);
	LOAD(cuda, cuMemAlloc_v2);
	LOAD(cuda, cuMemAllocPitch_v2);
	LOAD(cuda, cuMemAllocManaged);
	LOAD(cuda, cuMemAllocAsync);
	LOAD(cuda, cuMemAllocAsync_ptsz);
	LOAD(cuda, cuMemAllocFromPoolAsync);
	LOAD(cuda, cuMemAllocFromPoolAsync_ptsz);
	LOAD(cuda, cuMemFree_v2);
	LOAD(cuda, cuMemFreeAsync);
	LOAD(cuda, cuMemFreeAsync_ptsz);
	LOAD(cuda, cuMemCreate);
	LOAD(cuda, cuMemRelease);
	LOAD(cuda, cuArrayCreate_v2);
	LOAD(cuda, cuArray3DCreate_v2);
	LOAD(cuda, cuArrayDestroy);
	LOAD(cuda, cuMipmappedArrayCreate);
	LOAD(cuda, cuMipmappedArrayDestroy);
	LOAD(cuda, cuMemGetInfo_v2);
	LOAD(cuda, cuDeviceTotalMem_v2);
	LOAD(cuda, cuGetProcAddress_v2);
	LOAD(cuda, cuLaunchKernel);
	LOAD(cuda, cuGraphLaunch);
	LOAD(cuda, cuCtxCreate_v2);
	LOAD(cuda, cuCtxSetCurrent);
	p_last = (stub_last_call_fn)sym(cuda, "stub_last_call");
	p_used = (stub_counter_fn)sym(cuda, "stub_used_bytes");
	p_peak = (stub_counter_fn)sym(cuda, "stub_peak_bytes");
	CHECK(p_cuInit(0) == CUDA_SUCCESS, "cuInit");
	p_cuCtxCreate_v2(&ctx[1], 0, 1);
	p_cuCtxCreate_v2(&ctx[0], 0, 0);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static uint64_t env_u64(const char *name)
{
	const char *s = getenv(name);
	if (s == NULL) {
		fprintf(stderr, "%s not set\n", name);
		exit(2);
	}
	return strtoull(s, NULL, 10);
}

/* Every allocation path, as alloc(bytes) -> handle and release(handle). */
struct path {
	const char *name;
	CUresult (*alloc)(uint64_t bytes, uint64_t *h);
	CUresult (*release)(uint64_t h);
};

static CUresult a_alloc(uint64_t b, uint64_t *h) { return p_cuMemAlloc_v2((CUdeviceptr *)h, b); }
static CUresult a_pitch(uint64_t b, uint64_t *h)
{
	size_t pitch;
	return p_cuMemAllocPitch_v2((CUdeviceptr *)h, &pitch, 4096, b / 4096, 4);
}
static CUresult a_managed(uint64_t b, uint64_t *h) { return p_cuMemAllocManaged((CUdeviceptr *)h, b, 1); }
static CUresult a_async(uint64_t b, uint64_t *h) { return p_cuMemAllocAsync((CUdeviceptr *)h, b, NULL); }
static CUresult a_async_ptsz(uint64_t b, uint64_t *h) { return p_cuMemAllocAsync_ptsz((CUdeviceptr *)h, b, NULL); }
static CUresult a_pool(uint64_t b, uint64_t *h) { return p_cuMemAllocFromPoolAsync((CUdeviceptr *)h, b, NULL, NULL); }
static CUresult a_pool_ptsz(uint64_t b, uint64_t *h)
{
	return p_cuMemAllocFromPoolAsync_ptsz((CUdeviceptr *)h, b, NULL, NULL);
}
static CUresult a_create(uint64_t b, uint64_t *h)
{
	CUmemAllocationProp prop = {0};
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = 0;
	return p_cuMemCreate((CUmemGenericAllocationHandle *)h, b, &prop, 0);
}
static CUresult a_array(uint64_t b, uint64_t *h)
{
	CUDA_ARRAY_DESCRIPTOR d = {4096, b / 4096 / 4, CU_AD_FORMAT_FLOAT, 1};
	return p_cuArrayCreate_v2((CUarray *)h, &d);
}
static CUresult a_array3d(uint64_t b, uint64_t *h)
{
	CUDA_ARRAY3D_DESCRIPTOR d = {1024, 4, b / 1024 / 4 / 2, CU_AD_FORMAT_HALF, 1, 0};
	return p_cuArray3DCreate_v2((CUarray *)h, &d);
}
static CUresult a_mipmap(uint64_t b, uint64_t *h)
{
	/* One level: exactly b bytes. */
	CUDA_ARRAY3D_DESCRIPTOR d = {b / 4, 0, 0, CU_AD_FORMAT_UNSIGNED_INT8, 4, 0};
	return p_cuMipmappedArrayCreate((CUmipmappedArray *)h, &d, 1);
}
static CUresult f_free(uint64_t h) { return p_cuMemFree_v2(h); }
static CUresult f_async(uint64_t h) { return p_cuMemFreeAsync(h, NULL); }
static CUresult f_async_ptsz(uint64_t h) { return p_cuMemFreeAsync_ptsz(h, NULL); }
static CUresult f_release(uint64_t h) { return p_cuMemRelease(h); }
static CUresult f_array(uint64_t h) { return p_cuArrayDestroy((CUarray)(uintptr_t)h); }
static CUresult f_mipmap(uint64_t h) { return p_cuMipmappedArrayDestroy((CUmipmappedArray)(uintptr_t)h); }

static const struct path paths[] = {
	{"cuMemAlloc_v2", a_alloc, f_free},
	{"cuMemAllocPitch_v2", a_pitch, f_free},
	{"cuMemAllocManaged", a_managed, f_free},
	{"cuMemAllocAsync", a_async, f_async},
	{"cuMemAllocAsync_ptsz", a_async_ptsz, f_async_ptsz},
	{"cuMemAllocFromPoolAsync", a_pool, f_async},
	{"cuMemAllocFromPoolAsync_ptsz", a_pool_ptsz, f_free},
	{"cuMemCreate", a_create, f_release},
	{"cuArrayCreate_v2", a_array, f_array},
	{"cuArray3DCreate_v2", a_array3d, f_array},
	{"cuMipmappedArrayCreate", a_mipmap, f_mipmap},
};

static uint64_t used_now(void)
{
	size_t f = 0, t = 0;
	p_cuMemGetInfo_v2(&f, &t);
	return t - f;
}

/* MOSAIC limit of device 0 is TEST_LIMIT bytes. */
static void t_paths(void)
{
	uint64_t limit = env_u64("TEST_LIMIT"), h, h2;
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		const struct path *p = &paths[i];
		CUresult r = p->alloc(limit + 64 * MiB, &h);
		CHECK(r == OOM, "%s over the limit: %d", p->name, r);
		CHECK(p_used(0) == 0, "%s: the driver allocated %llu bytes", p->name, (unsigned long long)p_used(0));
		r = p->alloc(limit / 2, &h);
		CHECK(r == CUDA_SUCCESS, "%s below the limit: %d", p->name, r);
		CHECK(used_now() == limit / 2, "%s: used %llu", p->name, (unsigned long long)used_now());
		r = p->alloc(limit / 2 + 64 * MiB, &h2);
		CHECK(r == OOM, "%s past the remainder: %d", p->name, r);
		CHECK(p->release(h) == CUDA_SUCCESS, "%s release", p->name);
		CHECK(used_now() == 0 && p_used(0) == 0, "%s: used %llu after release", p->name,
		      (unsigned long long)used_now());
		r = p->alloc(limit, &h);
		CHECK(r == CUDA_SUCCESS, "%s: the whole limit again: %d", p->name, r);
		p->release(h);
	}
	/* Another device's limit (TEST_LIMIT1) is counted apart. */
	p_cuCtxSetCurrent(ctx[1]);
	CHECK(a_alloc(limit, &h) == CUDA_SUCCESS, "device 1 has its own budget");
	p_cuMemFree_v2(h);
	p_cuCtxSetCurrent(ctx[0]);
}

/* Every path refuses even one byte when the configuration was rejected. */
static void t_failclosed(void)
{
	uint64_t h;
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		CUresult r = paths[i].alloc(16 * MiB, &h);
		CHECK(r == OOM, "%s with a rejected config: %d", paths[i].name, r);
	}
	CHECK(p_cuMemAlloc_v2((CUdeviceptr *)&h, 1) == OOM, "one byte");
	size_t f = 1, t = 1;
	p_cuMemGetInfo_v2(&f, &t);
	CHECK(f == 0 && t == 0, "cuMemGetInfo free %zu total %zu", f, t);
}

static void nvml_info(int idx, uint64_t *total, uint64_t *used, uint64_t *total2, uint64_t *used2)
{
	nvmlDevice_t d;
	nvmlMemory_t m;
	nvmlMemory_v2_t m2 = {0};
	((nvml_handle_fn)sym(nvml, "nvmlDeviceGetHandleByIndex_v2"))((unsigned)idx, &d);
	p_nvmlDeviceGetMemoryInfo(d, &m);
	p_nvmlDeviceGetMemoryInfo_v2(d, &m2);
	CHECK(m.total == m.used + m.free && m2.total == m2.used + m2.free, "nvml free+used != total");
	*total = m.total, *used = m.used, *total2 = m2.total, *used2 = m2.used;
}

/* Devices 0 and 1 must report totals TEST_TOTAL0 and TEST_TOTAL1. */
static void t_meminfo(void)
{
	uint64_t want[2] = {env_u64("TEST_TOTAL0"), env_u64("TEST_TOTAL1")};
	nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	CHECK(nvml != NULL, "dlopen nvml");
	LOAD(nvml, nvmlDeviceGetMemoryInfo);
	LOAD(nvml, nvmlDeviceGetMemoryInfo_v2);
	for (int d = 0; d < 2; d++) {
		size_t b = 0, f = 0, t = 0;
		p_cuCtxSetCurrent(ctx[d]);
		p_cuDeviceTotalMem_v2(&b, d);
		CHECK(b == want[d], "device %d cuDeviceTotalMem %zu, want %llu", d, b, (unsigned long long)want[d]);
		p_cuMemGetInfo_v2(&f, &t);
		CHECK(t == want[d] && f == t, "device %d cuMemGetInfo free %zu total %zu", d, f, t);
		uint64_t h;
		CHECK(a_alloc(48 * MiB, &h) == CUDA_SUCCESS, "alloc");
		p_cuMemGetInfo_v2(&f, &t);
		CHECK(t == want[d] && f == t - 48 * MiB, "device %d after 48 MiB: free %zu total %zu", d, f, t);
		uint64_t nt, nu, nt2, nu2;
		nvml_info(d, &nt, &nu, &nt2, &nu2);
		CHECK(nt == want[d] && nt2 == want[d], "device %d nvml total %llu/%llu", d, (unsigned long long)nt,
		      (unsigned long long)nt2);
		CHECK(nu == 48 * MiB && nu2 == 48 * MiB, "device %d nvml used %llu/%llu", d, (unsigned long long)nu,
		      (unsigned long long)nu2);
		p_cuMemFree_v2(h);
	}
	p_cuCtxSetCurrent(ctx[0]);
}

/* NVML's process lists of device 0. TEST_OWN=1: the container's own
 * processes, by pid, with what they hold (this one 48 MiB, a child 16 MiB),
 * and never the host's process the stub driver reports; TEST_OWN=0: the
 * driver's list as it is (no share of the card). */
static void t_procs(void)
{
	int own = env_u64("TEST_OWN") != 0;
	nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	CHECK(nvml != NULL, "dlopen nvml");
	LOAD(nvml, nvmlDeviceGetComputeRunningProcesses);
	LOAD(nvml, nvmlDeviceGetComputeRunningProcesses_v2);
	LOAD(nvml, nvmlDeviceGetComputeRunningProcesses_v3);
	LOAD(nvml, nvmlDeviceGetGraphicsRunningProcesses_v3);
	LOAD(nvml, nvmlDeviceGetRunningProcessDetailList);
	nvmlDevice_t d;
	((nvml_handle_fn)sym(nvml, "nvmlDeviceGetHandleByIndex_v2"))(0, &d);
	uint64_t h;
	CHECK(a_alloc(48 * MiB, &h) == CUDA_SUCCESS, "alloc 48 MiB");
	int ready[2], done[2];
	CHECK(pipe(ready) == 0 && pipe(done) == 0, "pipe");
	pid_t child = fork();
	if (child == 0) {
		uint64_t hc;
		char c = a_alloc(16 * MiB, &hc) == CUDA_SUCCESS ? 'y' : 'n';
		(void)!write(ready[1], &c, 1);
		(void)!read(done[0], &c, 1);
		_exit(0);
	}
	char c = 0;
	CHECK(read(ready[0], &c, 1) == 1 && c == 'y', "the child's allocation");
	nvmlProcessInfo_t p3[8];
	nvmlProcessInfo_v1_t p1[8];
	unsigned int n3 = 8, n2 = 8, n1 = 8, small = 1, gn = 8;
	nvmlReturn_t r3 = p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n3, p3);
	nvmlProcessInfo_t p2[8];
	nvmlReturn_t r2 = p_nvmlDeviceGetComputeRunningProcesses_v2(d, &n2, p2);
	nvmlReturn_t r1 = p_nvmlDeviceGetComputeRunningProcesses(d, &n1, p1);
	nvmlReturn_t rs = p_nvmlDeviceGetComputeRunningProcesses_v3(d, &small, p3 + 4);
	nvmlReturn_t rg = p_nvmlDeviceGetGraphicsRunningProcesses_v3(d, &gn, p3 + 6);
	nvmlProcessDetail_v1_t pd[8];
	nvmlProcessDetailList_v1_t dl = {nvmlProcessDetailList_v1, NVML_PROCESS_MODE_COMPUTE, 8, pd};
	nvmlProcessDetailList_v1_t dsmall = {nvmlProcessDetailList_v1, NVML_PROCESS_MODE_ALL, 0, NULL};
	nvmlProcessDetailList_v1_t dg = {nvmlProcessDetailList_v1, NVML_PROCESS_MODE_GRAPHICS, 8, pd + 4};
	nvmlProcessDetailList_v1_t dbad = {nvmlProcessDetailList_v1 + 1, NVML_PROCESS_MODE_COMPUTE, 8, pd + 4};
	nvmlReturn_t rd = p_nvmlDeviceGetRunningProcessDetailList(d, &dl);
	nvmlReturn_t rds = p_nvmlDeviceGetRunningProcessDetailList(d, &dsmall);
	nvmlReturn_t rdg = p_nvmlDeviceGetRunningProcessDetailList(d, &dg);
	nvmlReturn_t rdb = p_nvmlDeviceGetRunningProcessDetailList(d, &dbad);
	(void)!write(done[1], "x", 1);
	waitpid(child, NULL, 0);
	CHECK(r3 == NVML_SUCCESS && r2 == NVML_SUCCESS && r1 == NVML_SUCCESS, "returns %d %d %d", r3, r2, r1);
	if (!own) {
		CHECK(n3 == 1 && p3[0].pid == 4242424u && n1 == 1 && p1[0].pid == 4242424u, "driver's list: %u entries, pid %u",
		      n3, p3[0].pid);
		CHECK(rs == NVML_SUCCESS && small == 1, "driver's list into one entry: %d, %u", rs, small);
		CHECK(rd == NVML_SUCCESS && dl.numProcArrayEntries == 1 && pd[0].pid == 4242424u,
		      "driver's detail list: %d, %u entries", rd, dl.numProcArrayEntries);
		p_cuMemFree_v2(h);
		return;
	}
	CHECK(n3 == 2 && n2 == 2 && n1 == 2, "%u, %u, %u processes, want 2", n3, n2, n1);
	for (unsigned i = 0; i < n3 && i < 2; i++) {
		uint64_t want = p3[i].pid == (unsigned)getpid() ? 48 * MiB : p3[i].pid == (unsigned)child ? 16 * MiB : 0;
		CHECK(want != 0 && p3[i].usedGpuMemory == want, "v3 entry %u: pid %u, %llu bytes (this %d, child %d)", i,
		      p3[i].pid, p3[i].usedGpuMemory, getpid(), child);
		CHECK(p1[i].pid == p3[i].pid && p1[i].usedGpuMemory == p3[i].usedGpuMemory && p2[i].pid == p3[i].pid,
		      "v1/v2 entry %u differs", i);
		CHECK(p3[i].pid != 4242424u, "the host's process is listed");
	}
	CHECK(rs == NVML_ERROR_INSUFFICIENT_SIZE && small == 2, "one entry for two processes: %d, count %u", rs, small);
	CHECK(rg == NVML_SUCCESS && gn == 0, "graphics list: %d, %u entries", rg, gn);
	CHECK(rd == NVML_SUCCESS && dl.numProcArrayEntries == 2, "detail list: %d, %u entries", rd, dl.numProcArrayEntries);
	for (unsigned i = 0; i < dl.numProcArrayEntries && i < 2; i++)
		CHECK(pd[i].pid == p3[i].pid && pd[i].usedGpuMemory == p3[i].usedGpuMemory && pd[i].pid != 4242424u,
		      "detail entry %u: pid %u, %llu bytes", i, pd[i].pid, pd[i].usedGpuMemory);
	CHECK(rds == NVML_ERROR_INSUFFICIENT_SIZE && dsmall.numProcArrayEntries == 2, "detail list, no room: %d, count %u",
	      rds, dsmall.numProcArrayEntries);
	CHECK(rdg == NVML_SUCCESS && dg.numProcArrayEntries == 0, "graphics detail list: %d, %u", rdg, dg.numProcArrayEntries);
	CHECK(rdb == NVML_ERROR_INVALID_ARGUMENT, "unknown detail list version: %d, want refused", rdb);
	p_cuMemFree_v2(h);
}

/* cuGetProcAddress hands out the hook of the variant the driver would. */
static void t_procaddr(void)
{
	static const struct {
		const char *sym;
		int version;
		int flags;
		const char *want; /* variant the driver must see called */
	} cases[] = {
		{"cuLaunchKernel", 12000, 0, "cuLaunchKernel"},
		{"cuLaunchKernel", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuLaunchKernel_ptsz"},
		{"cuLaunchKernel", 12000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, "cuLaunchKernel"},
		{"cuLaunchKernelEx", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuLaunchKernelEx_ptsz"},
		{"cuGraphLaunch", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuGraphLaunch_ptsz"},
		{"cuGraphLaunch", 12000, 0, "cuGraphLaunch"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		void *fn = NULL;
		CUdriverProcAddressQueryResult st;
		CUresult r = p_cuGetProcAddress_v2(cases[i].sym, &fn, cases[i].version, cases[i].flags, &st);
		CHECK(r == CUDA_SUCCESS && fn != NULL, "%s: %d", cases[i].sym, r);
		if (fn == NULL)
			continue;
		CHECK(fn == dlsym(RTLD_DEFAULT, cases[i].want), "%s: not the hook of %s", cases[i].sym, cases[i].want);
		if (strncmp(cases[i].sym, "cuLaunchKernelEx", 16) == 0) {
			CUlaunchConfig c = {0};
			((__typeof__(&cuLaunchKernelEx))fn)(&c, NULL, NULL, NULL);
		} else if (strncmp(cases[i].sym, "cuGraphLaunch", 13) == 0) {
			((__typeof__(&cuGraphLaunch))fn)(NULL, NULL);
		} else {
			((__typeof__(&cuLaunchKernel))fn)(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
		}
		CHECK(strcmp(p_last(), cases[i].want) == 0, "%s: driver saw %s, want %s", cases[i].sym, p_last(),
		      cases[i].want);
	}
	/* Memory entry points from cuGetProcAddress are enforced too. */
	uint64_t limit = env_u64("TEST_LIMIT"), h;
	void *fn = NULL;
	p_cuGetProcAddress_v2("cuMemAlloc", &fn, 12000, 0, NULL);
	CHECK(fn == dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"), "cuMemAlloc: not the _v2 hook");
	CHECK(((__typeof__(&cuMemAlloc_v2))fn)((CUdeviceptr *)&h, limit + 1) == OOM, "cuMemAlloc via procaddr");
	CHECK(((__typeof__(&cuMemAlloc_v2))fn)((CUdeviceptr *)&h, MiB) == CUDA_SUCCESS, "cuMemAlloc via procaddr");
	CHECK(strcmp(p_last(), "cuMemAlloc_v2") == 0, "driver saw %s", p_last());
	p_cuMemFree_v2(h);
	p_cuGetProcAddress_v2("cuMemAllocAsync", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, NULL);
	CHECK(((__typeof__(&cuMemAllocAsync))fn)((CUdeviceptr *)&h, limit + 1, NULL) == OOM, "async ptsz");
	CHECK(((__typeof__(&cuMemAllocAsync))fn)((CUdeviceptr *)&h, MiB, NULL) == CUDA_SUCCESS, "async ptsz");
	CHECK(strcmp(p_last(), "cuMemAllocAsync_ptsz") == 0, "driver saw %s", p_last());
	p_cuMemFree_v2(h);
	/* cuGetProcAddress for itself returns the hook; unhooked names pass through. */
	p_cuGetProcAddress_v2("cuGetProcAddress", &fn, 12000, 0, NULL);
	CHECK(fn == (void *)p_cuGetProcAddress_v2, "cuGetProcAddress: not the hook");
	p_cuGetProcAddress_v2("cuCtxGetDevice", &fn, 12000, 0, NULL);
	CUdevice dev = -1;
	CHECK(fn != NULL && ((__typeof__(&cuCtxGetDevice))fn)(&dev) == CUDA_SUCCESS && dev == 0, "cuCtxGetDevice");
	/* Names the driver does not know stay unknown. */
	CHECK(dlsym(cuda, "cuNoSuchFunction") == NULL, "unknown symbol");
}

/* Threads allocating and freeing 2 MiB blocks as fast as they can. */
static int stress_iters;
static _Atomic unsigned long ok_count, oom_count;

static void *stress_thread(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg ^ (unsigned)getpid();
	CUdeviceptr held[4] = {0};
	p_cuCtxSetCurrent(ctx[0]);
	for (int i = 0; i < stress_iters; i++) {
		int k = rand_r(&seed) % 4;
		if (held[k] != 0) {
			CHECK(p_cuMemFree_v2(held[k]) == CUDA_SUCCESS, "free");
			held[k] = 0;
		} else {
			CUresult r = p_cuMemAlloc_v2(&held[k], 2 * MiB);
			CHECK(r == CUDA_SUCCESS || r == OOM, "alloc returned %d", r);
			if (r == CUDA_SUCCESS)
				ok_count++;
			else
				{ oom_count++; held[k] = 0; }
		}
	}
	for (int k = 0; k < 4; k++)
		if (held[k] != 0)
			p_cuMemFree_v2(held[k]);
	return NULL;
}

static void t_stress(int threads, int iters)
{
	pthread_t t[64];
	stress_iters = iters;
	/* All processes start together once TEST_START_FILE exists. */
	const char *start = getenv("TEST_START_FILE");
	for (int i = 0; start != NULL && access(start, F_OK) != 0 && i < 20000; i++) {
		struct timespec d = {0, 1000000};
		nanosleep(&d, NULL);
	}
	for (int i = 0; i < threads && i < 64; i++)
		pthread_create(&t[i], NULL, stress_thread, (void *)(uintptr_t)i);
	for (int i = 0; i < threads && i < 64; i++)
		pthread_join(t[i], NULL);
	printf("ok %lu oom %lu\n", (unsigned long)ok_count, (unsigned long)oom_count);
}

/* A barrier across every thread of every process taking part: a counter in
 * a file that only grows, so no reset can race a late waiter. */
static _Atomic uint64_t *barrier_ctr;
static uint64_t barrier_parties;

static void barrier_open(void)
{
	const char *f = getenv("TEST_BARRIER_FILE");
	barrier_parties = env_u64("TEST_PARTIES");
	int fd = f != NULL ? open(f, O_RDWR | O_CREAT, 0666) : -1;
	CHECK(fd >= 0 && ftruncate(fd, 64) == 0, "barrier file %s", f ? f : "(unset)");
	void *p = mmap(NULL, 64, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mmap barrier");
	close(fd);
	if (p == MAP_FAILED)
		exit(2);
	barrier_ctr = p;
}

/* The k-th (from 1) crossing of the barrier by this thread. */
static void barrier_cross(uint64_t k)
{
	atomic_fetch_add(barrier_ctr, 1);
	while (atomic_load(barrier_ctr) < k * barrier_parties) {
		struct timespec d = {0, 200000};
		nanosleep(&d, NULL);
	}
}

/* Every thread of every process tries one 2 MiB block per round and holds
 * it until all have tried: demand at that instant is parties x 2 MiB, so
 * with more parties than the limit has blocks, refusals follow from the
 * construction, whatever the OS schedules. The stub's own count of bytes
 * allocated, read by each thread while all hold, never passes the limit. */
static int contend_rounds;
static uint64_t contend_limit;
static _Atomic unsigned long held_over;

static void *contend_thread(void *arg)
{
	(void)arg;
	p_cuCtxSetCurrent(ctx[0]);
	for (int r = 0; r < contend_rounds; r++) {
		CUdeviceptr h = 0;
		CUresult res = p_cuMemAlloc_v2(&h, 2 * MiB);
		CHECK(res == CUDA_SUCCESS || res == OOM, "alloc returned %d", res);
		if (res == CUDA_SUCCESS)
			ok_count++;
		else
			oom_count++;
		barrier_cross(2 * (uint64_t)r + 1);
		if (p_used(0) > contend_limit)
			held_over++;
		if (res == CUDA_SUCCESS)
			CHECK(p_cuMemFree_v2(h) == CUDA_SUCCESS, "free");
		barrier_cross(2 * (uint64_t)r + 2);
	}
	return NULL;
}

static void t_contend(int threads, int rounds)
{
	pthread_t t[64];
	contend_rounds = rounds;
	contend_limit = env_u64("TEST_LIMIT");
	barrier_open();
	for (int i = 0; i < threads && i < 64; i++)
		pthread_create(&t[i], NULL, contend_thread, NULL);
	for (int i = 0; i < threads && i < 64; i++)
		pthread_join(t[i], NULL);
	CHECK(held_over == 0, "%lu times the driver held more than the limit", (unsigned long)held_over);
	printf("ok %lu oom %lu\n", (unsigned long)ok_count, (unsigned long)oom_count);
}

static void t_hold(uint64_t bytes)
{
	uint64_t h;
	CUresult r = a_alloc(bytes, &h);
	printf("%s\n", r == CUDA_SUCCESS ? "held" : "refused");
	fflush(stdout);
	while (r == CUDA_SUCCESS) /* hold it until killed */
		pause();
}

/* Waits until the container's usage of device 0 is want; prints the ms. */
static void t_wait_used(uint64_t want, int timeout_ms)
{
	uint64_t t0 = now_ns(), u = 0;
	while ((u = used_now()) != want && now_ns() - t0 < (uint64_t)timeout_ms * 1000000ULL) {
		struct timespec d = {0, 5000000};
		nanosleep(&d, NULL);
	}
	printf("%.0f\n", (double)(now_ns() - t0) / 1e6);
	CHECK(u == want, "usage %llu after %d ms, want %llu", (unsigned long long)u, timeout_ms,
	      (unsigned long long)want);
}

/* Allocates 2 MiB blocks until refused: exactly the limit must fit. */
static void t_fill(void)
{
	uint64_t limit = env_u64("TEST_LIMIT"), n = 0;
	CUdeviceptr h[1024];
	while (n < 1024 && p_cuMemAlloc_v2(&h[n], 2 * MiB) == CUDA_SUCCESS)
		n++;
	CHECK(n * 2 * MiB == limit, "%llu blocks of 2 MiB fit, want %llu", (unsigned long long)n,
	      (unsigned long long)(limit / (2 * MiB)));
	while (n > 0)
		p_cuMemFree_v2(h[--n]);
}

static void t_peak(void) { printf("%llu %llu\n", (unsigned long long)p_peak(0), (unsigned long long)p_used(0)); }

/* Compute tests. Kernels run on the stub's asynchronous GPU; a share is this
 * process's busy time (the union over its streams) over wall time. */
static CUresult (*p_sync)(void);
static CUresult (*p_stream_sync)(CUstream);
static CUresult (*p_begin)(CUstream, CUstreamCaptureMode);
static CUresult (*p_end)(CUstream, CUgraph *);
static stub_between_fn p_between;

static void setup_compute(void)
{
	p_sync = (CUresult(*)(void))sym(cuda, "cuCtxSynchronize");
	p_stream_sync = (CUresult(*)(CUstream))sym(cuda, "cuStreamSynchronize");
	p_begin = (CUresult(*)(CUstream, CUstreamCaptureMode))sym(cuda, "cuStreamBeginCapture_v2");
	p_end = (CUresult(*)(CUstream, CUgraph *))sym(cuda, "cuStreamEndCapture");
	p_between = (stub_between_fn)sym(cuda, "stub_busy_between");
}

static double share_of(uint64_t t0, uint64_t t1) { return 100.0 * (double)p_between(0, t0, t1) / (double)(t1 - t0); }

static void launch_on(void *fn, int graph, CUstream s, unsigned us)
{
	if (graph)
		((__typeof__(&cuGraphLaunch))fn)(NULL, s);
	else
		((__typeof__(&cuLaunchKernel))fn)(NULL, us, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
}

/* Launches for the given seconds (plain, ptsz or graph); prints the share. */
static void t_share(double seconds, const char *how)
{
	void *fn = NULL;
	int ptsz = strcmp(how, "ptsz") == 0, graph = strcmp(how, "graph") == 0;
	p_cuGetProcAddress_v2(graph ? "cuGraphLaunch" : "cuLaunchKernel", &fn, 12000,
			      ptsz ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM : 0, NULL);
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), n = 0;
	while (now_ns() < end) {
		launch_on(fn, graph, NULL, 1);
		n++;
	}
	p_sync();
	uint64_t t1 = now_ns();
	printf("%.1f\n", share_of(t0, t1));
	fprintf(stderr, "share %.1f%% over %llu launches\n", share_of(t0, t1), (unsigned long long)n);
}

/* Several host threads, each launching on its own stream. */
static double streams_seconds;
static void *stream_thread(void *arg)
{
	p_cuCtxSetCurrent(ctx[0]);
	CUstream s = (CUstream)(uintptr_t)(0x100 + (uintptr_t)arg);
	uint64_t end = now_ns() + (uint64_t)(streams_seconds * 1e9);
	while (now_ns() < end)
		p_cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
	return NULL;
}

static void t_streams(double seconds, int threads)
{
	pthread_t t[16];
	streams_seconds = seconds;
	uint64_t t0 = now_ns();
	for (int i = 0; i < threads && i < 16; i++)
		pthread_create(&t[i], NULL, stream_thread, (void *)(uintptr_t)i);
	for (int i = 0; i < threads && i < 16; i++)
		pthread_join(t[i], NULL);
	p_sync();
	printf("%.1f\n", share_of(t0, now_ns()));
}

/* One thread per device named in devs ("0", "1", "01"), each launching on
 * its own stream for the given seconds. Prints each device's share after
 * the first second and, with two devices, how much of the less busy one's
 * time the other was busy too (turns taken together), in percent. */
static struct {
	double seconds;
	uint64_t t0;
} cd;

static void *card_thread(void *arg)
{
	int d = (int)(uintptr_t)arg;
	p_cuCtxSetCurrent(ctx[d]);
	CUstream s = (CUstream)(uintptr_t)(0x600 + d);
	uint64_t end = cd.t0 + (uint64_t)(cd.seconds * 1e9);
	while (now_ns() < end)
		p_cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
	p_stream_sync(s);
	return NULL;
}

static void t_cards(double seconds, const char *devs)
{
	uint64_t (*overlap)(int, int, uint64_t, uint64_t) =
		(uint64_t(*)(int, int, uint64_t, uint64_t))sym(cuda, "stub_overlap_between");
	pthread_t t[2];
	int dev[2], n = 0;
	for (const char *c = devs; *c != '\0' && n < 2; c++)
		if (*c == '0' || *c == '1')
			dev[n++] = *c - '0';
	cd.seconds = seconds, cd.t0 = now_ns();
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, card_thread, (void *)(uintptr_t)dev[i]);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	uint64_t from = cd.t0 + 1000000000ULL, to = now_ns(), busy[2] = {0, 0};
	for (int i = 0; i < n; i++) {
		busy[i] = p_between(dev[i], from, to);
		printf("%.1f ", 100.0 * (double)busy[i] / (double)(to - from));
	}
	if (n == 2) {
		uint64_t least = busy[0] < busy[1] ? busy[0] : busy[1];
		printf("%.1f", least ? 100.0 * (double)overlap(dev[0], dev[1], from, to) / (double)least : 0.0);
	}
	printf("\n");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Several host threads, each running steps on its own stream: k kernels of
 * us microseconds, then a wait for them. Prints the share of the card,
 * p99 / median of all threads' step times after the first second, and the
 * fewest steps a thread made over the most. */
static struct {
	double seconds;
	int k;
	unsigned us;
	uint64_t t0;
	_Atomic size_t n;
	uint64_t steps[1 << 16];
	size_t per[16]; /* each thread's steps */
} ss;

static void *stream_steps_thread(void *arg)
{
	p_cuCtxSetCurrent(ctx[0]);
	CUstream s = (CUstream)(uintptr_t)(0x200 + (uintptr_t)arg);
	uint64_t end = ss.t0 + (uint64_t)(ss.seconds * 1e9), warm = ss.t0 + 1000000000ULL;
	while (now_ns() < end) {
		uint64_t a = now_ns();
		for (int i = 0; i < ss.k; i++)
			p_cuLaunchKernel(NULL, ss.us, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
		p_stream_sync(s);
		size_t i = a >= warm ? atomic_fetch_add(&ss.n, 1) : SIZE_MAX;
		if (i < sizeof ss.steps / sizeof ss.steps[0])
			ss.steps[i] = now_ns() - a;
		if (i != SIZE_MAX)
			ss.per[(uintptr_t)arg]++;
	}
	return NULL;
}

static void t_stream_steps(double seconds, int threads, int k, unsigned us)
{
	pthread_t t[16];
	ss.seconds = seconds, ss.k = k, ss.us = us, ss.t0 = now_ns();
	for (int i = 0; i < threads && i < 16; i++)
		pthread_create(&t[i], NULL, stream_steps_thread, (void *)(uintptr_t)i);
	for (int i = 0; i < threads && i < 16; i++)
		pthread_join(t[i], NULL);
	p_sync();
	uint64_t t1 = now_ns();
	size_t n = atomic_load(&ss.n);
	n = n < sizeof ss.steps / sizeof ss.steps[0] ? n : sizeof ss.steps / sizeof ss.steps[0];
	CHECK(n > 10, "only %zu steps", n);
	if (n <= 10)
		return;
	size_t lo = SIZE_MAX, hi = 0;
	for (int i = 0; i < threads && i < 16; i++)
		lo = ss.per[i] < lo ? ss.per[i] : lo, hi = ss.per[i] > hi ? ss.per[i] : hi;
	qsort(ss.steps, n, sizeof ss.steps[0], cmp_u64);
	double med = (double)ss.steps[n / 2], p99 = (double)ss.steps[n * 99 / 100];
	printf("%.1f %.2f %.2f\n", share_of(ss.t0 + 1000000000ULL, t1), p99 / med, (double)lo / (double)(hi ? hi : 1));
	fprintf(stderr, "%zu steps, median %.2f ms, p99 %.2f ms, fewest/most steps of a thread %zu/%zu\n", n, med / 1e6,
		p99 / 1e6, lo, hi);
}

/* A training-like loop: each step launches k kernels of us microseconds,
 * waits for them, then works on the host for gap microseconds. Prints the
 * share of the steps' wall time and p99 / median of the step time after the
 * first second (warm-up). */
static void t_steps(double seconds, int k, unsigned us, unsigned gap)
{
	static uint64_t steps[1 << 16];
	size_t n = 0;
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), warm = t0 + 1000000000ULL, tw = 0;
	while (now_ns() < end && n < sizeof steps / sizeof steps[0]) {
		uint64_t a = now_ns();
		for (int i = 0; i < k; i++)
			p_cuLaunchKernel(NULL, us, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
		p_stream_sync(NULL);
		struct timespec d = {0, (long)gap * 1000};
		nanosleep(&d, NULL);
		if (a >= warm) {
			if (tw == 0)
				tw = a;
			steps[n++] = now_ns() - a;
		}
	}
	uint64_t t1 = now_ns();
	CHECK(n > 10, "only %zu steps", n);
	if (n <= 10)
		return;
	/* Growth: the median step of the last quarter over that of the first.
	 * A loop charged for its waits runs away (each step longer than the
	 * last); a loaded host slows all quarters alike. */
	size_t q = n / 4;
	static uint64_t first[1 << 14], last[1 << 14];
	memcpy(first, steps, q * sizeof steps[0]);
	memcpy(last, steps + n - q, q * sizeof steps[0]);
	qsort(first, q, sizeof first[0], cmp_u64);
	qsort(last, q, sizeof last[0], cmp_u64);
	double growth = (double)last[q / 2] / (double)first[q / 2];
	qsort(steps, n, sizeof steps[0], cmp_u64);
	double med = (double)steps[n / 2], p99 = (double)steps[n * 99 / 100];
	printf("%.1f %.2f %.2f\n", share_of(tw, t1), p99 / med, growth);
	fprintf(stderr, "%zu steps, median %.2f ms, p99 %.2f ms, last/first quarter median %.2f\n", n, med / 1e6, p99 / 1e6, growth);
}

/* Steps of one kernel of us microseconds and a wait, from the start: the
 * longest step over the median, leaving out a first step whose own launch
 * may stall on the host. Host time charged as GPU time makes the steps
 * after it pay. */
static void t_startup(double seconds, unsigned us)
{
	static uint64_t steps[1 << 14];
	size_t n = 0;
	/* TEST_SETUP_GAP_US: first a set-up step whose two launches are apart
	 * by that much host work (a library setting up between them). */
	uint64_t gap = getenv("TEST_SETUP_GAP_US") ? env_u64("TEST_SETUP_GAP_US") : 0;
	if (gap != 0) {
		p_cuLaunchKernel(NULL, us, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
		struct timespec d = {(time_t)(gap / 1000000), (long)(gap % 1000000) * 1000};
		nanosleep(&d, NULL);
		p_cuLaunchKernel(NULL, us + 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
		p_stream_sync(NULL);
	}
	uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
	while (now_ns() < end && n < sizeof steps / sizeof steps[0]) {
		uint64_t a = now_ns();
		p_cuLaunchKernel(NULL, us, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
		p_stream_sync(NULL);
		steps[n++] = now_ns() - a;
	}
	CHECK(n > 10, "only %zu steps", n);
	if (n <= 10)
		return;
	size_t from = gap != 0 ? 0 : 1; /* after a set-up step, the first step stalls on nothing */
	uint64_t most = 0;
	for (size_t i = from; i < n; i++)
		most = steps[i] > most ? steps[i] : most;
	uint64_t first = steps[0];
	qsort(steps + from, n - from, sizeof steps[0], cmp_u64);
	double med = (double)steps[from + (n - from) / 2];
	printf("%.2f\n", (double)most / med);
	fprintf(stderr, "%zu steps, first %.1f ms, median %.2f ms, longest after it %.1f ms\n", n, (double)first / 1e6,
		med / 1e6, (double)most / 1e6);
}

/* A host-bound loop: one kernel of us microseconds, then gap microseconds
 * of host work, no waiting. The GPU idles in the gaps; prints the share. */
static void t_gaps(double seconds, unsigned us, unsigned gap)
{
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
	while (now_ns() < end) {
		p_cuLaunchKernel(NULL, us, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
		uint64_t until = now_ns() + (uint64_t)gap * 1000;
		while (now_ns() < until)
			;
	}
	p_sync();
	printf("%.1f\n", share_of(t0, now_ns()));
}

/* Captures a graph in global mode on one stream while another thread keeps
 * launching on its own stream, then replays it for the given seconds.
 * Fails if the capture was invalidated or the enforcer touched an event
 * where a capture could see it; prints the share of the replays. */
static _Atomic int capture_busy;
static void *side_launcher(void *arg)
{
	(void)arg;
	p_cuCtxSetCurrent(ctx[0]);
	while (atomic_load(&capture_busy))
		p_cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, (CUstream)0x200, NULL, NULL);
	return NULL;
}

static void t_capture(double seconds)
{
	CUstream s = (CUstream)0x300;
	uint64_t (*violations)(void) = (stub_count_fn)sym(cuda, "stub_capture_violations");
	uint64_t (*captured)(void) = (stub_count_fn)sym(cuda, "stub_captured_events");
	pthread_t side;
	/* Warm up first, so the limit is engaged (leases, events) when the
	 * capture begins. */
	for (int i = 0; i < 200; i++)
		p_cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
	atomic_store(&capture_busy, 1);
	pthread_create(&side, NULL, side_launcher, NULL);
	struct timespec d = {0, 20000000};
	nanosleep(&d, NULL);
	CUgraph g = NULL;
	CHECK(p_begin(s, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS, "begin capture");
	for (int i = 0; i < 20; i++)
		p_cuLaunchKernel(NULL, 100, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
	nanosleep(&d, NULL); /* the side thread launches during the capture */
	CUresult r = p_end(s, &g);
	atomic_store(&capture_busy, 0);
	pthread_join(side, NULL);
	CHECK(r == CUDA_SUCCESS && g != NULL, "end capture: %d", r);
	CHECK(violations() == 0, "%llu calls would have invalidated the capture", (unsigned long long)violations());
	CHECK(captured() == 0, "%llu events recorded on the capturing stream", (unsigned long long)captured());
	if (g == NULL)
		return;
	p_sync();
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
	while (now_ns() < end)
		p_cuGraphLaunch((CUgraphExec)(void *)g, s);
	p_sync();
	printf("%.1f\n", share_of(t0, now_ns()));
}

/* Launches for the given seconds, then prints the share in each window
 * [a, b] (seconds from the start) given as arguments. */
static void t_windows(double seconds, int argc, char **argv)
{
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
	const char *ready = getenv("TEST_READY_FILE");
	int told = 0;
	/* TEST_PAUSE=<at> <seconds>: idle once, as a job between phases. */
	double pause_at = -1, pause_s = 0;
	if (getenv("TEST_PAUSE") != NULL)
		sscanf(getenv("TEST_PAUSE"), "%lf %lf", &pause_at, &pause_s);
	while (now_ns() < end) {
		if (pause_at >= 0 && now_ns() >= t0 + (uint64_t)(pause_at * 1e9)) {
			p_sync();
			struct timespec d = {(time_t)pause_s, (long)((pause_s - (double)(time_t)pause_s) * 1e9)};
			nanosleep(&d, NULL);
			pause_at = -1;
		}
		p_cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
		if (!told && ready != NULL) {
			int fd = open(ready, O_WRONLY | O_CREAT, 0666);
			if (fd >= 0)
				close(fd);
			told = 1;
		}
	}
	p_sync();
	for (int i = 0; i + 1 < argc; i += 2) {
		uint64_t a = t0 + (uint64_t)(atof(argv[i]) * 1e9), b = t0 + (uint64_t)(atof(argv[i + 1]) * 1e9);
		printf("%s%.1f", i ? " " : "", share_of(a, b));
	}
	printf("\n");
}

/* Waits for the card and reports how long the first launch took. */
static void t_first(void)
{
	uint64_t t0 = now_ns();
	p_cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
	p_sync();
	printf("%.0f\n", (double)(now_ns() - t0) / 1e6);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_enforcer paths|failclosed|meminfo|procaddr|stress|hold|wait_used|peak|share\n");
		return 2;
	}
	setup();
	setup_compute();
	const char *cmd = argv[1];
	if (strcmp(cmd, "paths") == 0)
		t_paths();
	else if (strcmp(cmd, "failclosed") == 0)
		t_failclosed();
	else if (strcmp(cmd, "meminfo") == 0)
		t_meminfo();
	else if (strcmp(cmd, "procs") == 0)
		t_procs();
	else if (strcmp(cmd, "procaddr") == 0)
		t_procaddr();
	else if (strcmp(cmd, "stress") == 0 && argc == 4)
		t_stress(atoi(argv[2]), atoi(argv[3]));
	else if (strcmp(cmd, "contend") == 0 && argc == 4)
		t_contend(atoi(argv[2]), atoi(argv[3]));
	else if (strcmp(cmd, "hold") == 0 && argc == 3)
		t_hold(strtoull(argv[2], NULL, 10));
	else if (strcmp(cmd, "wait_used") == 0 && argc == 4)
		t_wait_used(strtoull(argv[2], NULL, 10), atoi(argv[3]));
	else if (strcmp(cmd, "fill") == 0)
		t_fill();
	else if (strcmp(cmd, "peak") == 0)
		t_peak();
	else if (strcmp(cmd, "share") == 0 && argc == 4)
		t_share(atof(argv[2]), argv[3]);
	else if (strcmp(cmd, "streams") == 0 && argc == 4)
		t_streams(atof(argv[2]), atoi(argv[3]));
	else if (strcmp(cmd, "stream_steps") == 0 && argc == 6)
		t_stream_steps(atof(argv[2]), atoi(argv[3]), atoi(argv[4]), (unsigned)atoi(argv[5]));
	else if (strcmp(cmd, "steps") == 0 && argc == 6)
		t_steps(atof(argv[2]), atoi(argv[3]), (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]));
	else if (strcmp(cmd, "startup") == 0 && argc == 4)
		t_startup(atof(argv[2]), (unsigned)atoi(argv[3]));
	else if (strcmp(cmd, "cards") == 0 && argc == 4)
		t_cards(atof(argv[2]), argv[3]);
	else if (strcmp(cmd, "gaps") == 0 && argc == 5)
		t_gaps(atof(argv[2]), (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	else if (strcmp(cmd, "capture") == 0 && argc == 3)
		t_capture(atof(argv[2]));
	else if (strcmp(cmd, "windows") == 0 && argc >= 5)
		t_windows(atof(argv[2]), argc - 3, argv + 3);
	else if (strcmp(cmd, "first") == 0)
		t_first();
	else {
		fprintf(stderr, "bad command\n");
		return 2;
	}
	/* Every stream the enforcer held for a timing was let go. */
	uint64_t (*stuck)(void) = (stub_count_fn)sym(cuda, "stub_stuck_holds");
	CHECK(stuck() == 0, "%llu stream holds never let go", (unsigned long long)stuck());
	if (failures) {
		fprintf(stderr, "test_enforcer %s: %d failures\n", cmd, failures);
		return 1;
	}
	return 0;
}
