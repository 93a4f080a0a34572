/* Compute limit: a token bucket per card, shared by the container's
 * processes, refilled at cores% of wall time and drained by the GPU time the
 * container's own launches take. That time is measured with a pair of
 * events around each batch of launches (a batch: up to ~2 ms of GPU work or
 * 1 ms of launching on one stream), so that the events cost little per
 * launch. A launch waits while the bucket is empty. */
#define _GNU_SOURCE
#include <stdint.h>
#include <time.h>

#include "devices.h"
#include "hooks.h"
#include "shared.h"

#define EXPORT __attribute__((visibility("default")))

#define BATCH_HOST_NS 1000000LL  /* close a batch after 1 ms of launching */
#define BATCH_GPU_NS 2000000LL   /* ... or once it holds ~2 ms of GPU work */
#define BURST_NS 20000000LL      /* a bucket holds at most 20 ms of wall time worth */
#define REFILL_MIN_NS 100000ULL  /* refill at most every 100 us */
#define RING 4                   /* unmeasured batches a thread may have in flight */
#define POOL 16

struct batch {
	CUevent start, end;
	int card;
	uint32_t n;
};

struct tstate {
	CUcontext ctx;
	CUstream stream;
	int card;
	CUevent start; /* open batch, NULL when none */
	uint32_t n;
	uint64_t t0;
	uint64_t per_launch_ns; /* moving average, 0 until measured */
	struct batch ring[RING];
	int head, count;
	CUevent pool[POOL];
	int npool;
};

/* initial-exec: no __tls_get_addr call on the launch path (the library is
 * preloaded, so its TLS is in the static block). */
#define TLS __thread __attribute__((tls_model("initial-exec")))

static TLS struct tstate ts;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void refill(struct mosaic_bucket *b, int cores)
{
	int64_t cap = BURST_NS * cores / 100;
	uint64_t now = now_ns(), last = atomic_load_explicit(&b->last_ns, memory_order_relaxed);
	if (last == 0) {
		if (atomic_compare_exchange_strong(&b->last_ns, &last, now))
			atomic_store(&b->tokens, cap);
		return;
	}
	if (now < last + REFILL_MIN_NS || !atomic_compare_exchange_strong(&b->last_ns, &last, now))
		return;
	int64_t add = (int64_t)((now - last) * (uint64_t)cores / 100);
	int64_t t = atomic_fetch_add(&b->tokens, add) + add;
	if (t > cap)
		atomic_fetch_sub(&b->tokens, t - cap);
}

static CUevent get_event(void)
{
	if (ts.npool > 0)
		return ts.pool[--ts.npool];
	CUevent e = NULL;
	if (CU_REAL(cuEventCreate) == NULL || mosaic_real.cuEventCreate(&e, 0) != CUDA_SUCCESS)
		return NULL;
	return e;
}

static void put_event(CUevent e)
{
	if (e == NULL)
		return;
	if (ts.npool < POOL)
		ts.pool[ts.npool++] = e;
	else
		mosaic_real.cuEventDestroy_v2(e);
}

static void measure(struct batch *b)
{
	float ms = 0;
	__typeof__(mosaic_real.cuEventElapsedTime) elapsed =
		mosaic_real.cuEventElapsedTime_v2 ? mosaic_real.cuEventElapsedTime_v2 : mosaic_real.cuEventElapsedTime;
	if (elapsed != NULL && elapsed(&ms, b->start, b->end) == CUDA_SUCCESS && ms > 0) {
		int64_t ns = (int64_t)((double)ms * 1e6);
		struct mosaic_bucket *bk = mosaic_shm_bucket(b->card);
		if (bk != NULL) {
			atomic_fetch_sub(&bk->tokens, ns);
			atomic_fetch_add(&bk->busy_ns, (uint64_t)ns);
		}
		uint64_t per = (uint64_t)ns / (b->n ? b->n : 1);
		ts.per_launch_ns = ts.per_launch_ns ? (3 * ts.per_launch_ns + per) / 4 : per;
	}
	put_event(b->start);
	put_event(b->end);
}

/* Measures the finished batches, oldest first; with wait, blocks until at
 * least the oldest has finished. */
static void drain(int wait)
{
	while (ts.count > 0) {
		struct batch *b = &ts.ring[ts.head];
		CUresult q;
		while ((q = mosaic_real.cuEventQuery(b->end)) == CUDA_ERROR_NOT_READY && wait) {
			struct timespec d = {0, 50000};
			nanosleep(&d, NULL);
		}
		if (q == CUDA_ERROR_NOT_READY)
			return;
		wait = 0;
		if (q == CUDA_SUCCESS)
			measure(b);
		ts.head = (ts.head + 1) % RING;
		ts.count--;
	}
}

static void close_batch(void)
{
	CUevent end = get_event();
	if (end != NULL && mosaic_real.cuEventRecord(end, ts.stream) == CUDA_SUCCESS) {
		if (ts.count == RING)
			drain(1);
		ts.ring[(ts.head + ts.count) % RING] = (struct batch){ts.start, end, ts.card, ts.n};
		ts.count++;
	} else {
		put_event(end);
		put_event(ts.start);
	}
	ts.start = NULL;
	ts.n = 0;
	drain(0);
}

/* Refills only when the bucket looks empty: the refill is computed from the
 * time since the last one, so a lazy refill credits the same tokens and the
 * common case costs one atomic load. */
static void gate(struct mosaic_bucket *b, int cores)
{
	if (atomic_load_explicit(&b->tokens, memory_order_relaxed) > 0)
		return;
	for (;;) {
		refill(b, cores);
		int64_t t = atomic_load(&b->tokens);
		if (t > 0)
			return;
		drain(0);
		/* Sleep about as long as the refill needs, in slices short enough
		 * to follow the container's other processes. */
		int64_t ns = (-t + 1) * 100 / cores;
		if (ns < 20000)
			ns = 20000;
		if (ns > 5000000)
			ns = 5000000;
		struct timespec d = {0, ns};
		nanosleep(&d, NULL);
	}
}

/* Before a launch on stream: returns 1 when this launch is rate limited
 * (then after_launch must follow). */
static int before_launch(CUstream stream, int ptds)
{
	/* The current context's limits, cached per thread: one driver call
	 * (cuCtxGetCurrent) per launch instead of two. */
	static TLS CUcontext cached_ctx;
	static TLS const struct mosaic_dev *cached_dev;
	CUcontext ctx = NULL;
	if (CU_REAL(cuCtxGetCurrent) == NULL || mosaic_real.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx == NULL)
		return 0;
	const struct mosaic_dev *d = cached_dev;
	if (ctx != cached_ctx) {
		CUdevice dev;
		d = cached_dev = mosaic_current_dev(&dev);
		cached_ctx = ctx;
	}
	if (d == NULL || d->cores == 0)
		return 0;
	struct mosaic_bucket *b = mosaic_shm_bucket(d->card);
	if (b == NULL || CU_REAL(cuEventRecord) == NULL || CU_REAL(cuEventQuery) == NULL)
		return 0;
	/* The events must go where the kernel goes: a null stream of a _ptsz
	 * call is the thread's own stream. */
	if (ptds && stream == NULL)
		stream = CU_STREAM_PER_THREAD;
	gate(b, d->cores);
	if (ts.start != NULL && (ts.ctx != ctx || ts.stream != stream || ts.card != d->card))
		close_batch();
	if (ts.ctx != ctx) {
		drain(1);
		while (ts.npool > 0) /* events belong to their context */
			mosaic_real.cuEventDestroy_v2(ts.pool[--ts.npool]);
		ts.ctx = ctx;
		ts.per_launch_ns = 0;
	}
	if (ts.start == NULL) {
		ts.start = get_event();
		if (ts.start == NULL || mosaic_real.cuEventRecord(ts.start, stream) != CUDA_SUCCESS) {
			put_event(ts.start);
			ts.start = NULL;
			return 0;
		}
		ts.stream = stream;
		ts.card = d->card;
		ts.t0 = now_ns();
	}
	return 1;
}

static void after_launch(void)
{
	uint64_t max_n = ts.per_launch_ns ? BATCH_GPU_NS / ts.per_launch_ns : 16;
	if (max_n < 1)
		max_n = 1;
	/* The clock is read every 8th launch only. */
	if (++ts.n >= max_n || ((ts.n & 7) == 0 && now_ns() - ts.t0 >= BATCH_HOST_NS))
		close_batch();
}

#define LAUNCH(name, stream, ptds, ...)                                                                      \
	do {                                                                                                 \
		__typeof__(&name) real = CU_REAL(name);                                                      \
		if (real == NULL)                                                                            \
			return CUDA_ERROR_NOT_INITIALIZED;                                                   \
		if (__builtin_expect(__atomic_load_n(&mosaic_rate_skip, __ATOMIC_RELAXED), 1))               \
			return real(__VA_ARGS__);                                                            \
		int limited = before_launch((stream), (ptds));                                               \
		CUresult r = real(__VA_ARGS__);                                                              \
		if (limited)                                                                                 \
			after_launch();                                                                      \
		return r;                                                                                    \
	} while (0)

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
			       unsigned int by, unsigned int bz, unsigned int shmem, CUstream s, void **params,
			       void **extra)
{
	LAUNCH(cuLaunchKernel, s, 0, f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);
}

EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
				    unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem, CUstream s,
				    void **params, void **extra)
{
	LAUNCH(cuLaunchKernel_ptsz, s, 1, f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);
}

EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	LAUNCH(cuLaunchKernelEx, config ? config->hStream : NULL, 0, config, f, params, extra);
}

EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	LAUNCH(cuLaunchKernelEx_ptsz, config ? config->hStream : NULL, 1, config, f, params, extra);
}

EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
					  unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
					  CUstream s, void **params)
{
	LAUNCH(cuLaunchCooperativeKernel, s, 0, f, gx, gy, gz, bx, by, bz, shmem, s, params);
}

EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
					       unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
					       CUstream s, void **params)
{
	LAUNCH(cuLaunchCooperativeKernel_ptsz, s, 1, f, gx, gy, gz, bx, by, bz, shmem, s, params);
}

EXPORT CUresult cuGraphLaunch(CUgraphExec g, CUstream s) { LAUNCH(cuGraphLaunch, s, 0, g, s); }

EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec g, CUstream s) { LAUNCH(cuGraphLaunch_ptsz, s, 1, g, s); }
