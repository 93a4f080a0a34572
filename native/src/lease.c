/* Time leases on one card, decided without a lock or a daemon: every waiter
 * reads the same region and only the one that should go next takes the
 * lease (weighted fair queueing on each container's virtual time: GPU time
 * charged, scaled by 100/share). A tenant with a share always goes before a
 * best-effort one; a force tenant also needs budget, refilled at its share
 * of wall time. */
#define _GNU_SOURCE
#include "lease.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static uint64_t pack(int proc, uint64_t end_ns)
{
	return ((end_ns / 1000) << MOSAIC_LEASE_HOLDER_BITS) | (uint64_t)(proc + 1);
}

static struct mosaic_region *map_region(const char *path, int create)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		/* Containers sharing the card may run as different users: the
		 * first one makes the file writable by all, whatever its umask. */
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
		if (fd >= 0)
			fchmod(fd, 0666);
		else if (errno == EEXIST)
			fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return NULL;
	void *p = MAP_FAILED;
	off_t size = lseek(fd, 0, SEEK_END);
	/* Growing a file to the same size is idempotent: concurrent first
	 * processes need no lock, and zero-filled is a valid empty region. */
	if (size >= (off_t)sizeof(struct mosaic_region) || (size >= 0 && ftruncate(fd, sizeof(struct mosaic_region)) == 0))
		p = mmap(NULL, sizeof(struct mosaic_region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	struct mosaic_region *r = p;
	uint64_t zero = 0;
	if (atomic_compare_exchange_strong(&r->magic, &zero, MOSAIC_REGION_MAGIC)) {
		r->version = MOSAIC_REGION_VERSION;
		r->ntenants = MOSAIC_REGION_TENANTS;
		r->nprocs = MOSAIC_REGION_PROCS;
	} else if (zero != MOSAIC_REGION_MAGIC) {
		munmap(p, sizeof(struct mosaic_region));
		errno = EPROTO;
		return NULL;
	}
	return r;
}

static int claim_tenant(struct mosaic_region *r, uint64_t key, int share, int force, uint64_t now)
{
	int free_at = -1;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < MOSAIC_REGION_TENANTS; i++) {
			struct mosaic_tenant *t = &r->tenants[i];
			uint64_t k = atomic_load(&t->key);
			if (k == key) {
				atomic_store(&t->want_ns, now);
				atomic_store(&t->share, share);
				atomic_store(&t->force, force);
				return i;
			}
			if (free_at < 0 && (k == 0 || (pass == 1 && now - atomic_load(&t->want_ns) > MOSAIC_SLOT_STALE_NS &&
						       now > atomic_load(&t->want_ns))))
				free_at = i;
		}
		if (free_at < 0)
			continue;
		struct mosaic_tenant *t = &r->tenants[free_at];
		uint64_t k = atomic_load(&t->key), w = atomic_load(&t->want_ns);
		int stale = k == 0 || (pass == 1 && now > w && now - w > MOSAIC_SLOT_STALE_NS);
		if (stale && atomic_compare_exchange_strong(&t->key, &k, key)) {
			atomic_store(&t->want_ns, now);
			atomic_store(&t->share, share);
			atomic_store(&t->force, force);
			atomic_store(&t->vtime, 0);
			atomic_store(&t->tokens, 0);
			atomic_store(&t->refill_ns, now);
			atomic_store(&t->busy_ns, 0);
			return free_at;
		}
		free_at = -1;
		pass--; /* lost a race for that slot: look again */
	}
	return -1;
}

static int claim_proc(struct mosaic_region *r, int tenant, uint64_t now)
{
	uint32_t pid = (uint32_t)getpid();
	for (int i = 0; i < MOSAIC_REGION_PROCS; i++) {
		struct mosaic_lease_proc *p = &r->procs[i];
		uint64_t o = atomic_load(&p->owner), seen = atomic_load(&p->seen_ns);
		int stale = (uint32_t)o == 0 || (now > seen && now - seen > MOSAIC_SLOT_STALE_NS);
		if (!stale || !atomic_compare_exchange_strong(&p->owner, &o, (((o >> 32) + 1) << 32) | pid))
			continue;
		atomic_store(&p->seen_ns, now);
		atomic_store(&p->tenant, tenant);
		atomic_store(&p->waiting_ns, 0);
		uint32_t hi = atomic_load(&r->procs_hi);
		while (hi < (uint32_t)i + 1 && !atomic_compare_exchange_weak(&r->procs_hi, &hi, (uint32_t)i + 1))
			;
		return i;
	}
	return -1;
}

int mosaic_lease_join(struct mosaic_lease *l, const char *path, uint64_t key, int share, int force, uint64_t now)
{
	memset(l, 0, sizeof *l);
	struct mosaic_region *r = map_region(path, 1);
	if (r == NULL) {
		mosaic_log(MOSAIC_LOG_INFO, "card region %s: %s", path, strerror(errno));
		return -1;
	}
	int t = claim_tenant(r, key, share, force, now);
	int p = t < 0 ? -1 : claim_proc(r, t, now);
	if (p < 0) {
		mosaic_log(MOSAIC_LOG_WARN, "card region %s is full: this process takes no turns", path);
		munmap(r, sizeof *r);
		return -1;
	}
	l->r = r, l->proc = p, l->tenant = t, l->share = share, l->force = force, l->fresh = 1;
	return 0;
}

static struct mosaic_tenant *tenant(const struct mosaic_lease *l) { return &l->r->tenants[l->tenant]; }

/* Budget of a force tenant at now, refill included, without writing it. */
static int64_t tokens_at(const struct mosaic_tenant *t, uint64_t now)
{
	int share = atomic_load(&t->share);
	int64_t tok = atomic_load(&t->tokens), cap = MOSAIC_BURST_NS * share / 100;
	uint64_t last = atomic_load(&t->refill_ns);
	if (now > last)
		tok += (int64_t)((now - last) * (uint64_t)share / 100);
	return tok > cap ? cap : tok;
}

/* Applies the refill (one process wins each interval). */
static void refill(struct mosaic_tenant *t, uint64_t now)
{
	uint64_t last = atomic_load(&t->refill_ns);
	if (now <= last + 100000 || !atomic_compare_exchange_strong(&t->refill_ns, &last, now))
		return;
	int share = atomic_load(&t->share);
	int64_t add = (int64_t)((now - last) * (uint64_t)share / 100), cap = MOSAIC_BURST_NS * share / 100;
	int64_t tok = atomic_fetch_add(&t->tokens, add) + add;
	if (tok > cap)
		atomic_fetch_sub(&t->tokens, tok - cap);
}

static int someone_before(const struct mosaic_lease *l, const struct mosaic_tenant *me, uint64_t now);

static int waiting(const struct mosaic_lease_proc *p, uint64_t now)
{
	uint64_t w = atomic_load_explicit(&p->waiting_ns, memory_order_relaxed);
	return w != 0 && w <= now + 1000000 && now - w < MOSAIC_WAIT_FRESH_NS;
}

static int eligible(const struct mosaic_tenant *t, uint64_t now)
{
	return !atomic_load(&t->force) || tokens_at(t, now) > 0;
}

/* 1 while the process's container holds another of its cards' leases. */
static int aligned(const struct mosaic_lease_proc *p, uint64_t now)
{
	uint32_t s = atomic_load_explicit(&p->sibling_ms, memory_order_relaxed);
	return s != 0 && (int32_t)(s - (uint32_t)(now / 1000000)) > 0;
}

/* A virtual time less the alignment bonus: one lease of the tenant's own
 * GPU time. */
static uint64_t vtime_of(const struct mosaic_tenant *t, int align)
{
	uint64_t v = atomic_load(&t->vtime);
	int share = atomic_load(&t->share);
	uint64_t bonus = align ? MOSAIC_LEASE_NS * 100 / (uint64_t)(share > 0 ? share : 1) : 0;
	return v > bonus ? v - bonus : 0;
}

/* Who goes first: a share before best effort, then the lowest virtual
 * time, less the bonus of a tenant running on another of its cards. */
static int before(const struct mosaic_tenant *a, int align_a, const struct mosaic_tenant *b, int align_b)
{
	int sa = atomic_load(&a->share) > 0, sb = atomic_load(&b->share) > 0;
	if (sa != sb)
		return sa;
	return vtime_of(a, align_a) < vtime_of(b, align_b);
}

/* 1 when some other waiting process should go before tenant me (any
 * eligible waiter at all, with anyone; with only_aligned, only one whose
 * container runs on another of its cards now). */
static int waiter(const struct mosaic_lease *l, const struct mosaic_tenant *me, uint64_t now, int anyone,
		  int only_aligned)
{
	struct mosaic_region *r = l->r;
	uint32_t hi = atomic_load(&r->procs_hi);
	int me_aligned = aligned(&r->procs[l->proc], now);
	for (uint32_t i = 0; i < hi && i < MOSAIC_REGION_PROCS; i++) {
		const struct mosaic_lease_proc *p = &r->procs[i];
		if ((int)i == l->proc || !waiting(p, now) || (only_aligned && !aligned(p, now)))
			continue;
		int ti = atomic_load(&p->tenant);
		if (ti < 0 || ti >= MOSAIC_REGION_TENANTS)
			continue;
		const struct mosaic_tenant *t = &r->tenants[ti];
		if (t == me) /* another process of this container: take turns with it */
			return 1;
		if (eligible(t, now) && (anyone || before(t, aligned(p, now), me, me_aligned)))
			return 1;
	}
	return 0;
}

static int someone_before(const struct mosaic_lease *l, const struct mosaic_tenant *me, uint64_t now)
{
	return waiter(l, me, now, 0, 0);
}

int mosaic_lease_wanted(const struct mosaic_lease *l, uint64_t now) { return waiter(l, tenant(l), now, 1, 0); }

int mosaic_lease_yield(const struct mosaic_lease *l, uint64_t now, int only_aligned)
{
	return waiter(l, tenant(l), now, 0, only_aligned);
}

/* A container that comes back after idling starts at the virtual time of
 * the busiest active one, not with a credit for the time it did not use. */
static void catch_up(struct mosaic_lease *l, uint64_t now)
{
	struct mosaic_tenant *me = tenant(l);
	uint64_t want = atomic_load(&me->want_ns);
	if (!l->fresh && now > want && now - want < MOSAIC_ACTIVE_NS)
		return;
	l->fresh = 0;
	uint64_t floor = 0;
	int any = 0;
	for (int i = 0; i < MOSAIC_REGION_TENANTS; i++) {
		const struct mosaic_tenant *t = &l->r->tenants[i];
		uint64_t w = atomic_load(&t->want_ns);
		if (t == me || atomic_load(&t->key) == 0 || now < w || now - w >= MOSAIC_ACTIVE_NS)
			continue;
		uint64_t v = atomic_load(&t->vtime);
		if (!any || v < floor)
			floor = v, any = 1;
	}
	uint64_t v = atomic_load(&me->vtime);
	while (any && v < floor && !atomic_compare_exchange_weak(&me->vtime, &v, floor))
		;
}

static void touch(struct mosaic_lease *l, uint64_t now)
{
	struct mosaic_tenant *me = tenant(l);
	catch_up(l, now);
	atomic_store_explicit(&me->want_ns, now, memory_order_relaxed);
	atomic_store_explicit(&l->r->procs[l->proc].seen_ns, now, memory_order_relaxed);
	if (l->share > 0)
		atomic_store_explicit(&l->r->guaranteed_ns, now, memory_order_relaxed);
}

int mosaic_lease_try(struct mosaic_lease *l, uint64_t now, uint64_t *end_ns)
{
	struct mosaic_region *r = l->r;
	struct mosaic_tenant *me = tenant(l);
	struct mosaic_lease_proc *self = &r->procs[l->proc];
	touch(l, now);
	if (l->force)
		refill(me, now);
	uint64_t w = atomic_load(&r->lease);
	int holder = MOSAIC_LEASE_HOLDER(w);
	int running = w != 0 && MOSAIC_LEASE_END_US(w) > now / 1000;
	if (l->force && tokens_at(me, now) <= 0)
		return 0;
	if (holder == l->proc) {
		/* The caller's lease ran out: renew, unless someone goes first.
		 * (The word may run further: a drain extends it.) */
		if (someone_before(l, me, now))
			return 0;
	} else {
		atomic_store_explicit(&self->waiting_ns, now, memory_order_relaxed);
		if (running && holder >= 0)
			return 0;
		/* Free or expired: the first in line takes it; after a grace any
		 * waiter does, so a first in line that sleeps wastes no card time. */
		uint64_t since = w == 0 ? atomic_load(&r->free_since_ns) : MOSAIC_LEASE_END_US(w) * 1000;
		if ((now < since || now - since < MOSAIC_FREE_GRACE_NS) && someone_before(l, me, now))
			return 0;
	}
	uint64_t end = now + MOSAIC_LEASE_NS;
	if (!atomic_compare_exchange_strong(&r->lease, &w, pack(l->proc, end)))
		return 0;
	atomic_store_explicit(&self->waiting_ns, 0, memory_order_relaxed);
	if (holder != l->proc) {
		atomic_fetch_add_explicit(&me->leases, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&r->switches, 1, memory_order_relaxed);
	}
	*end_ns = end;
	return 1;
}

void mosaic_lease_extend(struct mosaic_lease *l, uint64_t now, uint64_t ns)
{
	uint64_t w = atomic_load(&l->r->lease);
	while (MOSAIC_LEASE_HOLDER(w) == l->proc && MOSAIC_LEASE_END_US(w) < (now + ns) / 1000 &&
	       !atomic_compare_exchange_weak(&l->r->lease, &w, pack(l->proc, now + ns)))
		;
	atomic_store_explicit(&l->r->procs[l->proc].seen_ns, now, memory_order_relaxed);
}

void mosaic_lease_release(struct mosaic_lease *l, uint64_t now)
{
	uint64_t w = atomic_load(&l->r->lease);
	while (MOSAIC_LEASE_HOLDER(w) == l->proc && !atomic_compare_exchange_weak(&l->r->lease, &w, 0))
		;
	if (MOSAIC_LEASE_HOLDER(w) == l->proc)
		atomic_store(&l->r->free_since_ns, now);
}

void mosaic_lease_stop_waiting(struct mosaic_lease *l)
{
	atomic_store_explicit(&l->r->procs[l->proc].waiting_ns, 0, memory_order_relaxed);
}

void mosaic_lease_charge(struct mosaic_lease *l, uint64_t ns, uint64_t now)
{
	struct mosaic_tenant *me = tenant(l);
	int share = l->share > 0 ? l->share : 1;
	atomic_fetch_add_explicit(&me->vtime, ns * 100 / (uint64_t)share, memory_order_relaxed);
	atomic_fetch_add_explicit(&me->busy_ns, ns, memory_order_relaxed);
	if (!l->force)
		return;
	refill(me, now);
	int64_t floor = -MOSAIC_DEBT_FLOOR_NS;
	int64_t tok = atomic_fetch_sub(&me->tokens, (int64_t)ns) - (int64_t)ns;
	if (tok < floor)
		atomic_fetch_add(&me->tokens, floor - tok);
}

int64_t mosaic_lease_tokens(const struct mosaic_lease *l, uint64_t now) { return tokens_at(tenant(l), now); }

int mosaic_lease_guarded(const struct mosaic_lease *l, uint64_t now)
{
	uint64_t g = atomic_load_explicit(&l->r->guaranteed_ns, memory_order_relaxed);
	return g != 0 && (now < g || now - g < MOSAIC_ACTIVE_NS);
}

uint64_t mosaic_lease_wait_ns(const struct mosaic_lease *l, uint64_t now)
{
	uint64_t w = atomic_load(&l->r->lease);
	uint64_t end = MOSAIC_LEASE_END_US(w) * 1000;
	/* Sleep to the end of a running lease, then look often: a hand-over is
	 * card time nobody uses. */
	if (w != 0 && end > now + 200000)
		return end - now - 100000 > 2000000 ? 2000000 : end - now - 100000;
	return 50000;
}

void mosaic_lease_set_sibling(struct mosaic_lease *l, uint64_t until_ns)
{
	uint32_t ms = (uint32_t)(until_ns / 1000000);
	if (until_ns != 0 && ms == 0)
		ms = 1; /* 0 says none */
	atomic_store_explicit(&l->r->procs[l->proc].sibling_ms, until_ns ? ms : 0, memory_order_relaxed);
}

struct mosaic_region *mosaic_region_peek(const char *path) { return map_region(path, 0); }

uint64_t mosaic_region_held_by(const struct mosaic_region *r, uint64_t key, uint64_t now)
{
	uint64_t w = atomic_load(&r->lease);
	int holder = MOSAIC_LEASE_HOLDER(w);
	uint64_t end = MOSAIC_LEASE_END_US(w) * 1000;
	if (w == 0 || holder < 0 || holder >= MOSAIC_REGION_PROCS || end <= now)
		return 0;
	int ti = atomic_load(&r->procs[holder].tenant);
	if (ti < 0 || ti >= MOSAIC_REGION_TENANTS || atomic_load(&r->tenants[ti].key) != key)
		return 0;
	return end;
}
