// device.cu — device discovery for the CUDA backend.
#include "config.h"

#include <string.h>

#include "cuda_common.h"
#include "kernels.h"

extern "C" int cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError(); /* clear the sticky "no device" error */
		return 0;
	}
	return n;
}

extern "C" int cuda_device_query(int dev, struct cuda_device_info *out, char *err)
{
	cudaDeviceProp p;
	CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", p.name);
	out->cc_major = p.major;
	out->cc_minor = p.minor;
	out->n_sm = p.multiProcessorCount;
	out->mem_total = p.totalGlobalMem;
	out->l2_bytes = (size_t)p.l2CacheSize;
	return 0;
}

extern "C" int cuda_set_device(int dev, char *err)
{
	CUDA_CHECK(cudaSetDevice(dev));
	return 0;
}

// ---- a GPU stopwatch
struct cuda_timer {
	cudaEvent_t a, b;
};

extern "C" struct cuda_timer *cuda_timer_new(char *err)
{
	struct cuda_timer *t = new cuda_timer();
	if (cudaEventCreate(&t->a) != cudaSuccess || cudaEventCreate(&t->b) != cudaSuccess) {
		cudaError_t e = cudaGetLastError();
		dt_err(err, "cudaEventCreate: %s", cudaGetErrorString(e));
		delete t;
		return NULL;
	}
	return t;
}

extern "C" void cuda_timer_free(struct cuda_timer *t)
{
	if (!t)
		return;
	cudaEventDestroy(t->a);
	cudaEventDestroy(t->b);
	delete t;
}

extern "C" int cuda_timer_start(struct cuda_timer *t, char *err)
{
	CUDA_CHECK(cudaEventRecord(t->a, 0));
	return 0;
}

extern "C" int cuda_timer_stop(struct cuda_timer *t, char *err)
{
	CUDA_CHECK(cudaEventRecord(t->b, 0));
	return 0;
}

extern "C" double cuda_timer_ns(struct cuda_timer *t, char *err)
{
	float ms = 0;
	cudaError_t e = cudaEventSynchronize(t->b);
	if (e == cudaSuccess)
		e = cudaEventElapsedTime(&ms, t->a, t->b);
	if (e != cudaSuccess) {
		cudaGetLastError();
		dt_err(err, "cuda timer: %s", cudaGetErrorString(e));
		return -1;
	}
	return (double)ms * 1e6;
}
