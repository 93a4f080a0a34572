/* The card region: one file per card on the node, mapped by every process
 * of every container holding a share of that card. It carries each
 * container's share and GPU time, and the card's one exclusive time lease:
 * only the lease holder's work runs on the card, so the time its work takes
 * is its own, whatever the neighbours do.
 *
 * The layout is part of the protocol between the node agent and the
 * enforcer (pkg/device/cardregion.go mirrors it; a test compiles this header
 * and compares offsets). Atomics only: no lock a killed process could hold;
 * a dead holder's lease simply expires. It is QoS between cooperating
 * tenants, not a security boundary (docs/enforcer.md says what a hostile
 * tenant can do with it). */
#ifndef MOSAIC_LEASE_H
#define MOSAIC_LEASE_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

#define MOSAIC_REGION_MAGIC 0x314e474552534f4dULL /* "MOSREGN1" */
#define MOSAIC_REGION_VERSION 1
#define MOSAIC_REGION_TENANTS 64
#define MOSAIC_REGION_PROCS 512
#define MOSAIC_REGION_FILE "lease"
#define MOSAIC_DEFAULT_CARD_DIR MOSAIC_RUN_DIR "/cards"

/* One container on the card. */
struct mosaic_tenant {
	_Atomic uint64_t key;      /* the container's identity; 0: free slot */
	_Atomic int32_t share;     /* cores: percent of the card's time guaranteed, 0: none */
	_Atomic int32_t force;     /* 1: hard cap at share, alone or not */
	_Atomic uint64_t vtime;    /* GPU time charged, scaled by 100/share: lowest goes first */
	_Atomic int64_t tokens;    /* force: ns of GPU time it may still use (negative: debt) */
	_Atomic uint64_t refill_ns; /* CLOCK_MONOTONIC of the last refill */
	_Atomic uint64_t busy_ns;  /* GPU time charged in all (statistics, metrics) */
	_Atomic uint64_t want_ns;  /* last time one of its processes waited for or held the lease */
	_Atomic uint64_t leases;   /* leases taken (statistics) */
} __attribute__((aligned(64)));

/* One process on the card. owner packs a generation above the pid, so a
 * reclaimer racing a new process that reused the pid cannot take its slot. */
struct mosaic_lease_proc {
	_Atomic uint64_t owner;     /* generation << 32 | pid; pid 0: free */
	_Atomic uint64_t seen_ns;   /* last sign of life: pids of other containers are not
				     * visible here, so liveness is this heartbeat */
	_Atomic int32_t tenant;     /* index into tenants */
	/* Its container holds the lease of another of its cards until then
	 * (CLOCK_MONOTONIC ms, low 32 bits; 0: not): see MOSAIC_ALIGN. */
	_Atomic uint32_t sibling_ms;
	_Atomic uint64_t waiting_ns; /* refreshed while it waits for the lease; 0: not waiting */
} __attribute__((aligned(64)));

struct mosaic_region {
	_Atomic uint64_t magic; /* 0 in a fresh (zero-filled) file */
	uint32_t version;
	uint32_t ntenants;
	uint32_t nprocs;
	_Atomic uint32_t procs_hi; /* slots ever claimed: scans stop here */
	/* The lease: holder's proc index + 1 in the low 12 bits, expiry in
	 * microseconds of CLOCK_MONOTONIC above; 0 when free. One word, so
	 * taking, renewing and handing it back are single CAS operations. */
	_Atomic uint64_t lease;
	_Atomic uint64_t free_since_ns;  /* when the lease was last handed back */
	_Atomic uint64_t guaranteed_ns;  /* last time a tenant with a share wanted time */
	_Atomic uint64_t switches;       /* lease hand-overs (statistics) */
	uint64_t pad[2];
	struct mosaic_tenant tenants[MOSAIC_REGION_TENANTS];
	struct mosaic_lease_proc procs[MOSAIC_REGION_PROCS];
};

#define MOSAIC_LEASE_HOLDER_BITS 12
#define MOSAIC_LEASE_HOLDER(w) ((int)((w) & ((1u << MOSAIC_LEASE_HOLDER_BITS) - 1)) - 1)
#define MOSAIC_LEASE_END_US(w) ((w) >> MOSAIC_LEASE_HOLDER_BITS)

/* A process's membership of one card's region. */
struct mosaic_lease {
	struct mosaic_region *r;
	int proc;   /* index of this process's slot */
	int tenant; /* index of its container's slot */
	int share;  /* 1-99 guaranteed, 0 best effort */
	int force;  /* hard cap: never more than share, alone or not */
	int fresh;  /* joined since the last turn: starts at the others' virtual time */
};

/* Joins the region in the file at path as a process of the container key.
 * Returns 0, or -1 when the region cannot be used. */
int mosaic_lease_join(struct mosaic_lease *l, const char *path, uint64_t key, int share, int force, uint64_t now);

/* Takes or renews the lease if this process may have it now; returns 1 when
 * it then holds it until *end_ns. A waiter calls it until it gets it, with
 * mosaic_lease_wait_ns() sleeps in between. */
int mosaic_lease_try(struct mosaic_lease *l, uint64_t now, uint64_t *end_ns);
/* 1 when any other process waits for the card and could use it now: a
 * holder that cannot use its lease (budget) hands it over then. */
int mosaic_lease_wanted(const struct mosaic_lease *l, uint64_t now);
/* Keeps the lease at least until now + ns while the holder drains. */
void mosaic_lease_extend(struct mosaic_lease *l, uint64_t now, uint64_t ns);
/* Hands the lease back (no-op unless held) and stops waiting. */
void mosaic_lease_release(struct mosaic_lease *l, uint64_t now);
void mosaic_lease_stop_waiting(struct mosaic_lease *l);
/* Charges GPU time measured after the fact. */
void mosaic_lease_charge(struct mosaic_lease *l, uint64_t ns, uint64_t now);
/* force: the container's budget now (ns; negative: debt). */
int64_t mosaic_lease_tokens(const struct mosaic_lease *l, uint64_t now);
/* Best effort only: 1 when a tenant with a share wanted time recently, so
 * this one must take turns; 0 lets it run ungated on an otherwise idle card. */
int mosaic_lease_guarded(const struct mosaic_lease *l, uint64_t now);
/* How long a waiter sleeps before trying again. */
uint64_t mosaic_lease_wait_ns(const struct mosaic_lease *l, uint64_t now);

/* Aligned turns across a container's cards (NCCL ranks, one per card,
 * wait for each other: a rank whose card is someone else's turn stalls its
 * peers, which spin on theirs). A process publishes in its slot until when
 * its container holds another of its cards' leases; on this card such a
 * waiter or holder goes before others as if it had used one lease less of
 * its own GPU time (a bounded bonus: shares hold over any longer window).
 * until_ns 0: holds none. */
void mosaic_lease_set_sibling(struct mosaic_lease *l, uint64_t until_ns);
/* 1 when a waiter goes before the holder now (only_aligned: only a waiter
 * whose container runs on another of its cards): the holder hands over
 * then, not at its lease's end, so that a multi-card container's turns
 * begin together on its cards. */
int mosaic_lease_yield(const struct mosaic_lease *l, uint64_t now, int only_aligned);
/* Maps an existing region to look at it (never creates one); NULL if none. */
struct mosaic_region *mosaic_region_peek(const char *path);
/* When the container key holds the region's lease, its end; else 0. */
uint64_t mosaic_region_held_by(const struct mosaic_region *r, uint64_t key, uint64_t now);

/* Tunables (ns). A lease lasts LEASE_NS; a neighbour who wants the card gets
 * it at the holder's next lease end plus its drain; a dead holder's lease
 * expires by itself. */
#define MOSAIC_LEASE_NS 10000000ULL       /* 10 ms */
#define MOSAIC_WAIT_FRESH_NS 100000000ULL /* a waiter that stopped refreshing for 100 ms is gone */
#define MOSAIC_ACTIVE_NS 100000000ULL     /* a tenant idle for 100 ms is no longer active */
#define MOSAIC_FREE_GRACE_NS 5000000ULL   /* after 5 ms any waiter may take a free lease */
#define MOSAIC_SLOT_STALE_NS 10000000000ULL /* a slot silent for 10 s may be reused */
#define MOSAIC_BURST_NS 50000000LL        /* force: budget saved up at most 50 ms x share */
#define MOSAIC_DEBT_FLOOR_NS 200000000LL  /* force: debt carried at most 200 ms */

#endif
