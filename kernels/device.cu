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
