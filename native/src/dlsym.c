/* Interception: our dlsym, and cuGetProcAddress, hand out the hook of the
 * exact ABI variant that the caller would have got from the driver. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <string.h>

#include "hooks.h"

#define EXPORT __attribute__((visibility("default")))

typedef void *(*dlsym_fn)(void *, const char *);
static dlsym_fn real_dlsym_ptr;

/* Since glibc 2.34 dlsym lives in libc with two versions; asking dlvsym
 * (which we do not override) for it is the supported way to reach it. */
static dlsym_fn real_dlsym_get(void)
{
	dlsym_fn f = __atomic_load_n(&real_dlsym_ptr, __ATOMIC_ACQUIRE);
	if (f != NULL)
		return f;
	f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
	if (f == NULL)
		f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
	__atomic_store_n(&real_dlsym_ptr, f, __ATOMIC_RELEASE);
	return f;
}

void *mosaic_real_dlsym(void *handle, const char *name)
{
	dlsym_fn f = real_dlsym_get();
	return f == NULL ? NULL : f(handle, name);
}

/* RTLD_NEXT is relative to the caller, and our dlsym is now the caller:
 * look in the objects loaded after the real caller, for the first that
 * defines the symbol itself. */
static void *next_after(const void *caller, const char *name)
{
	Dl_info info;
	struct link_map *lm = NULL;
	if (dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) == 0 || lm == NULL)
		return mosaic_real_dlsym(RTLD_NEXT, name);
	for (struct link_map *m = lm->l_next; m != NULL; m = m->l_next) {
		if (m->l_name == NULL || strstr(m->l_name, "linux-vdso") != NULL)
			continue;
		void *p = mosaic_real_dlsym(m, name);
		struct link_map *owner = NULL;
		if (p != NULL && dladdr1(p, &info, (void **)&owner, RTLD_DL_LINKMAP) != 0 && owner == m)
			return p;
	}
	return NULL;
}

static int maybe_hooked(const char *name)
{
	return name != NULL && ((name[0] == 'c' && name[1] == 'u') || strncmp(name, "nvml", 4) == 0);
}

EXPORT void *dlsym(void *handle, const char *name)
{
	const void *caller = __builtin_return_address(0);
	int id = maybe_hooked(name) ? mosaic_hook_find(name) : -1;
	if (id < 0)
		return handle == RTLD_NEXT ? next_after(caller, name) : mosaic_real_dlsym(handle, name);
	void *p = handle == RTLD_NEXT ? next_after(caller, name) : mosaic_real_dlsym(handle, name);
	/* Found ourselves first in the global scope: what the real dlsym gives,
	 * with the real function taken from behind us. */
	if (p == mosaic_hooks[id].hook)
		p = mosaic_real_dlsym(RTLD_NEXT, name), caller = NULL;
	if (p != NULL)
		mosaic_real_set_if_unset(id, p);
	return p != NULL || caller == NULL ? mosaic_hooks[id].hook : NULL;
}

/* The hook for what the driver returned: the variant whose real function is
 * that very pointer; failing that, the variant the table gives for this
 * version and stream flag. */
static void *wrap(const char *symbol, void *fn, int version, cuuint64_t flags)
{
	if (symbol == NULL || fn == NULL)
		return fn;
	mosaic_load_real(MOSAIC_LIB_CUDA);
	int ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0, best = -1;
	for (int i = 0; i < MOSAIC_HOOK_COUNT; i++) {
		const struct mosaic_hook_desc *h = &mosaic_hooks[i];
		if (h->lib != MOSAIC_LIB_CUDA || strcmp(h->base, symbol) != 0)
			continue;
		if (mosaic_real_get(i) == fn)
			return h->hook;
		if (h->version > version || h->ptds > ptds)
			continue;
		if (best < 0 || h->ptds > mosaic_hooks[best].ptds ||
		    (h->ptds == mosaic_hooks[best].ptds && h->version > mosaic_hooks[best].version))
			best = i;
	}
	if (best < 0)
		return fn;
	mosaic_real_set_if_unset(best, fn);
	return mosaic_hooks[best].hook;
}

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
	__typeof__(&cuGetProcAddress) real = CU_REAL(cuGetProcAddress);
	if (real == NULL)
		return CUDA_ERROR_NOT_INITIALIZED;
	CUresult r = real(symbol, pfn, cudaVersion, flags);
	if (r == CUDA_SUCCESS && pfn != NULL)
		*pfn = wrap(symbol, *pfn, cudaVersion, flags);
	return r;
}

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
				    CUdriverProcAddressQueryResult *status)
{
	__typeof__(&cuGetProcAddress_v2) real = CU_REAL(cuGetProcAddress_v2);
	if (real == NULL)
		return CUDA_ERROR_NOT_INITIALIZED;
	CUresult r = real(symbol, pfn, cudaVersion, flags, status);
	if (r == CUDA_SUCCESS && pfn != NULL)
		*pfn = wrap(symbol, *pfn, cudaVersion, flags);
	return r;
}
