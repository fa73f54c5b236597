/*
 * backend_impl.h — what backend.c (the interface and the cpu backend) and
 * backend_cuda.c (the cuda backend) share.  Not for other modules.
 */
#ifndef DT_BACKEND_IMPL_H
#define DT_BACKEND_IMPL_H

#include "backend.h"

struct backend_ops {
	int (*set_plan)(struct backend *b, const struct treeplan_flat *f, int algo, char *err);
	int (*store)(struct backend *b, int32_t layer, int32_t n, const int32_t *page, const int32_t *slot,
		     const float *k, const float *v, char *err);
	int (*attend)(struct backend *b, int32_t layer, const float *q, float *out, char *err);
	void (*free)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	struct backend_params p;
	struct backend_info info;
	struct backend_counters cnt;
	void *impl;
};

/* backend_cuda.c: fills b->ops, b->impl and b->info (kind and params set). */
int backend_cuda_init(struct backend *b, char *err);
bool backend_cuda_available(char *why);

#endif
