/* The container's shared accounting file: one mmapped file per container,
 * one slot per process, atomics only (no lock a killed process could hold). */
#ifndef MOSAIC_SHARED_H
#define MOSAIC_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define MOSAIC_SHM_MAGIC 0x314d48534b53434dULL /* "MCSKSHM1" */
#define MOSAIC_SHM_VERSION 1
#define MOSAIC_SHM_SLOTS 1024
#define MOSAIC_SHM_FILE "enforcer.shm"
#define MOSAIC_DEFAULT_SHARED_DIR MOSAIC_RUN_DIR "/shared"

/* Written only by its owner, except that a reclaimer zeroes a dead owner's. */
struct mosaic_slot {
	/* generation << 32 | pid. The pid half (what readers see as an int32 at
	 * offset 0) is 0 when free and -1 while being reclaimed; the generation
	 * changes at every claim, so a reclaimer that raced a new process with
	 * a reused pid fails its compare-and-swap instead of zeroing it. */
	_Atomic uint64_t owner;
	_Atomic uint64_t start_time; /* /proc/<pid>/stat starttime, to tell a reused pid */
	_Atomic uint64_t used[MOSAIC_MAX_CARDS]; /* bytes this process holds per card */
} __attribute__((aligned(64)));

struct mosaic_shm {
	_Atomic uint64_t magic; /* 0 in a fresh (zero-filled) file: zero is a valid state */
	uint32_t version;
	uint32_t nslots;
	_Atomic uint64_t tenant_key; /* the container's identity on its cards' regions; 0 until set */
	_Atomic uint64_t reclaim_ns;  /* when dead slots were last looked for */
	_Atomic uint64_t recheck_ns;  /* ... and when start times were last compared */
	/* One bit per claimed slot: sums visit live processes only. */
	_Atomic uint64_t live[MOSAIC_SHM_SLOTS / 64];
	/* Was the token buckets of version 1's compute limit; kept so the
	 * slots stay where readers expect them. */
	uint8_t unused[MOSAIC_MAX_CARDS * 64];
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
/* The container's processes holding memory on card: up to max of them
 * (pid in the container's PID namespace, bytes held) into pids and bytes.
 * Returns how many there are, which may be more than max. */
int mosaic_shm_processes(int card, uint32_t *pids, uint64_t *bytes, int max);
/* The container's identity in card regions, the same for all its processes;
 * 0 when there is no accounting file. */
uint64_t mosaic_shm_tenant_key(void);
/* Path of a card region private to the container (when the node shares no
 * region for the card): <shared dir>/lease-<card>. Returns 0, or -1. */
int mosaic_shm_region_path(int card, char *out, size_t n);

#endif
