/* This process's live allocations: what each one was charged, so that its
 * free gives back exactly that. Lock-striped hash, O(1). */
#ifndef MOSAIC_ALLOCMAP_H
#define MOSAIC_ALLOCMAP_H

#include <stdint.h>

enum mosaic_alloc_kind { MOSAIC_KIND_PTR, MOSAIC_KIND_HANDLE, MOSAIC_KIND_ARRAY, MOSAIC_KIND_MIPMAP };

/* Returns 0, or -1 when out of host memory. */
int mosaic_map_put(uint64_t key, enum mosaic_alloc_kind kind, int card, uint64_t bytes);
/* Removes the entry. Returns 0 with its card and bytes, or -1 if absent. */
int mosaic_map_take(uint64_t key, enum mosaic_alloc_kind kind, int *card, uint64_t *bytes);

#endif
