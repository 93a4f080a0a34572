/* The enforcer is preloaded into every process of every image, so it must
 * load under the oldest glibc a user's image has: 2.17 (CentOS 7, most CUDA
 * 11 images). Since glibc 2.34 the libdl and libpthread functions live in
 * libc under new versions; a build on a newer glibc would bind them there
 * and fail to load anywhere older. Bind the original versions instead (they
 * stay in every later libc as compatibility symbols) and link libdl and
 * libpthread, where glibc before 2.34 defines them. Included in every
 * source file by the Makefile; `make test` checks that no imported symbol
 * needs a version above GLIBC_2.17. */
#ifndef MOSAIC_GLIBC_FLOOR_H
#define MOSAIC_GLIBC_FLOOR_H

#if defined(__x86_64__)
#define MOSAIC_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define MOSAIC_GLIBC_BASE "GLIBC_2.17"
#endif

#ifdef MOSAIC_GLIBC_BASE
__asm__(".symver dlopen,dlopen@" MOSAIC_GLIBC_BASE);
__asm__(".symver dlvsym,dlvsym@" MOSAIC_GLIBC_BASE);
__asm__(".symver dlerror,dlerror@" MOSAIC_GLIBC_BASE);
__asm__(".symver pthread_once,pthread_once@" MOSAIC_GLIBC_BASE);
__asm__(".symver pthread_atfork,pthread_atfork@" MOSAIC_GLIBC_BASE);
__asm__(".symver pthread_create,pthread_create@" MOSAIC_GLIBC_BASE);
__asm__(".symver pthread_mutex_trylock,pthread_mutex_trylock@" MOSAIC_GLIBC_BASE);
__asm__(".symver pthread_attr_setdetachstate,pthread_attr_setdetachstate@" MOSAIC_GLIBC_BASE);
#if defined(__x86_64__)
__asm__(".symver dladdr1,dladdr1@GLIBC_2.3.3");
#else
__asm__(".symver dladdr1,dladdr1@" MOSAIC_GLIBC_BASE);
#endif
#endif

#endif
