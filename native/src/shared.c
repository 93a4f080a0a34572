#define _GNU_SOURCE
#include "shared.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Dead processes are looked for at most every 200 ms on any accounting call
 * and every 5 ms before an allocation is refused, so their memory comes back
 * well within 1 s and never causes a refusal; start times (pid reuse) are
 * compared at most once a second. */
#define RECLAIM_INTERVAL_NS 200000000ULL
#define RECLAIM_REFUSAL_NS 5000000ULL
#define RECHECK_INTERVAL_NS 1000000000ULL

static struct mosaic_shm *shm;
static struct mosaic_slot *me;
static pthread_mutex_t attach_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Field 22 of /proc/<pid>/stat; 0 when unreadable. */
static uint64_t start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return 0;
	for (int field = 2; field < 21 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	return p == NULL ? 0 : strtoull(p + 1, NULL, 10);
}

static const char *shared_dir(void)
{
	/* A prepared container's processes all account in the agent's
	 * directory: one pointed elsewhere would get a limit of its own. */
	const char *dir = mosaic_prepared() ? NULL : getenv("MOSAIC_SHARED_DIR");
	return dir != NULL && dir[0] != '\0' ? dir : MOSAIC_DEFAULT_SHARED_DIR;
}

static void *map_file(void)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", shared_dir(), MOSAIC_SHM_FILE);
	/* O_CREAT and ftruncate take exclusive inode locks, which hundreds of
	 * processes starting at once would queue on: only the first needs them. */
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) {
		mosaic_log(MOSAIC_LOG_WARN, "cannot open %s (%s): accounting covers this process only", path,
			   strerror(errno));
		return NULL;
	}
	void *p = MAP_FAILED;
	/* Growing a file to the same size is idempotent, so concurrent first
	 * processes need no lock: a zero-filled file is a valid empty state. */
	off_t size = lseek(fd, 0, SEEK_END);
	if (size >= 0 && (size >= (off_t)sizeof(struct mosaic_shm) ||
				    ftruncate(fd, sizeof(struct mosaic_shm)) == 0))
		p = mmap(NULL, sizeof(struct mosaic_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		mosaic_log(MOSAIC_LOG_WARN, "cannot map %s (%s): accounting covers this process only", path,
			   strerror(errno));
		return NULL;
	}
	struct mosaic_shm *s = p;
	uint64_t zero = 0;
	if (!atomic_compare_exchange_strong(&s->magic, &zero, MOSAIC_SHM_MAGIC) && zero != MOSAIC_SHM_MAGIC) {
		mosaic_log(MOSAIC_LOG_ERROR, "%s has an unknown layout: accounting covers this process only", path);
		munmap(p, sizeof(struct mosaic_shm));
		return NULL;
	}
	return p;
}

#define OWNER_PID(o) ((int32_t)(uint32_t)(o))
#define OWNER_GEN(o) ((o) >> 32)
#define RECLAIMING 0xffffffffULL

static void reclaim_slot(struct mosaic_slot *s, uint64_t owner)
{
	/* The reclaiming mark makes the slot ours to clean, so one reclaimer
	 * does it, and only if nobody claimed it since owner was read. */
	if (!atomic_compare_exchange_strong(&s->owner, &owner, (OWNER_GEN(owner) << 32) | RECLAIMING))
		return;
	uint32_t i = (uint32_t)(s - shm->slots);
	atomic_fetch_and(&shm->live[i / 64], ~(1ULL << (i % 64)));
	for (int c = 0; c < MOSAIC_MAX_CARDS; c++)
		atomic_store(&s->used[c], 0);
	atomic_store(&s->start_time, 0);
	atomic_store(&s->owner, OWNER_GEN(owner) << 32);
}

/* Runs the body with i set to each claimed slot's index. */
#define FOR_EACH_LIVE(i, ...)                                                                               \
	for (uint32_t w_ = 0; w_ < MOSAIC_SHM_SLOTS / 64; w_++)                                             \
		for (uint64_t m_ = atomic_load(&shm->live[w_]); m_ != 0; m_ &= m_ - 1) {                     \
			uint32_t i = w_ * 64 + (uint32_t)__builtin_ctzll(m_);                                \
			__VA_ARGS__;                                                                         \
		}

static void reclaim_dead(int thorough)
{
	FOR_EACH_LIVE(i, {
		struct mosaic_slot *s = &shm->slots[i];
		uint64_t owner = atomic_load(&s->owner);
		int32_t pid = OWNER_PID(owner);
		if (pid <= 0 || s == me)
			continue;
		int dead = kill(pid, 0) != 0 && errno == ESRCH;
		/* A pid reused by a newer process: its start time differs. Read
		 * only when an allocation is about to be refused (pids are handed
		 * out cyclically, so reuse is rare). */
		if (!dead && thorough) {
			uint64_t st = start_time(pid), want = atomic_load(&s->start_time);
			dead = st != 0 && want != 0 && st != want;
		}
		if (dead)
			reclaim_slot(s, owner);
	});
}

static int due(_Atomic uint64_t *stamp, uint64_t now, uint64_t interval)
{
	uint64_t last = atomic_load_explicit(stamp, memory_order_relaxed);
	return now - last >= interval && atomic_compare_exchange_strong(stamp, &last, now);
}

static void maybe_reclaim(int refusing)
{
	uint64_t now = now_ns();
	if (due(&shm->reclaim_ns, now, refusing ? RECLAIM_REFUSAL_NS : RECLAIM_INTERVAL_NS))
		reclaim_dead(refusing && due(&shm->recheck_ns, now, RECHECK_INTERVAL_NS));
}

static int claim_slot(void)
{
	pid_t pid = getpid();
	uint64_t st = start_time(pid);
	/* A refusal may come from another process's add that is about to be
	 * rolled back: look again a few times before refusing. */
	for (int attempt = 0; attempt < 4; attempt++) {
		/* Start probing at pid % slots: O(1) when the file is not crowded. */
		for (uint32_t k = 0; k < MOSAIC_SHM_SLOTS; k++) {
			uint32_t i = ((uint32_t)pid + k) % MOSAIC_SHM_SLOTS;
			struct mosaic_slot *s = &shm->slots[i];
			uint64_t cur = atomic_load(&s->owner);
			if (OWNER_PID(cur) == pid) /* a dead process that had our pid */
				reclaim_slot(s, cur), cur = atomic_load(&s->owner);
			if (OWNER_PID(cur) != 0 ||
			    !atomic_compare_exchange_strong(&s->owner, &cur, ((OWNER_GEN(cur) + 1) << 32) | (uint32_t)pid))
				continue;
			for (int c = 0; c < MOSAIC_MAX_CARDS; c++)
				atomic_store(&s->used[c], 0);
			atomic_store(&s->start_time, st);
			atomic_fetch_or(&shm->live[i / 64], 1ULL << (i % 64));
			me = s;
			return 0;
		}
		reclaim_dead(1);
	}
	mosaic_log(MOSAIC_LOG_ERROR, "all %d process slots are taken: denying GPU memory", MOSAIC_SHM_SLOTS);
	return -1;
}

static void after_fork_child(void)
{
	/* The child holds none of the parent's GPU memory: it gets a slot of its own. */
	me = NULL;
	pthread_mutex_init(&attach_mu, NULL);
}

int mosaic_shm_attach(void)
{
	static int atfork_done;
	if (__atomic_load_n(&me, __ATOMIC_ACQUIRE) != NULL)
		return 0;
	pthread_mutex_lock(&attach_mu);
	int rc = 0;
	if (me == NULL) {
		if (!atfork_done) {
			pthread_atfork(NULL, NULL, after_fork_child);
			atfork_done = 1;
		}
		if (shm == NULL) {
			shm = map_file();
			if (shm == NULL) {
				void *p = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				shm = p == MAP_FAILED ? NULL : p;
			}
		}
		rc = shm == NULL ? -1 : claim_slot();
	}
	pthread_mutex_unlock(&attach_mu);
	return rc;
}

static uint64_t sum_used(int card)
{
	uint64_t total = 0;
	FOR_EACH_LIVE(i, total += atomic_load(&shm->slots[i].used[card]));
	return total;
}

int mosaic_shm_reserve(int card, uint64_t bytes, uint64_t limit)
{
	if (bytes > limit || (me == NULL && mosaic_shm_attach() != 0))
		return -1;
	maybe_reclaim(0);
	/* A refusal may come from another process's add that is about to be
	 * rolled back: look again a few times before refusing. */
	for (int attempt = 0; attempt < 4; attempt++) {
		/* Add first, then sum everyone (both sequentially consistent): of
		 * two racing processes at least one sees the other's add, so the
		 * total can never pass the limit; at worst both back off. */
		atomic_fetch_add(&me->used[card], bytes);
		uint64_t total = sum_used(card);
		if (total <= limit && total >= bytes)
			return 0;
		atomic_fetch_sub(&me->used[card], bytes);
		if (attempt == 0)
			maybe_reclaim(1);
		else
			sched_yield();
	}
	return -1;
}

void mosaic_shm_release(int card, uint64_t bytes)
{
	if (me == NULL)
		return;
	uint64_t cur = atomic_load(&me->used[card]);
	atomic_fetch_sub(&me->used[card], bytes < cur ? bytes : cur);
}

uint64_t mosaic_shm_used(int card)
{
	if (me == NULL && mosaic_shm_attach() != 0)
		return 0;
	maybe_reclaim(0);
	return sum_used(card);
}

int mosaic_shm_processes(int card, uint32_t *pids, uint64_t *bytes, int max)
{
	if (card < 0 || card >= MOSAIC_MAX_CARDS || (me == NULL && mosaic_shm_attach() != 0))
		return 0;
	maybe_reclaim(0);
	int n = 0;
	FOR_EACH_LIVE(i, {
		uint64_t owner = atomic_load(&shm->slots[i].owner), used = atomic_load(&shm->slots[i].used[card]);
		int32_t pid = OWNER_PID(owner);
		if (pid > 0 && used > 0) {
			if (n < max)
				pids[n] = (uint32_t)pid, bytes[n] = used;
			n++;
		}
	});
	return n;
}

uint64_t mosaic_shm_tenant_key(void)
{
	if (me == NULL && mosaic_shm_attach() != 0)
		return 0;
	uint64_t k = atomic_load(&shm->tenant_key);
	if (k != 0)
		return k;
	/* Any value unlikely to repeat on the node: the first process's pid,
	 * start time and clock. */
	uint64_t v = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ now_ns() ^ (start_time(getpid()) << 20);
	if (v == 0)
		v = 1;
	uint64_t zero = 0;
	return atomic_compare_exchange_strong(&shm->tenant_key, &zero, v) ? v : zero;
}

int mosaic_shm_region_path(int card, char *out, size_t n)
{
	int k = snprintf(out, n, "%s/lease-%d", shared_dir(), card);
	return k > 0 && (size_t)k < n ? 0 : -1;
}
