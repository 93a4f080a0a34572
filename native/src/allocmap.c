#include "allocmap.h"

#include <pthread.h>
#include <stdlib.h>

#define STRIPES 256
#define BUCKETS_PER_STRIPE 64

struct node {
	struct node *next;
	uint64_t key;
	uint64_t bytes;
	int kind;
	int card;
};

static struct stripe {
	pthread_mutex_t mu;
	struct node *b[BUCKETS_PER_STRIPE];
} stripes[STRIPES];

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&stripes[i].mu, NULL);
}

static uint64_t hash(uint64_t key, int kind)
{
	uint64_t h = (key ^ ((uint64_t)kind << 61)) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

int mosaic_map_put(uint64_t key, enum mosaic_alloc_kind kind, int card, uint64_t bytes)
{
	pthread_once(&once, init);
	struct node *n = malloc(sizeof *n);
	if (n == NULL)
		return -1;
	uint64_t h = hash(key, kind);
	struct stripe *s = &stripes[h % STRIPES];
	struct node **b = &s->b[(h / STRIPES) % BUCKETS_PER_STRIPE];
	n->key = key;
	n->kind = kind;
	n->card = card;
	n->bytes = bytes;
	pthread_mutex_lock(&s->mu);
	n->next = *b;
	*b = n;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int mosaic_map_take(uint64_t key, enum mosaic_alloc_kind kind, int *card, uint64_t *bytes)
{
	pthread_once(&once, init);
	uint64_t h = hash(key, kind);
	struct stripe *s = &stripes[h % STRIPES];
	struct node *found = NULL;
	pthread_mutex_lock(&s->mu);
	for (struct node **p = &s->b[(h / STRIPES) % BUCKETS_PER_STRIPE]; *p != NULL; p = &(*p)->next) {
		if ((*p)->key == key && (*p)->kind == (int)kind) {
			found = *p;
			*p = found->next;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (found == NULL)
		return -1;
	*card = found->card;
	*bytes = found->bytes;
	free(found);
	return 0;
}
