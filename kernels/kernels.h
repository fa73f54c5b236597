/*
 * kernels.h — the C entry points of the CUDA kernels (the kernels directory).
 * Every function returns 0 on success or a negative dt_status with a message
 * in err (DT_ERR_LEN bytes).  Only built with CUDA (HAVE_CUDA); the engine
 * reaches these through the backend interface, never directly from the UI.
 */
#ifndef DT_KERNELS_H
#define DT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cuda_device_info {
	char name[128];
	int cc_major, cc_minor;
	int n_sm;
	size_t mem_total; /* bytes */
	size_t l2_bytes;
};

/* Number of usable CUDA devices (0 when none or no driver). */
int cuda_device_count(void);
/* Facts about device `dev`; 0 on success. */
int cuda_device_query(int dev, struct cuda_device_info *out, char *err);

#ifdef __cplusplus
}
#endif

#endif
