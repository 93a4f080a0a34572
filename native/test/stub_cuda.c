/* A stub libcuda.so.1 for tests without a GPU: host memory behind the
 * allocation calls, fake UUIDs, launches that sleep. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "mosaic_cuda.h"
#include "stub.h"

#define EXPORT __attribute__((visibility("default")))
#define MAXDEV 8

#define STUB_PROCS 64
struct stub_proc {
	_Atomic int pid;
	_Atomic uint64_t tail[MAXDEV]; /* when this process's last queued work ends */
};
struct counters {
	_Atomic uint64_t used[MAXDEV];
	_Atomic uint64_t peak[MAXDEV];
	struct stub_proc procs[STUB_PROCS];
};

static struct counters local_counters, *ctr;
static int ndev = 2;
static uint64_t phys = 16ULL << 30;
static long kernel_us;
static uint64_t latency_ns, sync_every;
static int serial;
static uint64_t first_ns;
static uint64_t dispatch_ns, memset_ns;
static _Atomic uint64_t nlaunches;
static _Thread_local const char *last;
static _Thread_local int cur_dev;
static struct CUctx_st {
	int dev;
} ctxs[MAXDEV];

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	return s != NULL && *s != '\0' ? strtoull(s, NULL, 10) : def;
}

EXPORT CUresult cuInit(unsigned int flags)
{
	(void)flags;
	last = "cuInit";
	ndev = (int)env_u64("STUB_DEVICES", 2);
	if (ndev > MAXDEV)
		ndev = MAXDEV;
	phys = env_u64("STUB_PHYS_BYTES", 16ULL << 30);
	kernel_us = (long)env_u64("STUB_KERNEL_US", 0);
	latency_ns = env_u64("STUB_LAUNCH_LATENCY_US", 0) * 1000ULL;
	sync_every = env_u64("STUB_LAUNCH_SYNC_EVERY", 0);
	serial = env_u64("STUB_STREAMS_SERIAL", 0) != 0;
	first_ns = env_u64("STUB_FIRST_LAUNCH_US", 0) * 1000ULL;
	/* A kernel behind a hold starts this long after the hold lets go
	 * (an H200 dispatches it 1.4 us after the start event completes). */
	dispatch_ns = env_u64("STUB_DISPATCH_NS", 0);
	memset_ns = env_u64("STUB_MEMSET_NS", 2000);
	ctr = &local_counters;
	const char *f = getenv("STUB_SHARED_FILE");
	if (f != NULL) {
		int fd = open(f, O_RDWR | O_CREAT, 0666);
		if (fd >= 0 && ftruncate(fd, sizeof *ctr) == 0) {
			void *p = mmap(NULL, sizeof *ctr, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED)
				ctr = p;
		}
		if (fd >= 0)
			close(fd);
	}
	return CUDA_SUCCESS;
}

EXPORT const char *stub_last_call(void) { return last; }
EXPORT uint64_t stub_used_bytes(int d) { return ctr ? atomic_load(&ctr->used[d]) : 0; }
EXPORT uint64_t stub_peak_bytes(int d) { return ctr ? atomic_load(&ctr->peak[d]) : 0; }

EXPORT CUresult cuDeviceGetCount(int *n)
{
	*n = ndev;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
	if (ordinal < 0 || ordinal >= ndev)
		return CUDA_ERROR_INVALID_VALUE;
	*d = ordinal;
	return CUDA_SUCCESS;
}

static CUresult uuid(CUuuid *u, CUdevice d)
{
	static const unsigned char ids[2][16] = {
		{0x6c, 0x8b, 0x3c, 0x2e, 0x1f, 0x3a, 0x4d, 0x9e, 0x9b, 0x1a, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f},
		{0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0}};
	if (d < 0 || d >= ndev)
		return CUDA_ERROR_INVALID_VALUE;
	int swap = getenv("STUB_UUID_SWAP") != NULL;
	if (d < 2)
		memcpy(u->bytes, ids[swap ? 1 - d : d], 16);
	else
		memset(u->bytes, d, 16);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetUuid(CUuuid *u, CUdevice d) { return uuid(u, d); }
EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d) { return uuid(u, d); }

EXPORT CUresult cuCtxCreate_v2(CUcontext *c, unsigned int flags, CUdevice d)
{
	(void)flags;
	if (d < 0 || d >= ndev)
		return CUDA_ERROR_INVALID_VALUE;
	cur_dev = d;
	ctxs[d].dev = d;
	*c = &ctxs[d];
	return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext c)
{
	cur_dev = c->dev;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetDevice(CUdevice *d)
{
	*d = cur_dev;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *c)
{
	*c = &ctxs[cur_dev];
	return CUDA_SUCCESS;
}

/* Memory: a header before each block remembers its size and device. */
struct hdr {
	uint64_t bytes;
	int dev;
	int pad;
};

static CUresult take(int dev, uint64_t bytes)
{
	uint64_t u = atomic_fetch_add(&ctr->used[dev], bytes) + bytes;
	if (u > phys) {
		atomic_fetch_sub(&ctr->used[dev], bytes);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	uint64_t p = atomic_load(&ctr->peak[dev]);
	while (u > p && !atomic_compare_exchange_weak(&ctr->peak[dev], &p, u))
		;
	return CUDA_SUCCESS;
}

static CUresult alloc(CUdeviceptr *dptr, uint64_t bytes, int dev)
{
	if (bytes == 0)
		return CUDA_ERROR_INVALID_VALUE;
	CUresult r = take(dev, bytes);
	if (r != CUDA_SUCCESS)
		return r;
	/* Not touched, so large blocks cost address space only. */
	struct hdr *h = malloc(sizeof *h + bytes);
	if (h == NULL) {
		atomic_fetch_sub(&ctr->used[dev], bytes);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	h->bytes = bytes;
	h->dev = dev;
	*dptr = (CUdeviceptr)(uintptr_t)(h + 1);
	return CUDA_SUCCESS;
}

static CUresult release(uint64_t p)
{
	if (p == 0)
		return CUDA_ERROR_INVALID_VALUE;
	struct hdr *h = (struct hdr *)(uintptr_t)p - 1;
	atomic_fetch_sub(&ctr->used[h->dev], h->bytes);
	free(h);
	return CUDA_SUCCESS;
}

#define NAMED(n) last = #n

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *d, size_t b) { NAMED(cuMemAlloc_v2); return alloc(d, b, cur_dev); }
EXPORT CUresult cuMemAllocManaged(CUdeviceptr *d, size_t b, unsigned int f)
{
	(void)f;
	NAMED(cuMemAllocManaged);
	return alloc(d, b, cur_dev);
}
EXPORT CUresult cuMemAllocAsync(CUdeviceptr *d, size_t b, CUstream s)
{
	(void)s;
	NAMED(cuMemAllocAsync);
	return alloc(d, b, cur_dev);
}
EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *d, size_t b, CUstream s)
{
	(void)s;
	NAMED(cuMemAllocAsync_ptsz);
	return alloc(d, b, cur_dev);
}
EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *d, size_t b, CUmemoryPool p, CUstream s)
{
	(void)s, (void)p;
	NAMED(cuMemAllocFromPoolAsync);
	return alloc(d, b, cur_dev);
}
EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *d, size_t b, CUmemoryPool p, CUstream s)
{
	(void)s, (void)p;
	NAMED(cuMemAllocFromPoolAsync_ptsz);
	return alloc(d, b, cur_dev);
}
EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *d, size_t *pitch, size_t w, size_t h, unsigned int e)
{
	(void)e;
	NAMED(cuMemAllocPitch_v2);
	*pitch = (w + 511) & ~(size_t)511;
	return alloc(d, *pitch * h, cur_dev);
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr d) { NAMED(cuMemFree_v2); return release(d); }
EXPORT CUresult cuMemFreeAsync(CUdeviceptr d, CUstream s)
{
	(void)s;
	NAMED(cuMemFreeAsync);
	return release(d);
}
EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr d, CUstream s)
{
	(void)s;
	NAMED(cuMemFreeAsync_ptsz);
	return release(d);
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *prop,
			    unsigned long long flags)
{
	(void)flags;
	NAMED(cuMemCreate);
	CUdeviceptr p;
	CUresult r = alloc(&p, size, prop->location.id);
	*h = p;
	return r;
}
EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h) { NAMED(cuMemRelease); return release(h); }

static uint64_t elem(CUarray_format f)
{
	return f == CU_AD_FORMAT_FLOAT || f == CU_AD_FORMAT_UNSIGNED_INT32 || f == CU_AD_FORMAT_SIGNED_INT32 ? 4
	       : f == CU_AD_FORMAT_HALF || f == CU_AD_FORMAT_UNSIGNED_INT16 || f == CU_AD_FORMAT_SIGNED_INT16 ? 2
												       : 1;
}
static uint64_t nz(size_t v) { return v ? v : 1; }

EXPORT CUresult cuArrayCreate_v2(CUarray *a, const CUDA_ARRAY_DESCRIPTOR *d)
{
	NAMED(cuArrayCreate_v2);
	CUdeviceptr p;
	CUresult r = alloc(&p, nz(d->Width) * nz(d->Height) * elem(d->Format) * d->NumChannels, cur_dev);
	*a = (CUarray)(uintptr_t)p;
	return r;
}
EXPORT CUresult cuArray3DCreate_v2(CUarray *a, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
	NAMED(cuArray3DCreate_v2);
	CUdeviceptr p;
	CUresult r = alloc(&p, nz(d->Width) * nz(d->Height) * nz(d->Depth) * elem(d->Format) * d->NumChannels,
			   cur_dev);
	*a = (CUarray)(uintptr_t)p;
	return r;
}
EXPORT CUresult cuArrayDestroy(CUarray a) { NAMED(cuArrayDestroy); return release((uintptr_t)a); }
EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *a, const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned int levels)
{
	NAMED(cuMipmappedArrayCreate);
	uint64_t b = 0;
	for (unsigned l = 0; l < levels; l++)
		b += nz(d->Width >> l) * (d->Height ? nz(d->Height >> l) : 1) * (d->Depth ? nz(d->Depth >> l) : 1) *
		     elem(d->Format) * d->NumChannels;
	CUdeviceptr p;
	CUresult r = alloc(&p, b, cur_dev);
	*a = (CUmipmappedArray)(uintptr_t)p;
	return r;
}
EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray a)
{
	NAMED(cuMipmappedArrayDestroy);
	return release((uintptr_t)a);
}

EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
	NAMED(cuMemGetInfo_v2);
	uint64_t u = atomic_load(&ctr->used[cur_dev]);
	*total = phys;
	*free = u < phys ? phys - u : 0;
	return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d)
{
	(void)d;
	NAMED(cuDeviceTotalMem_v2);
	*b = phys;
	return CUDA_SUCCESS;
}

/* The GPU: asynchronous, as the real one. Work on one stream runs in order;
 * streams of one process overlap freely; processes sharing STUB_SHARED_FILE
 * take turns on a device (a kernel starts after every other process's
 * queued work), as contexts time-slice. A launch blocks while its stream
 * has more than 20 ms queued, as a full launch queue does. A kernel on an
 * idle stream starts STUB_LAUNCH_LATENCY_US after its launch call, while
 * an event recorded there completes at once, as on a real card.
 * cuStreamWaitValue32 holds a stream until a host word reaches a value: the
 * work queued behind it starts when a driver call first sees the word
 * written; a hold left for a second is let go and counted (stub_stuck_holds).
 * STUB_LAUNCH_SYNC_EVERY=N: every Nth launch call first waits until the
 * device is idle, as the first launch of a lazily loaded kernel can.
 * STUB_STREAMS_SERIAL=1: a process's streams take turns instead, as
 * kernels that each fill the card do (a large matmul on an H200).
 * STUB_FIRST_LAUNCH_US=N: the first launch of each kernel length works on
 * the host for N us before it queues the kernel, as loading a kernel's
 * module lazily does. */
static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	for (uint64_t n = now_ns(); n < t; n = now_ns()) {
		struct timespec d = {(time_t)((t - n) / 1000000000ULL), (long)((t - n) % 1000000000ULL)};
		nanosleep(&d, NULL);
	}
}

#define QUEUE_NS 20000000ULL
#define NSTREAMS 256
#define MAXIV (1 << 21)
#define HELD_OPS 64 /* operations queued behind one hold; more is an error */
#define STUCK_NS 1000000000ULL

/* Events complete when the stream reaches them (t; UINT64_MAX: behind a hold). */
struct CUevent_st {
	uint64_t t;
	int captured;
};

static pthread_mutex_t gpu_mu = PTHREAD_MUTEX_INITIALIZER;
static struct stream {
	uintptr_t key; /* 0: free */
	uint64_t tail; /* when its last work ends */
	int dev;
	int capturing; /* 1 + mode while capturing */
	int invalidated;
	uint64_t captured_ns;
	/* A hold: work queued behind a wait for *wait_word >= wait_value. */
	const uint32_t *wait_word;
	uint32_t wait_value;
	uint64_t wait_since;
	int nheld;
	struct {
		CUevent e; /* an event, or else a kernel of ns */
		uint64_t ns;
	} held[HELD_OPS];
} streams[NSTREAMS];
static int nholds;
static _Atomic uint64_t stuck_holds;
static struct interval {
	uint64_t s, e;
} *iv[MAXDEV];
static size_t niv[MAXDEV];
static int captures; /* streams capturing in global mode */
static _Thread_local int capture_mode; /* this thread's CUstreamCaptureMode */
static _Thread_local int tid_key;
static _Atomic uint64_t violations, captured_events;

static uintptr_t stream_key(CUstream s)
{
	if (s == CU_STREAM_PER_THREAD)
		return 0x1000 + (uintptr_t)&tid_key; /* one per thread */
	return s == NULL || s == CU_STREAM_LEGACY ? 1 : (uintptr_t)s;
}

static struct stream *stream_of(CUstream s)
{
	uintptr_t k = stream_key(s);
	size_t h = (k * 0x9e3779b97f4a7c15ULL) >> 56;
	for (size_t i = 0; i < NSTREAMS; i++) {
		struct stream *st = &streams[(h + i) % NSTREAMS];
		if (st->key == k)
			return st;
		if (st->key == 0) {
			st->key = k;
			st->dev = cur_dev;
			return st;
		}
	}
	return &streams[0];
}

static uint64_t others_tail(int dev)
{
	uint64_t t = 0;
	if (ctr == &local_counters)
		return 0;
	for (int i = 0; i < STUB_PROCS; i++)
		if (ctr->procs[i].pid != 0 && ctr->procs[i].pid != getpid() && ctr->procs[i].tail[dev] > t)
			t = ctr->procs[i].tail[dev];
	return t;
}

static struct stub_proc *my_proc(void)
{
	if (ctr == &local_counters)
		return &ctr->procs[0];
	for (int i = 0; i < STUB_PROCS; i++)
		if (ctr->procs[i].pid == getpid())
			return &ctr->procs[i];
	for (int i = 0; i < STUB_PROCS; i++) {
		int zero = 0;
		if (atomic_compare_exchange_strong(&ctr->procs[i].pid, &zero, getpid()))
			return &ctr->procs[i];
	}
	return &ctr->procs[0];
}

/* A capture in global mode makes "unsafe" calls from threads not in relaxed
 * mode fail and invalidate it, as the driver does. Returns 1 if it did. */
static int unsafe_call(void)
{
	if (captures == 0 || capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED)
		return 0;
	for (size_t i = 0; i < NSTREAMS; i++)
		if (streams[i].capturing == 1 + CU_STREAM_CAPTURE_MODE_GLOBAL)
			streams[i].invalidated = 1;
	violations++;
	return 1;
}

/* Puts a kernel of dur_ns on the stream's timeline, starting no sooner
 * than earliest. Called with gpu_mu held. */
static void place(struct stream *st, uint64_t earliest, uint64_t dur_ns)
{
	uint64_t start = earliest, o = others_tail(st->dev);
	struct stub_proc *p = my_proc();
	if (st->tail > start)
		start = st->tail;
	if (o > start)
		start = o;
	if (serial && p->tail[st->dev] > start)
		start = p->tail[st->dev];
	uint64_t end = start + dur_ns;
	st->tail = end;
	if (p->tail[st->dev] < end)
		p->tail[st->dev] = end;
	int d = st->dev;
	if (iv[d] == NULL)
		iv[d] = malloc(sizeof(struct interval) * MAXIV);
	if (iv[d] != NULL && niv[d] < MAXIV)
		iv[d][niv[d]++] = (struct interval){start, end};
}

/* Lets go of every hold whose word has been written (or that is stuck),
 * laying out the work queued behind it from now. Called with gpu_mu held. */
static void poll_holds(void)
{
	if (nholds == 0)
		return;
	uint64_t now = now_ns();
	for (size_t i = 0; i < NSTREAMS; i++) {
		struct stream *st = &streams[i];
		if (st->wait_word == NULL)
			continue;
		int passed = (int32_t)(__atomic_load_n(st->wait_word, __ATOMIC_ACQUIRE) - st->wait_value) >= 0;
		if (!passed && now - st->wait_since < STUCK_NS)
			continue;
		if (!passed)
			stuck_holds++;
		st->wait_word = NULL;
		nholds--;
		if (st->tail < now)
			st->tail = now;
		/* A kernel right behind an event is dispatched once the event
		 * completed; one behind a kernel overlaps its dispatch with it. */
		int behind_event = 1;
		for (int k = 0; k < st->nheld; k++) {
			if (st->held[k].e != NULL) {
				st->held[k].e->t = st->tail, behind_event = 1;
			} else {
				place(st, behind_event ? st->tail + dispatch_ns : now, st->held[k].ns);
				behind_event = 0;
			}
		}
		st->nheld = 0;
	}
}

static CUresult sync_streams(uintptr_t only);

static CUresult run(const char *name, CUstream s, uint64_t dur_ns)
{
	last = name;
	if (dur_ns == 0)
		return CUDA_SUCCESS;
	if (sync_every != 0 && ++nlaunches % sync_every == 0)
		sync_streams(0);
	if (first_ns != 0 && strcmp(name, "cuMemsetD32Async") != 0) { /* built into the driver: never loaded */
		static uint64_t seen[64];
		static int nseen;
		int found = 0;
		pthread_mutex_lock(&gpu_mu);
		for (int i = 0; i < nseen; i++)
			found |= seen[i] == dur_ns;
		if (!found && nseen < 64)
			seen[nseen++] = dur_ns;
		pthread_mutex_unlock(&gpu_mu);
		if (!found)
			sleep_until(now_ns() + first_ns);
	}
	pthread_mutex_lock(&gpu_mu);
	poll_holds();
	struct stream *st = stream_of(s);
	if (st->capturing) {
		st->captured_ns += dur_ns;
		pthread_mutex_unlock(&gpu_mu);
		return CUDA_SUCCESS;
	}
	if (st->wait_word != NULL) {
		CUresult r = CUDA_ERROR_NOT_SUPPORTED;
		if (st->nheld < HELD_OPS) {
			st->held[st->nheld].e = NULL, st->held[st->nheld].ns = dur_ns;
			st->nheld++, r = CUDA_SUCCESS;
		}
		pthread_mutex_unlock(&gpu_mu);
		return r;
	}
	while (st->tail > now_ns() + QUEUE_NS) {
		uint64_t t = st->tail - QUEUE_NS;
		pthread_mutex_unlock(&gpu_mu);
		sleep_until(t);
		pthread_mutex_lock(&gpu_mu);
	}
	place(st, now_ns() + latency_ns, dur_ns);
	pthread_mutex_unlock(&gpu_mu);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamWaitValue32_v2(CUstream s, CUdeviceptr addr, uint32_t value, unsigned int flags)
{
	if (flags != CU_STREAM_WAIT_VALUE_GEQ || addr == 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&gpu_mu);
	poll_holds();
	struct stream *st = stream_of(s);
	CUresult r = CUDA_SUCCESS;
	if (st->capturing || st->wait_word != NULL) {
		r = CUDA_ERROR_NOT_SUPPORTED; /* one hold at a time is all the stub models */
	} else {
		st->wait_word = (const uint32_t *)(uintptr_t)addr, st->wait_value = value;
		st->wait_since = now_ns(), st->nheld = 0;
		nholds++;
	}
	pthread_mutex_unlock(&gpu_mu);
	return r;
}

EXPORT CUresult cuStreamCreate(CUstream *s, unsigned int flags)
{
	(void)flags;
	*s = calloc(1, 1); /* a distinct key; its slot is never reused */
	return *s ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuStreamDestroy_v2(CUstream s)
{
	(void)s; /* kept: its key must stay distinct while its slot lives */
	return CUDA_SUCCESS;
}
EXPORT CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream s)
{
	if (d == 0)
		return CUDA_ERROR_INVALID_VALUE;
	(void)v, (void)n;
	return run("cuMemsetD32Async", s, memset_ns);
}

EXPORT CUresult cuMemHostAlloc(void **pp, size_t bytes, unsigned int flags)
{
	(void)flags;
	*pp = calloc(1, bytes);
	return *pp ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *d, void *p, unsigned int flags)
{
	(void)flags;
	*d = (CUdeviceptr)(uintptr_t)p;
	return CUDA_SUCCESS;
}
EXPORT CUresult cuMemFreeHost(void *p)
{
	free(p);
	return CUDA_SUCCESS;
}
EXPORT uint64_t stub_stuck_holds(void) { return stuck_holds; }

static int cmp_iv(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;
	return x->s < y->s ? -1 : x->s > y->s;
}

EXPORT uint64_t stub_busy_between(int d, uint64_t t0, uint64_t t1)
{
	pthread_mutex_lock(&gpu_mu);
	uint64_t total = 0, cur_s = 0, cur_e = 0;
	if (iv[d] != NULL) {
		qsort(iv[d], niv[d], sizeof *iv[d], cmp_iv);
		for (size_t i = 0; i <= niv[d]; i++) {
			if (i < niv[d] && iv[d][i].s <= cur_e) {
				if (iv[d][i].e > cur_e)
					cur_e = iv[d][i].e;
				continue;
			}
			uint64_t s = cur_s < t0 ? t0 : cur_s, e = cur_e > t1 ? t1 : cur_e;
			if (e > s)
				total += e - s;
			if (i < niv[d])
				cur_s = iv[d][i].s, cur_e = iv[d][i].e;
		}
	}
	pthread_mutex_unlock(&gpu_mu);
	return total;
}
EXPORT uint64_t stub_busy_ns(int d) { return stub_busy_between(d, 0, UINT64_MAX); }

/* Device d's busy time as disjoint sorted intervals (malloc'd; *n of them).
 * Called with gpu_mu held. */
static struct interval *merged(int d, size_t *n)
{
	*n = 0;
	if (iv[d] == NULL || niv[d] == 0)
		return NULL;
	struct interval *m = malloc(sizeof *m * niv[d]);
	if (m == NULL)
		return NULL;
	qsort(iv[d], niv[d], sizeof *iv[d], cmp_iv);
	for (size_t i = 0; i < niv[d]; i++) {
		if (*n > 0 && iv[d][i].s <= m[*n - 1].e) {
			if (iv[d][i].e > m[*n - 1].e)
				m[*n - 1].e = iv[d][i].e;
		} else {
			m[(*n)++] = iv[d][i];
		}
	}
	return m;
}

/* How long devices a and b were both busy with this process's work in
 * [t0, t1]: a multi-card job's turns taken together. */
EXPORT uint64_t stub_overlap_between(int a, int b, uint64_t t0, uint64_t t1)
{
	pthread_mutex_lock(&gpu_mu);
	size_t na, nb, i = 0, j = 0;
	struct interval *x = merged(a, &na), *y = merged(b, &nb);
	uint64_t total = 0;
	while (i < na && j < nb) {
		uint64_t s = x[i].s > y[j].s ? x[i].s : y[j].s, e = x[i].e < y[j].e ? x[i].e : y[j].e;
		s = s < t0 ? t0 : s, e = e > t1 ? t1 : e;
		if (e > s)
			total += e - s;
		if (x[i].e < y[j].e)
			i++;
		else
			j++;
	}
	free(x);
	free(y);
	pthread_mutex_unlock(&gpu_mu);
	return total;
}
EXPORT uint64_t stub_capture_violations(void) { return violations; }
EXPORT uint64_t stub_captured_events(void) { return captured_events; }

static uint64_t kernel_ns(unsigned gx) { return (gx > 1 ? gx : (uint64_t)kernel_us) * 1000ULL; }

#define KARGS                                                                                                \
	CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned sm, \
		CUstream s
#define UNUSED_KARGS (void)f, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)sm

/* gridDimX > 1 is the kernel's length in microseconds; else STUB_KERNEL_US. */
EXPORT CUresult cuLaunchKernel(KARGS, void **p, void **e)
{
	UNUSED_KARGS, (void)p, (void)e;
	return run("cuLaunchKernel", s, kernel_ns(gx));
}
EXPORT CUresult cuLaunchKernel_ptsz(KARGS, void **p, void **e)
{
	UNUSED_KARGS, (void)p, (void)e;
	return run("cuLaunchKernel_ptsz", s == NULL ? CU_STREAM_PER_THREAD : s, kernel_ns(gx));
}
EXPORT CUresult cuLaunchCooperativeKernel(KARGS, void **p)
{
	UNUSED_KARGS, (void)p;
	return run("cuLaunchCooperativeKernel", s, kernel_ns(gx));
}
EXPORT CUresult cuLaunchCooperativeKernel_ptsz(KARGS, void **p)
{
	UNUSED_KARGS, (void)p;
	return run("cuLaunchCooperativeKernel_ptsz", s == NULL ? CU_STREAM_PER_THREAD : s, kernel_ns(gx));
}
EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **p, void **e)
{
	(void)f, (void)p, (void)e;
	return run("cuLaunchKernelEx", c ? c->hStream : NULL, kernel_ns(c ? c->gridDimX : 1));
}
EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *c, CUfunction f, void **p, void **e)
{
	(void)f, (void)p, (void)e;
	return run("cuLaunchKernelEx_ptsz", c && c->hStream ? c->hStream : CU_STREAM_PER_THREAD,
		   kernel_ns(c ? c->gridDimX : 1));
}

/* A graph is what a capture recorded: its kernels' total time. NULL runs as
 * one kernel of STUB_KERNEL_US. */
struct CUgraph_st {
	uint64_t ns;
};
static uint64_t graph_ns(CUgraphExec g) { return g ? ((struct CUgraph_st *)(void *)g)->ns : kernel_ns(1); }
EXPORT CUresult cuGraphLaunch(CUgraphExec g, CUstream s) { return run("cuGraphLaunch", s, graph_ns(g)); }
EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec g, CUstream s)
{
	return run("cuGraphLaunch_ptsz", s == NULL ? CU_STREAM_PER_THREAD : s, graph_ns(g));
}

static CUresult begin_capture(CUstream s, CUstreamCaptureMode mode)
{
	pthread_mutex_lock(&gpu_mu);
	struct stream *st = stream_of(s);
	CUresult r = CUDA_ERROR_ILLEGAL_STATE;
	if (!st->capturing && stream_key(s) != 1) {
		st->capturing = 1 + (int)mode, st->invalidated = 0, st->captured_ns = 0;
		if (mode == CU_STREAM_CAPTURE_MODE_GLOBAL)
			captures++;
		r = CUDA_SUCCESS;
	}
	pthread_mutex_unlock(&gpu_mu);
	return r;
}
EXPORT CUresult cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode m) { return begin_capture(s, m); }
EXPORT CUresult cuStreamEndCapture(CUstream s, CUgraph *g)
{
	pthread_mutex_lock(&gpu_mu);
	struct stream *st = stream_of(s);
	CUresult r = CUDA_ERROR_ILLEGAL_STATE;
	*g = NULL;
	if (st->capturing) {
		if (st->capturing == 1 + CU_STREAM_CAPTURE_MODE_GLOBAL)
			captures--;
		st->capturing = 0;
		if (st->invalidated) {
			r = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
		} else {
			*g = calloc(1, sizeof **g);
			(*g)->ns = st->captured_ns;
			r = CUDA_SUCCESS;
		}
	}
	pthread_mutex_unlock(&gpu_mu);
	return r;
}
EXPORT CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *status)
{
	pthread_mutex_lock(&gpu_mu);
	struct stream *st = stream_of(s);
	*status = !st->capturing ? CU_STREAM_CAPTURE_STATUS_NONE
		  : st->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
				    : CU_STREAM_CAPTURE_STATUS_ACTIVE;
	pthread_mutex_unlock(&gpu_mu);
	return CUDA_SUCCESS;
}
EXPORT CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
	int old = capture_mode;
	capture_mode = (int)*mode;
	*mode = (CUstreamCaptureMode)old;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuEventCreate(CUevent *e, unsigned int flags)
{
	(void)flags;
	*e = calloc(1, sizeof **e);
	return *e ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuEventRecord(CUevent e, CUstream s)
{
	pthread_mutex_lock(&gpu_mu);
	poll_holds();
	struct stream *st = stream_of(s);
	e->captured = st->capturing != 0;
	if (e->captured)
		captured_events++;
	uint64_t now = now_ns();
	e->t = st->tail > now ? st->tail : now;
	CUresult r = CUDA_SUCCESS;
	if (!e->captured && st->wait_word != NULL) {
		if (st->nheld < HELD_OPS)
			e->t = UINT64_MAX, st->held[st->nheld].e = e, st->nheld++;
		else
			r = CUDA_ERROR_NOT_SUPPORTED;
	}
	pthread_mutex_unlock(&gpu_mu);
	return r;
}
static CUresult event_check(CUevent e)
{
	pthread_mutex_lock(&gpu_mu);
	poll_holds();
	int bad = unsafe_call() || e->captured;
	if (e->captured)
		violations++;
	pthread_mutex_unlock(&gpu_mu);
	return bad ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}
EXPORT CUresult cuEventQuery(CUevent e)
{
	CUresult r = event_check(e);
	if (r != CUDA_SUCCESS)
		return r;
	return now_ns() >= e->t ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}
EXPORT CUresult cuEventSynchronize(CUevent e)
{
	CUresult r = event_check(e);
	while (r == CUDA_SUCCESS && __atomic_load_n(&e->t, __ATOMIC_RELAXED) == UINT64_MAX) {
		sleep_until(now_ns() + 10000);
		pthread_mutex_lock(&gpu_mu);
		poll_holds();
		pthread_mutex_unlock(&gpu_mu);
	}
	if (r == CUDA_SUCCESS)
		sleep_until(e->t);
	return r;
}
EXPORT CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b)
{
	uint64_t now = now_ns();
	if (a->t > now || b->t > now)
		return CUDA_ERROR_NOT_READY;
	*ms = (float)(((double)b->t - (double)a->t) / 1e6);
	return CUDA_SUCCESS;
}
EXPORT CUresult cuEventDestroy_v2(CUevent e)
{
	free(e);
	return CUDA_SUCCESS;
}
static CUresult sync_streams(uintptr_t only)
{
	pthread_mutex_lock(&gpu_mu);
	while (nholds > 0) { /* a synchronisation waits for the holds too */
		poll_holds();
		if (nholds == 0)
			break;
		pthread_mutex_unlock(&gpu_mu);
		sleep_until(now_ns() + 10000);
		pthread_mutex_lock(&gpu_mu);
	}
	int bad = unsafe_call();
	uint64_t t = 0;
	for (size_t i = 0; i < NSTREAMS; i++)
		if (streams[i].key != 0 && (only == 0 || streams[i].key == only) && streams[i].tail > t)
			t = streams[i].tail;
	pthread_mutex_unlock(&gpu_mu);
	if (bad)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	sleep_until(t);
	return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamSynchronize(CUstream s) { return sync_streams(stream_key(s)); }
EXPORT CUresult cuCtxSynchronize(void) { return sync_streams(0); }

/* cuGetProcAddress: the driver's own table of ABI variants. */
static const struct {
	const char *base;
	int version, ptds;
	void *fn;
} procs[] = {
	{"cuGetProcAddress", 12000, 0, (void *)cuGetProcAddress_v2},
	{"cuMemAlloc", 3020, 0, (void *)cuMemAlloc_v2},
	{"cuMemFree", 3020, 0, (void *)cuMemFree_v2},
	{"cuMemGetInfo", 3020, 0, (void *)cuMemGetInfo_v2},
	{"cuDeviceTotalMem", 3020, 0, (void *)cuDeviceTotalMem_v2},
	{"cuMemAllocAsync", 11020, 0, (void *)cuMemAllocAsync},
	{"cuMemAllocAsync", 11020, 1, (void *)cuMemAllocAsync_ptsz},
	{"cuMemFreeAsync", 11020, 0, (void *)cuMemFreeAsync},
	{"cuMemFreeAsync", 11020, 1, (void *)cuMemFreeAsync_ptsz},
	{"cuLaunchKernel", 4000, 0, (void *)cuLaunchKernel},
	{"cuLaunchKernel", 7000, 1, (void *)cuLaunchKernel_ptsz},
	{"cuLaunchKernelEx", 11060, 0, (void *)cuLaunchKernelEx},
	{"cuLaunchKernelEx", 11060, 1, (void *)cuLaunchKernelEx_ptsz},
	{"cuGraphLaunch", 10000, 0, (void *)cuGraphLaunch},
	{"cuGraphLaunch", 10000, 1, (void *)cuGraphLaunch_ptsz},
	{"cuCtxGetDevice", 2000, 0, (void *)cuCtxGetDevice},
	{"cuStreamBeginCapture", 10010, 0, (void *)cuStreamBeginCapture_v2},
	{"cuStreamEndCapture", 10000, 0, (void *)cuStreamEndCapture},
	{"cuStreamSynchronize", 2000, 0, (void *)cuStreamSynchronize},
	{"cuCtxSynchronize", 2000, 0, (void *)cuCtxSynchronize},
	{"cuEventSynchronize", 2000, 0, (void *)cuEventSynchronize},
};

EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int version, cuuint64_t flags,
				    CUdriverProcAddressQueryResult *st)
{
	int ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0, best = -1;
	for (int i = 0; i < (int)(sizeof procs / sizeof procs[0]); i++) {
		if (strcmp(procs[i].base, sym) != 0 || procs[i].version > version || procs[i].ptds > ptds)
			continue;
		if (best < 0 || procs[i].ptds > procs[best].ptds)
			best = i;
	}
	if (st != NULL)
		*st = best < 0 ? CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND : CU_GET_PROC_ADDRESS_SUCCESS;
	*pfn = best < 0 ? NULL : procs[best].fn;
	return best < 0 ? CUDA_ERROR_NOT_FOUND : CUDA_SUCCESS;
}
