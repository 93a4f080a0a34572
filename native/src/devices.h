/* Which limits apply to a device: the configuration, matched to the CUDA
 * devices (and NVML devices) by UUID first, ordinal second. */
#ifndef MOSAIC_DEVICES_H
#define MOSAIC_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mosaic_cuda.h"

struct mosaic_dev {
	int card;          /* index in the shared file; -1: nothing limits this device */
	uint64_t memory;   /* MOSAIC_UNLIMITED or a byte limit (0 when failing closed) */
	int cores;         /* 1-99: guaranteed share of the card's time, else 0 */
	int force;         /* policy force: cores is also a hard cap */
	int timed;         /* launches take turns on the card (a share, or best effort
			    * on a card the node agent shares) */
	char uuid[41];     /* "GPU-..." as the driver reports it; "" if unknown */
};

const struct mosaic_config *mosaic_config(void);

/* Limits of the card with this UUID ("" if unknown) at this ordinal. */
struct mosaic_dev mosaic_limits_for(const char *uuid, int ordinal);

/* Limits of a CUDA device; NULL when nothing limits it. Resolves the
 * device table on first use (the driver must be initialised). */
const struct mosaic_dev *mosaic_dev_get(CUdevice dev);
/* The same for the calling thread's current context; *dev receives it. */
const struct mosaic_dev *mosaic_current_dev(CUdevice *dev);

/* 1 once any device has a memory limit: frees of untracked pointers skip
 * the allocation map while it is 0. */
extern int mosaic_mem_active;
/* 1 once the devices are known and none has a compute limit: launches then
 * go straight to the driver. */
extern int mosaic_rate_skip;
/* 1 when every device that takes turns does so as best effort (no share). */
extern int mosaic_rate_be_only;
/* Device i (CUdevice ordinal) when its launches take turns, else NULL;
 * and how many devices there are (0 before they are known). */
const struct mosaic_dev *mosaic_dev_timed(int i);
int mosaic_dev_count(void);

/* Path of the node's region for the card with this UUID
 * (<card dir>/<uuid>/lease). The card directory is fixed in a container the
 * node agent prepared (mosaic_prepared); MOSAIC_CARD_DIR may move it only
 * elsewhere. Returns 0, or -1. */
int mosaic_card_region_path(const char *uuid, char *out, size_t n);

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
void mosaic_format_uuid(const CUuuid *u, char out[41]);

#endif
