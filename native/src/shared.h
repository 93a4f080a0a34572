/* The container's shared accounting file: one mmapped file per container,
 * one slot per process, atomics only (no lock a killed process could hold). */
#ifndef MOSAIC_SHARED_H
#define MOSAIC_SHARED_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

#define MOSAIC_SHM_MAGIC 0x314d48534b53434dULL /* "MCSKSHM1" */
#define MOSAIC_SHM_VERSION 1
#define MOSAIC_SHM_SLOTS 1024
#define MOSAIC_SHM_FILE "enforcer.shm"
#define MOSAIC_DEFAULT_SHARED_DIR "/run/mosaic/shared"

/* Written only by its owner, except that a reclaimer zeroes a dead owner's. */
struct mosaic_slot {
	_Atomic int32_t pid; /* 0 free, -1 being reclaimed */
	uint32_t reserved;
	_Atomic uint64_t start_time; /* /proc/<pid>/stat starttime, to tell a reused pid */
	_Atomic uint64_t used[MOSAIC_MAX_CARDS]; /* bytes this process holds per card */
} __attribute__((aligned(64)));

/* Token bucket of one card, shared by the container's processes. */
struct mosaic_bucket {
	_Atomic int64_t tokens;   /* ns of GPU time the container may still use */
	_Atomic uint64_t last_ns; /* CLOCK_MONOTONIC of the last refill; 0 before the first */
	_Atomic uint64_t busy_ns; /* GPU time measured so far (statistics) */
} __attribute__((aligned(64)));

struct mosaic_shm {
	_Atomic uint64_t magic; /* 0 in a fresh (zero-filled) file: zero is a valid state */
	uint32_t version;
	uint32_t nslots;
	uint64_t reserved;
	_Atomic uint64_t reclaim_ns;  /* when dead slots were last looked for */
	_Atomic uint64_t recheck_ns;  /* ... and when start times were last compared */
	/* One bit per claimed slot: sums visit live processes only. */
	_Atomic uint64_t live[MOSAIC_SHM_SLOTS / 64];
	struct mosaic_bucket bucket[MOSAIC_MAX_CARDS];
	struct mosaic_slot slots[MOSAIC_SHM_SLOTS];
};

/* Maps the file and claims this process's slot (once; again after fork).
 * Returns 0, or -1 when no slot is free (the caller denies allocations). */
int mosaic_shm_attach(void);

/* Adds bytes to this process's usage of card unless the container's total
 * would pass limit. Returns 0, or -1 (nothing added). */
int mosaic_shm_reserve(int card, uint64_t bytes, uint64_t limit);
void mosaic_shm_release(int card, uint64_t bytes);
/* The container's usage of card, dead processes' reclaimed first when due. */
uint64_t mosaic_shm_used(int card);
struct mosaic_bucket *mosaic_shm_bucket(int card);

#endif
