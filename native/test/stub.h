/* The stub driver's test-only interface (not part of CUDA). Environment:
 *   STUB_DEVICES      number of devices (default 2)
 *   STUB_PHYS_BYTES   physical memory of each device (default 16 GiB)
 *   STUB_KERNEL_US    how long a kernel runs (gridDimX > 1: that many us instead)
 *   STUB_SHARED_FILE  file holding the byte counters shared by processes
 *   STUB_UUID_SWAP    1: device 0 gets device 1's UUID and back
 *   STUB_LAUNCH_LATENCY_US  how long after its launch call a kernel on an idle
 *                     stream starts (an event recorded there completes at once)
 *   STUB_LAUNCH_SYNC_EVERY  every Nth launch waits for the device to go idle first
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
/* Nanoseconds during which this process's work ran on a device (the union
 * over its streams), in all or clipped to [t0, t1] of CLOCK_MONOTONIC. */
uint64_t stub_busy_ns(int device);
uint64_t stub_busy_between(int device, uint64_t t0, uint64_t t1);
typedef uint64_t (*stub_between_fn)(int device, uint64_t t0, uint64_t t1);
/* Calls that would have invalidated a graph capture (an event query or
 * synchronisation from a thread not in relaxed mode while a global-mode
 * capture runs, or a query of an event recorded in a capture), and events
 * recorded on capturing streams. */
uint64_t stub_capture_violations(void);
uint64_t stub_captured_events(void);
typedef uint64_t (*stub_count_fn)(void);
/* Stream holds (cuStreamWaitValue32) nobody let go of within a second. */
uint64_t stub_stuck_holds(void);

#endif
