/* The stub driver's test-only interface (not part of CUDA). Environment:
 *   STUB_DEVICES      number of devices (default 2)
 *   STUB_PHYS_BYTES   physical memory of each device (default 16 GiB)
 *   STUB_KERNEL_US    how long each launch sleeps, as a kernel would run
 *   STUB_SHARED_FILE  file holding the byte counters shared by processes
 *   STUB_UUID_SWAP    1: device 0 gets device 1's UUID and back
 */
#ifndef MOSAIC_STUB_H
#define MOSAIC_STUB_H

#include <stdint.h>

#define STUB_UUID0 "GPU-6c8b3c2e-1f3a-4d9e-9b1a-0a1b2c3d4e5f"
#define STUB_UUID1 "GPU-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

typedef const char *(*stub_last_call_fn)(void);
typedef uint64_t (*stub_counter_fn)(int device);

/* Name of the last driver entry point called ("cuLaunchKernel_ptsz"). */
const char *stub_last_call(void);
/* Bytes allocated on a device now, and the most ever, across processes
 * sharing STUB_SHARED_FILE. */
uint64_t stub_used_bytes(int device);
uint64_t stub_peak_bytes(int device);
/* Nanoseconds launches have slept (this process). */
uint64_t stub_busy_ns(int device);

#endif
