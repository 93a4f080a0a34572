/* Generated tables and the loading of the real driver libraries. */
#define _GNU_SOURCE
#include "hooks.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "log.h"

struct mosaic_real mosaic_real;

const struct mosaic_hook_desc mosaic_hooks[MOSAIC_HOOK_COUNT] = {
#define X(n, b, v, p) {#n, #b, v, p, MOSAIC_LIB_CUDA, (void *)&n, offsetof(struct mosaic_real, n)},
	MOSAIC_CUDA_HOOKS(X)
#undef X
#define X(n, b, v, p) {#n, #b, v, p, MOSAIC_LIB_NVML, (void *)&n, offsetof(struct mosaic_real, n)},
	MOSAIC_NVML_HOOKS(X)
#undef X
};

struct call_desc {
	const char *name;
	size_t off;
};

static const struct call_desc cuda_calls[] = {
#define X(n) {#n, offsetof(struct mosaic_real, n)},
	MOSAIC_CUDA_CALLS(X)
#undef X
};

static const struct call_desc nvml_calls[] = {
#define X(n) {#n, offsetof(struct mosaic_real, n)},
	MOSAIC_NVML_CALLS(X)
#undef X
};

static void **slot_at(size_t off) { return (void **)((char *)&mosaic_real + off); }

void *mosaic_real_get(int id) { return __atomic_load_n(slot_at(mosaic_hooks[id].real_off), __ATOMIC_ACQUIRE); }

void mosaic_real_set_if_unset(int id, void *fn)
{
	void *expected = NULL;
	if (fn == NULL || fn == mosaic_hooks[id].hook)
		return;
	__atomic_compare_exchange_n(slot_at(mosaic_hooks[id].real_off), &expected, fn, 0, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
}

int mosaic_hook_find(const char *name)
{
	for (int i = 0; i < MOSAIC_HOOK_COUNT; i++)
		if (strcmp(mosaic_hooks[i].name, name) == 0)
			return i;
	return -1;
}

static void load_lib(enum mosaic_lib lib, const char *soname, const struct call_desc *calls, size_t ncalls)
{
	/* A handle's own scope holds the driver and its dependencies, never the
	 * preloaded enforcer, so these lookups cannot return our hooks. */
	void *h = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
	if (h == NULL)
		h = dlopen(soname, RTLD_LAZY);
	if (h == NULL) {
		mosaic_log(MOSAIC_LOG_DEBUG, "cannot load %s", soname);
		return;
	}
	for (int i = 0; i < MOSAIC_HOOK_COUNT; i++)
		if (mosaic_hooks[i].lib == lib)
			mosaic_real_set_if_unset(i, mosaic_real_dlsym(h, mosaic_hooks[i].name));
	for (size_t i = 0; i < ncalls; i++) {
		void *p = mosaic_real_dlsym(h, calls[i].name);
		if (p != NULL)
			__atomic_store_n(slot_at(calls[i].off), p, __ATOMIC_RELEASE);
	}
}

static void load_cuda(void)
{
	load_lib(MOSAIC_LIB_CUDA, "libcuda.so.1", cuda_calls, sizeof cuda_calls / sizeof cuda_calls[0]);
}

static void load_nvml(void)
{
	load_lib(MOSAIC_LIB_NVML, "libnvidia-ml.so.1", nvml_calls, sizeof nvml_calls / sizeof nvml_calls[0]);
}

void mosaic_load_real(enum mosaic_lib lib)
{
	static pthread_once_t cuda_once = PTHREAD_ONCE_INIT, nvml_once = PTHREAD_ONCE_INIT;
	if (lib == MOSAIC_LIB_CUDA)
		pthread_once(&cuda_once, load_cuda);
	else
		pthread_once(&nvml_once, load_nvml);
}
