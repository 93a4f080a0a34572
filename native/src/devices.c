#define _GNU_SOURCE
#include "devices.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "hooks.h"
#include "lease.h"
#include "log.h"
#include "shared.h"

#define MAX_DEVS 64

static struct mosaic_config cfg;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;
static struct mosaic_dev devs[MAX_DEVS];
static int resolved;
static pthread_mutex_t resolve_mu = PTHREAD_MUTEX_INITIALIZER;
int mosaic_mem_active;
int mosaic_rate_skip;
int mosaic_rate_be_only;
static int ndevs;

static void load_config(void)
{
	mosaic_load_config(&cfg);
	if (cfg.fail_closed)
		__atomic_store_n(&mosaic_mem_active, 1, __ATOMIC_RELEASE);
}

const struct mosaic_config *mosaic_config(void)
{
	pthread_once(&cfg_once, load_config);
	return &cfg;
}

void mosaic_format_uuid(const CUuuid *u, char out[41])
{
	const unsigned char *b = (const unsigned char *)u->bytes;
	snprintf(out, 41, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static struct mosaic_dev deny(int ordinal)
{
	struct mosaic_dev d = {ordinal >= 0 && ordinal < MOSAIC_MAX_CARDS ? ordinal : 0, 0, 0, 0, 0, ""};
	return d;
}

int mosaic_card_region_path(const char *uuid, char *out, size_t n)
{
	const char *dir = MOSAIC_DEFAULT_CARD_DIR, *env = getenv("MOSAIC_CARD_DIR");
	if (env != NULL && env[0] != '\0' && !mosaic_prepared())
		dir = env;
	/* A UUID names a file: nothing that could leave the directory. */
	if (uuid[0] == '\0' || strchr(uuid, '/') != NULL || strcmp(uuid, "..") == 0 || strcmp(uuid, ".") == 0)
		return -1;
	int k = snprintf(out, n, "%s/%s/%s", dir, uuid, MOSAIC_REGION_FILE);
	return k > 0 && (size_t)k < n ? 0 : -1;
}

/* 1 when the node agent shares this card through a region: a container
 * without a share then takes turns as best effort. */
static int shared_card(const char *uuid)
{
	char path[512];
	if (mosaic_card_region_path(uuid, path, sizeof path) != 0)
		return 0;
	*strrchr(path, '/') = '\0';
	return access(path, F_OK) == 0;
}

struct mosaic_dev mosaic_limits_for(const char *uuid, int ordinal)
{
	const struct mosaic_config *c = mosaic_config();
	struct mosaic_dev d = {-1, MOSAIC_UNLIMITED, 0, 0, 0, ""};
	if (c->fail_closed)
		return deny(ordinal);
	const struct mosaic_card *card = NULL;
	int idx = -1;
	for (int i = 0; uuid != NULL && uuid[0] != '\0' && i < MOSAIC_MAX_CARDS && card == NULL; i++)
		if (c->cards[i].present && strcmp(c->cards[i].uuid, uuid) == 0)
			card = &c->cards[i], idx = i;
	if (card == NULL && ordinal >= 0 && ordinal < MOSAIC_MAX_CARDS) {
		card = mosaic_config_card(c, ordinal);
		idx = ordinal;
	}
	if (card == NULL) {
		for (int i = 0; i < MOSAIC_MAX_CARDS; i++)
			if (c->cards[i].present) /* the node agent did not grant this device */
				return deny(ordinal);
		return d;
	}
	d.memory = card->memory;
	d.cores = c->policy != MOSAIC_POLICY_DISABLE && card->cores > 0 && card->cores < 100 ? card->cores : 0;
	d.force = c->policy == MOSAIC_POLICY_FORCE;
	d.timed = d.cores != 0 || (c->policy != MOSAIC_POLICY_DISABLE && card->cores == 0 && uuid != NULL &&
				   uuid[0] != '\0' && shared_card(uuid));
	d.card = (d.memory != MOSAIC_UNLIMITED || d.timed) ? idx : -1;
	if (uuid != NULL)
		snprintf(d.uuid, sizeof d.uuid, "%s", uuid);
	return d;
}

static int resolve(void)
{
	pthread_mutex_lock(&resolve_mu);
	int n = 0, rc = -1, rate_any = 0, share_any = 0;
	if (resolved) {
		rc = 0;
		goto out;
	}
	if (CU_REAL(cuDeviceGetCount) == NULL || CU_REAL(cuDeviceGet) == NULL ||
	    mosaic_real.cuDeviceGetCount(&n) != CUDA_SUCCESS)
		goto out;
	for (int i = 0; i < MAX_DEVS; i++)
		devs[i].card = -1;
	for (int i = 0; i < n; i++) {
		CUdevice dev;
		CUuuid u;
		char uuid[41] = "";
		if (mosaic_real.cuDeviceGet(&dev, i) != CUDA_SUCCESS || dev < 0 || dev >= MAX_DEVS)
			continue;
		__typeof__(mosaic_real.cuDeviceGetUuid) get_uuid =
			CU_REAL(cuDeviceGetUuid_v2) ? mosaic_real.cuDeviceGetUuid_v2 : mosaic_real.cuDeviceGetUuid;
		if (get_uuid != NULL && get_uuid(&u, dev) == CUDA_SUCCESS)
			mosaic_format_uuid(&u, uuid);
		devs[dev] = mosaic_limits_for(uuid, i);
		if (devs[dev].memory != MOSAIC_UNLIMITED)
			__atomic_store_n(&mosaic_mem_active, 1, __ATOMIC_RELEASE);
		if (devs[dev].timed)
			rate_any = 1;
		if (devs[dev].cores != 0)
			share_any = 1;
		if (dev + 1 > ndevs)
			ndevs = dev + 1;
		mosaic_log(MOSAIC_LOG_INFO, "device %d %s: card %d memory %llu cores %d", i, uuid, devs[dev].card,
			   (unsigned long long)devs[dev].memory, devs[dev].cores);
	}
	/* Join the container's accounting now, at the first use of the driver,
	 * rather than on the first allocation. */
	if (__atomic_load_n(&mosaic_mem_active, __ATOMIC_ACQUIRE) || rate_any)
		mosaic_shm_attach();
	__atomic_store_n(&mosaic_rate_be_only, rate_any && !share_any, __ATOMIC_RELEASE);
	__atomic_store_n(&mosaic_rate_skip, !rate_any, __ATOMIC_RELEASE);
	__atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
	rc = 0;
out:
	pthread_mutex_unlock(&resolve_mu);
	return rc;
}

const struct mosaic_dev *mosaic_dev_get(CUdevice dev)
{
	static struct mosaic_dev closed;
	if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE) && resolve() != 0) {
		if (mosaic_config()->fail_closed) {
			closed = deny(0);
			return &closed;
		}
		return NULL;
	}
	if (dev < 0 || dev >= MAX_DEVS || devs[dev].card < 0)
		return NULL;
	return &devs[dev];
}

const struct mosaic_dev *mosaic_dev_timed(int i)
{
	if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE) || i < 0 || i >= ndevs || i >= MAX_DEVS)
		return NULL;
	return devs[i].timed && devs[i].card >= 0 ? &devs[i] : NULL;
}

int mosaic_dev_count(void) { return __atomic_load_n(&resolved, __ATOMIC_ACQUIRE) ? ndevs : 0; }

const struct mosaic_dev *mosaic_current_dev(CUdevice *dev)
{
	if (CU_REAL(cuCtxGetDevice) == NULL || mosaic_real.cuCtxGetDevice(dev) != CUDA_SUCCESS)
		return NULL;
	return mosaic_dev_get(*dev);
}
