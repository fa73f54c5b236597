/* cuda_common.h — CUDA_CHECK and launch checks shared by the .cu files. */
#ifndef DT_CUDA_COMMON_H
#define DT_CUDA_COMMON_H

#include <cuda_runtime.h>
#include <stdio.h>

#include "common.h"

/* Evaluates a CUDA runtime call; on failure formats "#stmt: error (file:line)"
 * into err and returns DT_ERR_DEVICE from the enclosing function. */
#define CUDA_CHECK(stmt)                                                                  \
	do {                                                                              \
		cudaError_t e_ = (stmt);                                                  \
		if (e_ != cudaSuccess) {                                                  \
			dt_err(err, "%s: %s (%s:%d)", #stmt, cudaGetErrorString(e_), __FILE__, \
			       __LINE__);                                                 \
			return DT_ERR_DEVICE;                                             \
		}                                                                         \
	} while (0)

/* After a kernel launch. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#endif
