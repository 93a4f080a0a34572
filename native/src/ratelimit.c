/* Compute limit: launches are gated by the card's time lease (lease.c), and
 * the GPU time the container's work took is measured after the fact and
 * charged to it.
 *
 * Measuring: each process keeps, per card, an open slice of work: a start
 * event on every stream it launched on since the slice opened, closed by an
 * end event on each (after ~2 ms of predicted GPU work or 1 ms of
 * launching, before a synchronisation, before handing the lease over). A
 * closed slice is read when its events have completed, on one timeline per
 * context: overlapping streams are charged once (the union of their busy
 * intervals), the gaps between slices (host work, waits, throttling) never.
 * Within a slice, a host-bound loop leaves the GPU idle between kernels:
 * launches are timed alone now and then (each kernel and grid size, each
 * graph, apart: a table of their durations), and a one-stream batch is
 * charged no more than the durations of its launches, so those gaps are
 * not charged either. On an idle card a start event completes as soon as
 * it is recorded, several microseconds before the kernel behind it is even
 * queued (7 us on an H200: more than a small kernel runs), so a timed
 * launch's start event can be held back by a stream wait on a host-mapped
 * word until the launch is queued; its timing is then the kernel's own
 * but for a constant dispatch time, measured per context and taken off
 * (calibrate_hold). MOSAIC_TIMING_HOLD=0 turns holds off; hold_start says
 * why they are guarded. The same durations pace a force container: a
 * launch waits until the budget covers it, so step times stay even.
 *
 * Capture: while any stream of the process captures a graph, launches pass
 * straight through and no event is recorded or queried anywhere, since
 * either would invalidate a global-mode capture. A graph is charged where it
 * runs, at cuGraphLaunch, like a kernel. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "devices.h"
#include "hooks.h"
#include "lease.h"
#include "log.h"
#include "shared.h"

#define EXPORT __attribute__((visibility("default")))

#define SLICE_HOST_NS 1000000ULL  /* close a slice after 1 ms of launching */
#define SLICE_GPU_NS 2000000ULL   /* ... or once it holds ~2 ms of predicted GPU work */
#define LATE_NS 100000ULL         /* an end event recorded this long after the last launch is late */
#define REBASE_NS 1000000000ULL   /* a new reference event every second keeps float ms exact */
#define DRAIN_HOLD_NS 5000000ULL  /* a draining holder keeps its lease this far ahead */
#define SLEEP_MIN_NS 100000ULL    /* nanosleep rarely returns sooner than ~60 us */
#define MAX_OPEN 16               /* streams in one slice */
#define RING 64                   /* closed, unread batches */
#define POOL 64
#define STALL_NS 200000ULL /* a launch call this long stalled on the host (lazy loading) */
#define IDLE_START_NS 10000ULL /* an idle card completes a start event this much early, at most (7 us on an H200) */
#define OVERLAP_SAMPLE_NS 20000000ULL /* learn the overlap of streams over 20 ms of their work */
#define HELD_EXTRA_MAX_NS 3000ULL /* a calibration reading more was disturbed (1.4 us on an H200) */
#define CAL_DONE 4 /* calibration attempts per context */
#define ALIGN_CHECK_NS 1000000ULL /* a holder looks for aligned waiters this often */

#define UNKNOWN UINT64_MAX

#define KINDS 512 /* launch kinds remembered per card */
#define WAITERS 16 /* threads waiting for a force budget, served oldest first */
#define WAITER_FRESH_NS 10000000ULL /* a waiter that stopped looking for 10 ms is gone */
#define YIELD_NS 50000ULL

struct batch {
	CUevent start, end;
	uint32_t n;
	uint64_t pred; /* predicted GPU time, ns */
	uint64_t est;  /* its launches' measured durations, ns; UNKNOWN */
	uint64_t kind; /* sample: the launch kind timed alone */
	uint64_t stall; /* host time its first launch call took, when that call stalled */
	uint8_t sample, streams; /* one launch timed alone; streams in its slice */
	uint8_t late; /* its end event was recorded well after its last launch */
	uint8_t held; /* its start event waited for its launch (hold_start) */
};

/* How long one kind of launch (a kernel with a grid size, a graph) runs. */
struct kind {
	uint64_t key;
	uint64_t ns;
	uint64_t used; /* when last timed: the least recent is replaced */
	uint64_t recent[3]; /* the last timings: ns is their median */
	uint32_t nrecent;
};

struct card {
	pthread_mutex_t mu;
	int joined; /* 0: not yet, 1: in a region, -1: cannot be limited */
	struct mosaic_lease lease;
	CUcontext ctx;
	int holding, draining, inlaunch;
	uint64_t lease_end;
	uint64_t align_check; /* next look for a waiter running on its other cards */
	/* The open slice. */
	struct {
		CUstream stream;
		CUevent start;
		uint32_t n;
		uint64_t est; /* UNKNOWN once a launch had no estimate */
		uint64_t kind;
		uint64_t stall; /* see struct batch */
		uint8_t sample, held; /* held: its start waits for its launch (hold_start) */
		uint8_t idle; /* nothing of this context was in flight when it opened */
	} open[MAX_OPEN];
	int nopen;
	uint32_t slice_n;
	uint64_t slice_t0;
	/* Closed batches, oldest first. */
	struct batch ring[RING];
	int head, count;
	/* The context's timeline: ref is a completed event at ref_off ns;
	 * everything up to watermark has been charged. */
	CUevent ref;
	int64_t ref_off, watermark;
	uint64_t ref_host;
	uint64_t per_launch_ns; /* a batch's charge per launch, moving average */
	/* How much streams of one slice overlap: their union over the sum of
	 * their launches' durations, in 1/1024. Kernels that each fill the card
	 * run one after another (1024); small ones side by side. Learned from
	 * the slices of several streams, so that the work in flight is
	 * predicted as it will be charged. */
	uint64_t overlap, ov_est, ov_got;
	struct kind kinds[KINDS];
	uint64_t mean_ns, clock; /* mean of all timed launches; the table's clock */
	uint64_t pred_ns; /* predicted GPU time of the closed, unread batches */
	uint64_t open_ns; /* ... and of the launches in the open slice */
	uint64_t last_collect, rng;
	uint64_t last_exit; /* when the last launch call returned */
	CUevent pool[POOL];
	int npool;
	/* A host-mapped word that a timed launch's stream waits on (hold_start). */
	uint32_t *hold;
	CUdeviceptr hold_dev;
	_Atomic uint32_t hold_seq; /* the last value a stream waits for */
	int hold_state; /* 0: not set up in this context, 1: ready, -1: unavailable */
	int hold_allocs; /* set up in this many contexts: bounded, they are never freed */
	uint32_t watch_mark; /* watchdog: a value still awaited at its last look */
	int watch_marked;
	uint64_t hold_stalls; /* holds the watchdog had to let go (statistics) */
	/* What a held start adds to a kernel's own time (calibrate_hold). */
	uint64_t held_extra;
	int calibrations; /* attempts so far; CAL_DONE once measured */
	_Atomic uint64_t cal_since; /* a calibration's hold taken then; 0: none */
	/* Threads waiting for the budget: when it covers a launch, the one that
	 * has waited longest goes first. Without an order, whichever woke first
	 * won, and one thread of four on their own streams took 1.7-4 times its
	 * median step now and then. */
	struct {
		uint64_t since, seen;
	} waiters[WAITERS];
};

static struct card cards[MOSAIC_MAX_CARDS];
static pthread_once_t cards_once = PTHREAD_ONCE_INIT;
static _Atomic int capturing;

/* initial-exec: no __tls_get_addr call on the launch path (the library is
 * preloaded, so its TLS is in the static block). */
#define TLS __thread __attribute__((tls_model("initial-exec")))

/* When this thread's launch call in progress began (after its gate). */
static TLS uint64_t launch_t0;

/* The hold this thread's launch in progress must release. */
static TLS uint32_t *held_word;
static TLS uint32_t held_seq;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec d = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
	nanosleep(&d, NULL);
}

static _Atomic int watchdog_started;

static void reset_cards(void)
{
	atomic_store(&watchdog_started, 0); /* a forked child has no watchdog thread */
	memset(cards, 0, sizeof cards);
	for (int i = 0; i < MOSAIC_MAX_CARDS; i++) {
		pthread_mutex_init(&cards[i].mu, NULL);
		cards[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
	}
}

/* The child of a fork owns no events or leases of its parent's. */
static void init_cards(void)
{
	reset_cards();
	pthread_atfork(NULL, NULL, reset_cards);
}

static CUevent get_event(struct card *c)
{
	if (c->npool > 0)
		return c->pool[--c->npool];
	CUevent e = NULL;
	if (CU_REAL(cuEventCreate) == NULL || mosaic_real.cuEventCreate(&e, 0) != CUDA_SUCCESS)
		return NULL;
	return e;
}

static void put_event(struct card *c, CUevent e)
{
	if (e == NULL)
		return;
	if (c->npool < POOL)
		c->pool[c->npool++] = e;
	else
		mosaic_real.cuEventDestroy_v2(e);
}

/* An event query from this thread must not invalidate a capture another
 * thread began meanwhile in global mode: relaxed mode makes it safe. */
static CUresult query(CUevent e)
{
	if (!atomic_load_explicit(&capturing, memory_order_relaxed) || CU_REAL(cuThreadExchangeStreamCaptureMode) == NULL)
		return mosaic_real.cuEventQuery(e);
	CUstreamCaptureMode m = CU_STREAM_CAPTURE_MODE_RELAXED;
	mosaic_real.cuThreadExchangeStreamCaptureMode(&m);
	CUresult r = mosaic_real.cuEventQuery(e);
	mosaic_real.cuThreadExchangeStreamCaptureMode(&m);
	return r;
}

static int elapsed_ns(CUevent a, CUevent b, int64_t *ns)
{
	float ms = 0;
	__typeof__(mosaic_real.cuEventElapsedTime) f =
		mosaic_real.cuEventElapsedTime_v2 ? mosaic_real.cuEventElapsedTime_v2 : mosaic_real.cuEventElapsedTime;
	if (f == NULL || f(&ms, a, b) != CUDA_SUCCESS)
		return -1;
	*ns = (int64_t)((double)ms * 1e6);
	return 0;
}

/* The kinds table is 4-way set associative: the few dozen kinds of a
 * training step must not evict each other. */
#define WAYS 4

static struct kind *kind_set(struct card *c, uint64_t key)
{
	return &c->kinds[((key ^ (key >> 29)) % (KINDS / WAYS)) * WAYS];
}

/* Measured duration of this kind of launch; else the mean of all timed
 * launches; 0 when nothing was timed yet. */
static uint64_t duration(struct card *c, uint64_t key)
{
	struct kind *k = kind_set(c, key);
	for (int i = 0; i < WAYS; i++)
		if (k[i].key == key)
			return k[i].ns;
	return c->mean_ns;
}

static int known(struct card *c, uint64_t key)
{
	struct kind *k = kind_set(c, key);
	for (int i = 0; i < WAYS; i++)
		if (k[i].key == key)
			return 1;
	return 0;
}

static uint64_t median3(const uint64_t *v, uint32_t n)
{
	if (n < 3)
		return n == 1 ? v[0] : (v[0] + v[1]) / 2;
	uint64_t a = v[0], b = v[1], x = v[2];
	return a > b ? (b > x ? b : (a > x ? x : a)) : (a > x ? a : (b > x ? x : b));
}

/* A kind's duration is the median of its last three timings: it follows the
 * clock both ways (kernels run longer on a hot card: an estimate that only
 * went down fast undercharged a matmul loop at force 90 by 4 pp) and one
 * timing disturbed by the host or a neighbour does not move it. */
static void learn(struct card *c, uint64_t key, uint64_t ns)
{
	struct kind *k = kind_set(c, key), *victim = &k[0];
	c->mean_ns = c->mean_ns ? (7 * c->mean_ns + ns) / 8 : ns;
	for (int i = 0; i < WAYS; i++) {
		if (k[i].key == key) {
			k[i].recent[k[i].nrecent % 3] = ns;
			k[i].nrecent++;
			k[i].ns = median3(k[i].recent, k[i].nrecent < 3 ? k[i].nrecent : 3);
			k[i].used = ++c->clock;
			return;
		}
		if (k[i].used < victim->used)
			victim = &k[i];
	}
	*victim = (struct kind){.key = key, .ns = ns, .used = ++c->clock, .recent = {ns}, .nrecent = 1};
}

static void *watchdog(void *arg);
static int advance(uint32_t *w, uint32_t seq);

/* One held run on the calibration stream: n 4-byte memsets (small kernels
 * the driver has built in) between two events, all queued behind a hold,
 * so that they run back to back once let go. 1: measured; 0: not; -1: a
 * call blocked behind the hold until the watchdog let it go (mu is held
 * here, so the watchdog does that through cal_since): never again. */
static int held_run(struct card *c, CUstream s, int n, int64_t *ns)
{
	CUevent a = get_event(c), b = get_event(c);
	uint32_t seq = atomic_load(&c->hold_seq) + 1;
	atomic_store(&c->cal_since, now_ns());
	int ok = a != NULL && b != NULL &&
		 mosaic_real.cuStreamWaitValue32_v2(s, c->hold_dev, seq, CU_STREAM_WAIT_VALUE_GEQ) == CUDA_SUCCESS;
	if (ok) {
		atomic_store(&c->hold_seq, seq);
		ok = mosaic_real.cuEventRecord(a, s) == CUDA_SUCCESS;
		for (int i = 0; ok && i < n; i++)
			ok = mosaic_real.cuMemsetD32Async(c->hold_dev + 16, 0, 1, s) == CUDA_SUCCESS;
		ok = ok && mosaic_real.cuEventRecord(b, s) == CUDA_SUCCESS;
		if (!advance(c->hold, seq))
			ok = -1;
		atomic_store(&c->cal_since, 0);
		if (ok == 1)
			ok = mosaic_real.cuEventSynchronize(b) == CUDA_SUCCESS && elapsed_ns(a, b, ns) == 0;
	}
	atomic_store(&c->cal_since, 0);
	put_event(c, a);
	put_event(c, b);
	return ok;
}

/* A held timing is not quite the kernel's own: its start event completes
 * when the wait lets go, and the kernel behind it starts once dispatched,
 * a constant later (1.4 us on an H200, whatever the kernel's length). On a
 * host-bound loop of 5-30 us kernels that constant overcharged the
 * training loop by a fifth. Measured once per context while it has
 * nothing in flight: one held kernel reads extra + t, 32 back to back
 * read extra + 32 t. The least of a few runs is taken (others' work only
 * lengthens a reading); a reading above HELD_EXTRA_MAX_NS was disturbed
 * and is tried again later. Called with mu held. */
static void calibrate_hold(struct card *c)
{
	enum { RUNS = 5, MANY = 32 };
	CUstream s = NULL;
	c->calibrations++;
	if (CU_REAL(cuStreamCreate) == NULL || CU_REAL(cuMemsetD32Async) == NULL ||
	    CU_REAL(cuEventSynchronize) == NULL || mosaic_real.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS) {
		c->calibrations = CAL_DONE;
		return;
	}
	int64_t one = INT64_MAX, many = INT64_MAX, v;
	int r1 = 1, r2 = 1;
	for (int r = 0; r < RUNS && r1 >= 0 && r2 >= 0; r++) {
		if ((r1 = held_run(c, s, 1, &v)) == 1 && v < one)
			one = v;
		if (r < 3 && r1 >= 0 && (r2 = held_run(c, s, MANY, &v)) == 1 && v < many)
			many = v;
	}
	if (CU_REAL(cuStreamDestroy_v2) != NULL)
		mosaic_real.cuStreamDestroy_v2(s);
	if (r1 < 0 || r2 < 0) {
		c->calibrations = CAL_DONE;
		mosaic_log(MOSAIC_LOG_INFO, "held timings: calibration blocked behind its hold; not taken off");
		return;
	}
	if (one == INT64_MAX || many == INT64_MAX || many <= one)
		return;
	int64_t extra = one - (many - one) / (MANY - 1);
	if (extra > (int64_t)HELD_EXTRA_MAX_NS)
		return;
	c->held_extra = extra > 0 ? (uint64_t)extra : 0;
	c->calibrations = CAL_DONE;
	mosaic_log(MOSAIC_LOG_INFO, "held timings: a held start adds %llu ns (one %lld ns, %d back to back %lld ns)",
		   (unsigned long long)c->held_extra, (long long)one, MANY, (long long)many);
}

/* Holds a timed launch's start event until the launch is queued: the
 * stream waits for the word to reach a new value, which the launching
 * thread writes once the launch call returns (release_hold). Where the
 * driver cannot (no stream memory operations, no mapped host memory) the
 * timing goes unheld. Called with mu held, before the start event.
 *
 * A launch call that waits for the card to go idle would wait for its own
 * held stream forever. Lazy module loading can (the first launch of a
 * kernel), so only kinds launched before are held, and a watchdog thread
 * lets go of any hold older than a few milliseconds. */
static void hold_start(struct card *c, CUstream stream)
{
	static int enabled = -1;
	if (enabled < 0) {
		const char *e = getenv("MOSAIC_TIMING_HOLD");
		enabled = e == NULL || e[0] != '0';
	}
	if (!enabled)
		return;
	if (!atomic_exchange(&watchdog_started, 1)) {
		pthread_attr_t a;
		pthread_t t;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, watchdog, NULL) != 0)
			enabled = 0; /* no watchdog, no holds */
		pthread_attr_destroy(&a);
		if (!enabled)
			return;
	}
	if (c->hold_state == 0) {
		c->hold_state = -1;
		void *p = NULL;
		CUdeviceptr dp = 0;
		if (c->hold_allocs < 8 && CU_REAL(cuMemHostAlloc) != NULL && CU_REAL(cuMemHostGetDevicePointer_v2) != NULL &&
		    CU_REAL(cuStreamWaitValue32_v2) != NULL &&
		    mosaic_real.cuMemHostAlloc(&p, 64, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP) == CUDA_SUCCESS) {
			c->hold_allocs++;
			if (mosaic_real.cuMemHostGetDevicePointer_v2(&dp, p, 0) == CUDA_SUCCESS) {
				c->hold = p, c->hold_dev = dp, c->hold_state = 1;
				__atomic_store_n(c->hold, c->hold_seq, __ATOMIC_RELEASE);
			} else if (CU_REAL(cuMemFreeHost) != NULL) {
				mosaic_real.cuMemFreeHost(p);
			}
		}
	}
	if (c->hold_state != 1)
		return;
	if (c->calibrations < CAL_DONE && c->count == 0 && c->nopen == 0 && c->inlaunch == 0)
		calibrate_hold(c);
	uint32_t seq = atomic_load(&c->hold_seq) + 1;
	if (mosaic_real.cuStreamWaitValue32_v2(stream, c->hold_dev, seq, CU_STREAM_WAIT_VALUE_GEQ) != CUDA_SUCCESS) {
		c->hold_state = -1;
		return;
	}
	atomic_store(&c->hold_seq, seq);
	held_word = c->hold, held_seq = seq;
}

/* Moves the word forward to seq (cyclically, as the wait compares); 1 when
 * this call moved it, 0 when it was there already. */
static int advance(uint32_t *w, uint32_t seq)
{
	uint32_t cur = __atomic_load_n(w, __ATOMIC_RELAXED);
	while ((int32_t)(seq - cur) > 0)
		if (__atomic_compare_exchange_n(w, &cur, seq, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			return 1;
	return 0;
}

/* Every 2 ms: a value awaited at the last look and still not written
 * belongs to a launch call that blocks; write it, so the stream (and the
 * call) go on. Holds of the last 2 ms are left alone. */
static void *watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		sleep_ns(2000000);
		for (int i = 0; i < MOSAIC_MAX_CARDS; i++) {
			struct card *c = &cards[i];
			uint64_t since = atomic_load(&c->cal_since);
			if (since != 0 && now_ns() - since > 2000000)
				advance(c->hold, atomic_load(&c->hold_seq));
			if (pthread_mutex_trylock(&c->mu) != 0)
				continue;
			if (c->hold_state == 1) {
				if (c->watch_marked && advance(c->hold, c->watch_mark))
					c->hold_stalls++;
				uint32_t issued = atomic_load(&c->hold_seq);
				c->watch_marked = (int32_t)(issued - __atomic_load_n(c->hold, __ATOMIC_ACQUIRE)) > 0;
				c->watch_mark = issued;
			} else {
				c->watch_marked = 0;
			}
			pthread_mutex_unlock(&c->mu);
		}
	}
	return NULL;
}

/* Lets the held stream go. Holds of several threads are released in any
 * order, so the word only moves forward: each wait is passed once its own
 * value, or a later one, is written. Returns 1 when this thread let its
 * stream go; 0 when the watchdog or a later hold did, before the launch may
 * have been queued: that timing is not the kernel's own. */
static int release_hold(void)
{
	uint32_t *w = held_word;
	if (w == NULL)
		return 0;
	held_word = NULL;
	return advance(w, held_seq);
}

/* Charges the part of [start, end] not yet charged on the timeline. */
static void measure(struct card *c, struct batch *b, uint64_t now)
{
	int64_t s, e;
	if (c->ref == NULL) {
		c->ref = b->start, c->ref_off = 0, c->ref_host = now;
		c->watermark = 0;
		b->start = NULL;
		s = 0;
	} else if (elapsed_ns(c->ref, b->start, &s) != 0) {
		goto out;
	} else {
		s += c->ref_off;
	}
	if (elapsed_ns(b->start ? b->start : c->ref, b->end, &e) != 0)
		goto out;
	e += s;
	/* The first launch call of a batch that stalled on the host (a kernel's
	 * module loaded lazily: tens of ms at a workload's start) kept the
	 * stream idle after its start event completed: not GPU time, and not
	 * the kernel's own duration. */
	if (b->stall > 0)
		s = e - s > (int64_t)b->stall ? s + (int64_t)b->stall : e, b->sample = 0;
	/* A held start completes as its kernel is dispatched, a constant
	 * before the kernel runs (calibrate_hold): not the kernel's time. */
	if (b->held && b->stall == 0)
		s = e - s > (int64_t)c->held_extra ? s + (int64_t)c->held_extra : e;
	/* A kernel too short for the events' resolution is known all the
	 * same (1 ns): a kind without a duration ends its slice at once. */
	if (b->sample && b->n == 1 && e >= s)
		learn(c, b->kind, e > s ? (uint64_t)(e - s) : 1);
	int64_t from = s > c->watermark ? s : c->watermark;
	if (e > from) {
		uint64_t ns = (uint64_t)(e - from);
		/* One stream: host gaps between its kernels are not its GPU
		 * time, so it is charged no more than its launches' durations.
		 * A single launch whose end was recorded right after it has no
		 * gaps: only an idle card's early start separates its events,
		 * and the durations lag a card that slows as it heats (95 %
		 * busy charged as 88 at force 90). */
		if (!b->sample && b->streams == 1 && b->est != UNKNOWN && b->est < ns) {
			uint64_t least = b->n == 1 && !b->late && ns > IDLE_START_NS ? ns - IDLE_START_NS : 0;
			ns = b->est > least ? b->est : least;
		}
		if (b->streams > 1 && b->est != UNKNOWN)
			c->ov_got += ns;
		if (c->joined == 1)
			mosaic_lease_charge(&c->lease, ns, now);
		uint64_t per = ns / (b->n ? b->n : 1);
		c->per_launch_ns = c->per_launch_ns ? (3 * c->per_launch_ns + per) / 4 : per;
	}
	if (b->streams > 1 && b->est != UNKNOWN) {
		c->ov_est += b->est;
		if (c->ov_est >= OVERLAP_SAMPLE_NS) {
			uint64_t r = (c->ov_got << 10) / c->ov_est;
			r = r > 1024 ? 1024 : r < 1024 / MAX_OPEN ? 1024 / MAX_OPEN : r;
			c->overlap = (3 * c->overlap + r) / 4;
			c->ov_est = c->ov_got = 0;
		}
	}
	if (e > c->watermark)
		c->watermark = e;
	if (b->start != NULL && now - c->ref_host > REBASE_NS) {
		put_event(c, c->ref);
		c->ref = b->start, c->ref_off = s, c->ref_host = now;
		b->start = NULL;
	}
out:
	put_event(c, b->start);
	put_event(c, b->end);
}

/* Reads the completed batches, oldest first, waiting while more than keep
 * are left (keep < 0: never wait). Other threads hold off while it waits. */
static void collect(struct card *c, int keep)
{
	while (c->count > 0) {
		struct batch *b = &c->ring[c->head];
		CUresult q = query(b->end);
		if (q == CUDA_ERROR_NOT_READY) {
			if (keep < 0 || c->count <= keep)
				return;
			int was = c->draining;
			c->draining = 1;
			if (c->holding)
				mosaic_lease_extend(&c->lease, now_ns(), DRAIN_HOLD_NS);
			pthread_mutex_unlock(&c->mu);
			sleep_ns(20000);
			pthread_mutex_lock(&c->mu);
			c->draining = was;
			continue;
		}
		if (q == CUDA_SUCCESS)
			measure(c, b, now_ns());
		else
			put_event(c, b->start), put_event(c, b->end);
		c->pred_ns -= c->pred_ns < b->pred ? c->pred_ns : b->pred;
		c->head = (c->head + 1) % RING;
		c->count--;
	}
}

/* Records the end of the open slice on each of its streams. */
static void close_slice(struct card *c)
{
	/* On an idle stream an end event completes when it is recorded: one
	 * recorded late (before a wait, at the next launch) spans host time. */
	uint8_t late = now_ns() - c->last_exit > LATE_NS;
	for (int i = 0; i < c->nopen; i++) {
		CUevent end = get_event(c);
		if (end == NULL || mosaic_real.cuEventRecord(end, c->open[i].stream) != CUDA_SUCCESS) {
			put_event(c, end);
			put_event(c, c->open[i].start);
			continue;
		}
		if (c->count == RING)
			collect(c, RING - 1);
		uint32_t n = c->open[i].n;
		/* Streams of one slice overlap: predict their union. */
		uint64_t est = c->open[i].est;
		uint64_t pred = est != UNKNOWN ? est : (uint64_t)n * c->per_launch_ns;
		if (c->nopen > 1)
			pred = pred * c->overlap >> 10;
		c->ring[(c->head + c->count) % RING] = (struct batch){
			.start = c->open[i].start, .end = end, .n = n, .pred = pred, .est = est,
			.kind = c->open[i].kind, .stall = c->open[i].stall, .sample = c->open[i].sample,
			.streams = (uint8_t)c->nopen, .late = late, .held = c->open[i].held};
		c->count++;
		c->pred_ns += pred;
	}
	c->nopen = 0;
	c->slice_n = 0;
	c->open_ns = 0;
}

/* Waits for every launch in flight on the host and every batch on the GPU,
 * charges them, and hands the lease back. Called with mu held. */
static void drain_and_release(struct card *c)
{
	c->draining = 1;
	while (c->inlaunch > 0) {
		pthread_mutex_unlock(&c->mu);
		sleep_ns(10000);
		pthread_mutex_lock(&c->mu);
	}
	close_slice(c);
	collect(c, 0);
	if (c->holding)
		mosaic_lease_release(&c->lease, now_ns());
	c->holding = 0;
	c->draining = 0;
}

/* The node's regions of this container's cards, looked at to align its
 * turns across them (mosaic_lease_set_sibling): mapped once each, apart
 * from any card's own membership. */
static struct {
	pthread_mutex_t mu;
	int state; /* 0: not looked for, 1: mapped, -1: none */
	int n;     /* the container's cards that take turns with a share */
	struct mosaic_region *r[MOSAIC_MAX_CARDS];
	uint64_t key;
} sib = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void sib_map(void)
{
	pthread_mutex_lock(&sib.mu);
	if (sib.state == 0) {
		sib.key = mosaic_shm_tenant_key();
		for (int i = 0; i < mosaic_dev_count(); i++) {
			const struct mosaic_dev *d = mosaic_dev_timed(i);
			char path[512];
			if (d == NULL || d->cores == 0 || d->card < 0 || d->card >= MOSAIC_MAX_CARDS)
				continue;
			sib.n++;
			if (d->uuid[0] != '\0' && mosaic_card_region_path(d->uuid, path, sizeof path) == 0)
				sib.r[d->card] = mosaic_region_peek(path);
		}
		sib.state = sib.n > 1 && sib.key != 0 ? 1 : -1;
	}
	pthread_mutex_unlock(&sib.mu);
}

/* Until when this container holds the lease of another of its cards; 0:
 * none (or a single card: nothing to align). */
static uint64_t sibling_until(const struct card *c, uint64_t now)
{
	if (sib.state == 0)
		sib_map();
	if (sib.state != 1)
		return 0;
	uint64_t until = 0;
	for (int i = 0; i < MOSAIC_MAX_CARDS; i++) {
		if (sib.r[i] == NULL || &cards[i] == c)
			continue;
		uint64_t e = mosaic_region_held_by(sib.r[i], sib.key, now);
		until = e > until ? e : until;
	}
	return until;
}

static void join(struct card *c, const struct mosaic_dev *d)
{
	uint64_t key = mosaic_shm_tenant_key();
	char path[512];
	c->joined = -1;
	if (key == 0)
		return;
	/* The node's region for this card when the node agent mounted one;
	 * else one in the container's own directory, shared by its processes. */
	if (d->uuid[0] != '\0' && mosaic_card_region_path(d->uuid, path, sizeof path) == 0 &&
	    mosaic_lease_join(&c->lease, path, key, d->cores, d->force, now_ns()) == 0) {
		c->joined = 1;
		return;
	}
	if (d->cores == 0) /* best effort alone in its container: nothing to share */
		return;
	if (mosaic_shm_region_path(d->card, path, sizeof path) == 0 &&
	    mosaic_lease_join(&c->lease, path, key, d->cores, d->force, now_ns()) == 0)
		c->joined = 1;
}

static uint64_t allowance(struct card *c, uint64_t now)
{
	uint64_t a = c->lease_end > now ? c->lease_end - now : 0;
	if (c->lease.force) {
		uint64_t budget = (uint64_t)MOSAIC_BURST_NS * (uint64_t)c->lease.share / 100;
		a = a < budget ? a : budget;
	}
	return a > SLICE_GPU_NS ? a : SLICE_GPU_NS;
}

/* Joins the budget's queue (w < 0: not yet in it) and says it is still
 * there. Called with mu held; returns the thread's place. */
static int wait_in_line(struct card *c, int w, uint64_t now)
{
	if (w < 0) {
		for (int i = 0; i < WAITERS; i++)
			if (c->waiters[i].since == 0 || now - c->waiters[i].seen > WAITER_FRESH_NS) {
				c->waiters[i].since = now, w = i;
				break;
			}
		if (w < 0)
			return -1; /* more threads than places: this one goes unordered */
	}
	c->waiters[w].seen = now;
	return w;
}

/* Whether another thread has waited longer (w: this thread's place, or
 * -1 when it has not waited at all). */
static int someone_first(struct card *c, int w, uint64_t now)
{
	uint64_t mine = w >= 0 ? c->waiters[w].since : UINT64_MAX;
	for (int i = 0; i < WAITERS; i++)
		if (i != w && c->waiters[i].since != 0 && c->waiters[i].since < mine &&
		    now - c->waiters[i].seen <= WAITER_FRESH_NS)
			return 1;
	return 0;
}

static void leave_line(struct card *c, int w)
{
	if (w >= 0)
		c->waiters[w].since = 0;
}

/* Gets the card for a launch on stream. Returns 1 when the launch is
 * measured (gate_exit must follow), 0 when it goes through as it is. */
static int gate_enter(struct card *c, const struct mosaic_dev *d, CUcontext ctx, CUstream stream, uint64_t kind)
{
	/* Best effort on a card where no share wants time: straight through,
	 * without the lock (a stale read costs one launch's turn at most). */
	if (__atomic_load_n(&c->joined, __ATOMIC_ACQUIRE) == 1 && c->lease.share == 0 &&
	    !__atomic_load_n(&c->holding, __ATOMIC_RELAXED) && !mosaic_lease_guarded(&c->lease, now_ns()))
		return 0;
	pthread_mutex_lock(&c->mu);
	if (c->joined == 0)
		join(c, d);
	if (c->joined != 1 || CU_REAL(cuEventRecord) == NULL || CU_REAL(cuEventQuery) == NULL) {
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	if (c->ctx != ctx) {
		if (c->ctx != NULL)
			drain_and_release(c);
		while (c->npool > 0) /* events belong to their context */
			mosaic_real.cuEventDestroy_v2(c->pool[--c->npool]);
		if (c->ref != NULL)
			mosaic_real.cuEventDestroy_v2(c->ref);
		c->ref = NULL;
		c->ctx = ctx;
		c->per_launch_ns = 0;
		c->overlap = 1024, c->ov_est = c->ov_got = 0; /* until learned: one after another */
		if (c->hold_state == 1) /* mapped in the old context, which may be gone */
			c->hold_state = 0;
		c->held_extra = 0, c->calibrations = 0; /* measured per context */
	}
	int w = -1; /* this thread's place in the budget's queue */
	uint64_t now;
	for (;;) {
		now = now_ns();
		if (c->draining || atomic_load(&capturing)) {
			if (atomic_load(&capturing)) {
				leave_line(c, w);
				pthread_mutex_unlock(&c->mu);
				return 0;
			}
			if (w >= 0)
				w = wait_in_line(c, w, now);
			pthread_mutex_unlock(&c->mu);
			sleep_ns(20000);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		/* Decide on fresh charges: read what has finished. */
		if (c->count > 0 && (c->lease.force || !c->holding || now - c->last_collect >= 100000)) {
			collect(c, -1);
			c->last_collect = now;
		}
		/* force: the budget must cover the work in flight and this launch
		 * too (its kind's duration, at most half the burst), so steps are
		 * paced evenly rather than alternating free and throttled. */
		int64_t left = 1;
		if (c->lease.force) {
			uint64_t next = duration(c, kind), half = (uint64_t)MOSAIC_BURST_NS * (uint64_t)c->lease.share / 200;
			next = next ? next : c->per_launch_ns;
			uint64_t open = c->nopen > 1 ? c->open_ns * c->overlap >> 10 : c->open_ns;
			left = mosaic_lease_tokens(&c->lease, now) - (int64_t)(c->pred_ns + open) -
			       (int64_t)(next < half ? next : half);
		}
		uint64_t refill_wait = left > 0 ? 0 : (uint64_t)(-left + 1) * 100 / (uint64_t)c->lease.share;
		if (c->holding && now < c->lease_end) {
			/* A multi-card container whose turn runs on another of its
			 * cards goes first here at once, not at this lease's end. */
			if (now >= c->align_check) {
				c->align_check = now + ALIGN_CHECK_NS;
				if (mosaic_lease_yield(&c->lease, now, 1)) {
					drain_and_release(c);
					continue;
				}
			}
			/* Work in flight is bounded by what the lease (and a force
			 * budget) has left, so a hand-over or a cap is not overrun
			 * by a deep queue. */
			if (c->count > 0 && (left <= 0 || c->pred_ns > allowance(c, now))) {
				if (c->lease.force)
					w = wait_in_line(c, w, now);
				collect(c, c->count - 1);
				continue;
			}
			/* A deficit shorter than a sleep can be is carried as debt:
			 * sleeping for it would oversleep and waste the share. */
			if (left > 0 || refill_wait < SLEEP_MIN_NS) {
				if (!c->lease.force || !someone_first(c, w, now))
					break;
				/* Its turn comes after theirs. */
				w = wait_in_line(c, w, now);
				pthread_mutex_unlock(&c->mu);
				sleep_ns(YIELD_NS);
				pthread_mutex_lock(&c->mu);
				continue;
			}
			/* Nothing in flight and the budget short of this launch:
			 * wait for the refill, or hand over if someone waits. */
			if (mosaic_lease_wanted(&c->lease, now)) {
				drain_and_release(c);
				continue;
			}
			/* The wait is nobody's GPU time: end the slice first. */
			if (c->nopen > 0)
				close_slice(c);
			w = wait_in_line(c, w, now);
			pthread_mutex_unlock(&c->mu);
			sleep_ns(refill_wait > 2000000 ? 2000000 : refill_wait);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		if (!c->holding && c->lease.share == 0 && !mosaic_lease_guarded(&c->lease, now)) {
			leave_line(c, w);
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		if (left <= 0) { /* out of budget: nothing to take turns with yet */
			w = wait_in_line(c, w, now);
			if (c->count > 0) {
				collect(c, c->count - 1);
				continue;
			}
			if (c->holding) {
				drain_and_release(c);
				continue;
			}
			mosaic_lease_stop_waiting(&c->lease);
			pthread_mutex_unlock(&c->mu);
			sleep_ns(refill_wait > 5000000 ? 5000000 : refill_wait);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		uint64_t end = 0;
		mosaic_lease_set_sibling(&c->lease, sibling_until(c, now));
		if (mosaic_lease_try(&c->lease, now, &end)) {
			c->holding = 1;
			c->lease_end = end;
			break;
		}
		if (c->holding) { /* someone goes first */
			drain_and_release(c);
			continue;
		}
		uint64_t wait = mosaic_lease_wait_ns(&c->lease, now);
		pthread_mutex_unlock(&c->mu);
		sleep_ns(wait > 5000000 ? 5000000 : wait);
		pthread_mutex_lock(&c->mu);
	}
	leave_line(c, w);
	/* Now and then a launch is timed alone: a slice of its own. Often
	 * until the first estimates exist. */
	c->rng ^= c->rng << 13, c->rng ^= c->rng >> 7, c->rng ^= c->rng << 17;
	int sample = (c->rng % (known(c, kind) ? 64 : 4)) == 0;
	if (sample && c->nopen > 0)
		close_slice(c);
	int i = 0;
	while (i < c->nopen && c->open[i].stream != stream)
		i++;
	if (i == c->nopen) {
		if (c->nopen == MAX_OPEN)
			close_slice(c), i = 0;
		CUevent e = get_event(c);
		if (e != NULL && sample && known(c, kind))
			hold_start(c, stream);
		if (e == NULL || mosaic_real.cuEventRecord(e, stream) != CUDA_SUCCESS) {
			put_event(c, e);
			release_hold();
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		if (c->nopen == 0)
			c->slice_t0 = now_ns();
		c->open[i].stream = stream, c->open[i].start = e;
		c->open[i].n = 0, c->open[i].est = 0, c->open[i].sample = (uint8_t)sample, c->open[i].kind = kind;
		c->open[i].held = held_word != NULL;
		c->open[i].stall = 0, c->open[i].idle = c->count == 0;
		c->nopen = i + 1;
	}
	c->inlaunch++;
	pthread_mutex_unlock(&c->mu);
	launch_t0 = now; /* microseconds early at most: a stall is 200 */
	return i + 1;
}

static void gate_exit(struct card *c, int slot, CUstream stream, uint64_t kind)
{
	int held = release_hold(); /* first: the stream waits for it */
	uint64_t now = now_ns();
	pthread_mutex_lock(&c->mu);
	c->inlaunch--;
	int i = slot - 1, sample = 0;
	if (i < c->nopen && c->open[i].stream == stream) {
		if (c->open[i].held && !held) /* let go early: not the kernel's own time */
			c->open[i].sample = 0;
		uint64_t m = duration(c, kind), took = now - launch_t0;
		/* Only behind an idle stream: a call that waited for room in a
		 * full queue stalled while the card worked. */
		if (c->open[i].n == 0 && c->open[i].idle && !c->open[i].held && took > STALL_NS)
			c->open[i].stall = took;
		c->open_ns += m ? m : c->per_launch_ns;
		c->open[i].n++;
		c->open[i].est = (m == 0 || c->open[i].est == UNKNOWN) ? UNKNOWN : c->open[i].est + m;
		/* A kind without a duration yet ends its slice at once: nothing
		 * else would keep host work after it (libraries setting up,
		 * kernels loading as a workload starts) out of its charge; so
		 * charged, a matmul loop at force 10 began 75 ms in debt and its
		 * first step took 1.1 s. */
		sample = c->open[i].sample || !known(c, kind);
	}
	c->last_exit = now;
	uint64_t max_n = c->per_launch_ns ? SLICE_GPU_NS / c->per_launch_ns : 16;
	++c->slice_n;
	if (!c->draining && c->nopen > 0 &&
	    (sample || c->slice_n >= (max_n ? max_n : 1) ||
	     ((c->slice_n & 7) == 0 && now - c->slice_t0 >= SLICE_HOST_NS))) {
		close_slice(c);
		collect(c, -1);
	}
	pthread_mutex_unlock(&c->mu);
}

/* The card of the calling thread's current context, when it is limited. */
static struct card *current_card(CUcontext *ctx, const struct mosaic_dev **dev)
{
	static TLS CUcontext cached_ctx;
	static TLS const struct mosaic_dev *cached_dev;
	if (CU_REAL(cuCtxGetCurrent) == NULL || mosaic_real.cuCtxGetCurrent(ctx) != CUDA_SUCCESS || *ctx == NULL)
		return NULL;
	const struct mosaic_dev *d = cached_dev;
	if (*ctx != cached_ctx) {
		CUdevice dv;
		d = cached_dev = mosaic_current_dev(&dv);
		cached_ctx = *ctx;
	}
	if (d == NULL || !d->timed || d->card < 0 || d->card >= MOSAIC_MAX_CARDS)
		return NULL;
	pthread_once(&cards_once, init_cards);
	*dev = d;
	return &cards[d->card];
}

/* A container with no share on any card runs straight through while no
 * share on its cards wants time. Checked every 64th launch of a thread, so
 * the common launch costs a thread-local counter (a stale answer costs a
 * neighbour 64 launches at most). */
static int be_pass(void)
{
	static TLS uint32_t n;
	static TLS int clear;
	if ((++n & 63) != 0)
		return clear;
	clear = 1;
	pthread_once(&cards_once, init_cards);
	uint64_t now = now_ns();
	for (int i = 0; i < mosaic_dev_count(); i++) {
		const struct mosaic_dev *d = mosaic_dev_timed(i);
		if (d == NULL)
			continue;
		struct card *c = &cards[d->card];
		if (__atomic_load_n(&c->joined, __ATOMIC_ACQUIRE) == 0) {
			pthread_mutex_lock(&c->mu);
			if (c->joined == 0)
				join(c, d);
			pthread_mutex_unlock(&c->mu);
		}
		if (c->joined == 1 && (c->holding || mosaic_lease_guarded(&c->lease, now)))
			clear = 0;
	}
	return clear;
}

/* kind: what a launch's duration depends on, hashed: the kernel and its
 * grid size, or the graph. */
static uint64_t kernel_kind(const void *f, unsigned gx, unsigned gy, unsigned gz)
{
	uint64_t h = (uint64_t)(uintptr_t)f * 0x9e3779b97f4a7c15ULL;
	h ^= ((uint64_t)gx * 0x100000001b3ULL) ^ ((uint64_t)gy << 21) ^ ((uint64_t)gz << 42);
	return h * 0xff51afd7ed558ccdULL | 1;
}

#define LAUNCH(name, stream, ptds, kind, ...)                                                                \
	do {                                                                                                 \
		__typeof__(&name) real = CU_REAL(name);                                                      \
		if (real == NULL)                                                                            \
			return CUDA_ERROR_NOT_INITIALIZED;                                                   \
		if (__builtin_expect(__atomic_load_n(&mosaic_rate_skip, __ATOMIC_RELAXED), 1) ||             \
		    atomic_load_explicit(&capturing, memory_order_relaxed) ||                                \
		    (__atomic_load_n(&mosaic_rate_be_only, __ATOMIC_RELAXED) && be_pass()))                  \
			return real(__VA_ARGS__);                                                            \
		CUcontext ctx_;                                                                              \
		const struct mosaic_dev *dev_ = NULL;                                                        \
		struct card *c_ = current_card(&ctx_, &dev_);                                                \
		CUstream s_ = (stream);                                                                      \
		/* The events must go where the kernel goes: a null stream of a                              \
		 * _ptsz call is the thread's own stream. */                                                 \
		if ((ptds) && s_ == NULL)                                                                    \
			s_ = CU_STREAM_PER_THREAD;                                                           \
		uint64_t k_ = c_ != NULL ? (kind) : 0;                                                       \
		int slot_ = c_ != NULL ? gate_enter(c_, dev_, ctx_, s_, k_) : 0;                             \
		CUresult r_ = real(__VA_ARGS__);                                                             \
		if (slot_)                                                                                   \
			gate_exit(c_, slot_, s_, k_);                                                        \
		return r_;                                                                                   \
	} while (0)

static uint64_t config_kind(const CUlaunchConfig *c, CUfunction f)
{
	return c != NULL ? kernel_kind(f, c->gridDimX, c->gridDimY, c->gridDimZ) : kernel_kind(f, 0, 0, 0);
}

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
			       unsigned int by, unsigned int bz, unsigned int shmem, CUstream s, void **params,
			       void **extra)
{
	LAUNCH(cuLaunchKernel, s, 0, kernel_kind(f, gx, gy, gz), f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);
}

EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
				    unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem, CUstream s,
				    void **params, void **extra)
{
	LAUNCH(cuLaunchKernel_ptsz, s, 1, kernel_kind(f, gx, gy, gz), f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);
}

EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	LAUNCH(cuLaunchKernelEx, config ? config->hStream : NULL, 0, config_kind(config, f), config, f, params, extra);
}

EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	LAUNCH(cuLaunchKernelEx_ptsz, config ? config->hStream : NULL, 1, config_kind(config, f), config, f, params, extra);
}

EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
					  unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
					  CUstream s, void **params)
{
	LAUNCH(cuLaunchCooperativeKernel, s, 0, kernel_kind(f, gx, gy, gz), f, gx, gy, gz, bx, by, bz, shmem, s, params);
}

EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
					       unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
					       CUstream s, void **params)
{
	LAUNCH(cuLaunchCooperativeKernel_ptsz, s, 1, kernel_kind(f, gx, gy, gz), f, gx, gy, gz, bx, by, bz, shmem, s, params);
}

EXPORT CUresult cuGraphLaunch(CUgraphExec g, CUstream s) { LAUNCH(cuGraphLaunch, s, 0, kernel_kind(g, 0, 0, 0), g, s); }

EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec g, CUstream s) { LAUNCH(cuGraphLaunch_ptsz, s, 1, kernel_kind(g, 0, 0, 0), g, s); }

/* Before the host waits for the GPU, the open slice ends: the wait and
 * whatever the host does after it are not the container's GPU time. */
static void before_wait(void)
{
	if (__atomic_load_n(&mosaic_rate_skip, __ATOMIC_RELAXED) || atomic_load(&capturing))
		return;
	CUcontext ctx;
	const struct mosaic_dev *d = NULL;
	struct card *c = current_card(&ctx, &d);
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->joined == 1 && c->ctx == ctx && c->nopen > 0 && !c->draining)
		close_slice(c);
	pthread_mutex_unlock(&c->mu);
}

#define WAIT(name, ...)                                                                                      \
	do {                                                                                                 \
		__typeof__(&name) real = CU_REAL(name);                                                      \
		if (real == NULL)                                                                            \
			return CUDA_ERROR_NOT_INITIALIZED;                                                   \
		before_wait();                                                                               \
		return real(__VA_ARGS__);                                                                    \
	} while (0)

EXPORT CUresult cuCtxSynchronize(void) { WAIT(cuCtxSynchronize); }
EXPORT CUresult cuStreamSynchronize(CUstream s) { WAIT(cuStreamSynchronize, s); }
EXPORT CUresult cuStreamSynchronize_ptsz(CUstream s) { WAIT(cuStreamSynchronize_ptsz, s); }
EXPORT CUresult cuEventSynchronize(CUevent e) { WAIT(cuEventSynchronize, e); }

/* Capture bookkeeping: a count of captures in progress in this process.
 * The open slice ends before a capture begins, so that no end event is
 * recorded on the capturing stream later. */
#define BEGIN_CAPTURE(name, ...)                                                                             \
	do {                                                                                                 \
		__typeof__(&name) real = CU_REAL(name);                                                      \
		if (real == NULL)                                                                            \
			return CUDA_ERROR_NOT_INITIALIZED;                                                   \
		before_wait();                                                                               \
		atomic_fetch_add(&capturing, 1);                                                             \
		CUresult r = real(__VA_ARGS__);                                                              \
		if (r != CUDA_SUCCESS)                                                                       \
			atomic_fetch_sub(&capturing, 1);                                                     \
		return r;                                                                                    \
	} while (0)

#define END_CAPTURE(name, ...)                                                                               \
	do {                                                                                                 \
		__typeof__(&name) real = CU_REAL(name);                                                      \
		if (real == NULL)                                                                            \
			return CUDA_ERROR_NOT_INITIALIZED;                                                   \
		CUresult r = real(__VA_ARGS__);                                                              \
		if (r != CUDA_ERROR_ILLEGAL_STATE && atomic_load(&capturing) > 0)                            \
			atomic_fetch_sub(&capturing, 1);                                                     \
		return r;                                                                                    \
	} while (0)

EXPORT CUresult cuStreamBeginCapture(CUstream s) { BEGIN_CAPTURE(cuStreamBeginCapture, s); }
EXPORT CUresult cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode m)
{
	BEGIN_CAPTURE(cuStreamBeginCapture_v2, s, m);
}
EXPORT CUresult cuStreamBeginCapture_ptsz(CUstream s) { BEGIN_CAPTURE(cuStreamBeginCapture_ptsz, s); }
EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream s, CUstreamCaptureMode m)
{
	BEGIN_CAPTURE(cuStreamBeginCapture_v2_ptsz, s, m);
}
EXPORT CUresult cuStreamBeginCaptureToGraph(CUstream s, CUgraph g, const CUgraphNode *deps,
					    const void *data, size_t n, CUstreamCaptureMode m)
{
	BEGIN_CAPTURE(cuStreamBeginCaptureToGraph, s, g, deps, data, n, m);
}
EXPORT CUresult cuStreamBeginCaptureToGraph_ptsz(CUstream s, CUgraph g, const CUgraphNode *deps,
						 const void *data, size_t n, CUstreamCaptureMode m)
{
	BEGIN_CAPTURE(cuStreamBeginCaptureToGraph_ptsz, s, g, deps, data, n, m);
}
EXPORT CUresult cuStreamEndCapture(CUstream s, CUgraph *g) { END_CAPTURE(cuStreamEndCapture, s, g); }
EXPORT CUresult cuStreamEndCapture_ptsz(CUstream s, CUgraph *g) { END_CAPTURE(cuStreamEndCapture_ptsz, s, g); }
