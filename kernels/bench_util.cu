// bench_util.cu — the two ceilings of PERF.md and event timing for `deftree bench`.
//
// DESIGN
//   Ceilings, measured in the same run as the kernels they judge:
//     copy bandwidth  a large device-to-device cudaMemcpyAsync, counting bytes
//                     read + written, median of several copies;
//     fp16 matmul     cublasGemmEx n x n x n, fp16 in/out, fp32 accumulate, on
//                     random data (never zeros: METHOD.md), median of several.
//   Timing (cuda_bench_time): the function under test is enqueued `reps` times
//   behind a spin kernel that keeps the GPU busy while the host runs ahead, with
//   an event between consecutive enqueues; so each interval is the GPU time of
//   one launch sequence (inter-kernel gaps included, host launch cost excluded),
//   and the median over the intervals is reported.  A second figure times each
//   repetition alone (record, enqueue, record, synchronize), as PyTorch scripts
//   usually do; it includes the launch latency.
#include "config.h"

extern "C" {
#include "common.h"
}

#include <algorithm>
#include <stdint.h>
#include <string.h>
#include <vector>

#include <cublas_v2.h>
#include <dlfcn.h>

#define DT_STR_(x) #x
#define DT_STR(x) DT_STR_(x)
#include <cuda_fp16.h>

#include "cuda_common.h"
#include "kernels.h"

// ---- random fill

static __device__ __forceinline__ uint32_t bu_hash(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x;
}

static __global__ void bu_fill_u32(uint32_t *p, size_t n, uint64_t seed)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		p[i] = bu_hash(seed * 0x9e3779b97f4a7c15ull + i);
}

static __global__ void bu_fill_f16(__half *p, size_t n, uint64_t seed)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		uint32_t h = bu_hash(seed * 0x9e3779b97f4a7c15ull + i);
		p[i] = __float2half((float)(h >> 8) * (2.0f / 16777216.0f) - 1.0f);
	}
}

// ---- spin: keeps the stream busy while the host enqueues ahead

static __global__ void bu_spin(uint64_t ns)
{
	uint64_t t0, t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
	do {
		asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	} while (t - t0 < ns);
}

static double bu_median(std::vector<float> &v)
{
	std::sort(v.begin(), v.end());
	size_t n = v.size();
	return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + v[n / 2]);
}

// ---- copy bandwidth

extern "C" int cuda_bench_copy_bw(size_t bytes, int reps, double *bytes_per_s, char *err)
{
	void *a = NULL, *b = NULL;
	cudaEvent_t e0 = NULL, e1 = NULL;
	std::vector<float> ms;
	int rc = 0;
	bytes &= ~(size_t)15;
	if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
		cudaGetLastError();
		cudaFree(a);
		rc = dt_err(err, "copy bandwidth: cannot allocate 2 x %zu bytes", bytes);
		return DT_ERR_DEVICE;
	}
	auto body = [&]() -> int {
		bu_fill_u32<<<1024, 256>>>((uint32_t *)a, bytes / 4, 1);
		CUDA_CHECK_LAUNCH();
		CUDA_CHECK(cudaEventCreate(&e0));
		CUDA_CHECK(cudaEventCreate(&e1));
		for (int i = 0; i < 3; i++)
			CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
		for (int i = 0; i < reps; i++) {
			float t = 0;
			CUDA_CHECK(cudaEventRecord(e0, 0));
			CUDA_CHECK(cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes,
						   cudaMemcpyDeviceToDevice, 0));
			CUDA_CHECK(cudaEventRecord(e1, 0));
			CUDA_CHECK(cudaEventSynchronize(e1));
			CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
			ms.push_back(t);
		}
		return 0;
	};
	rc = body();
	if (rc == 0)
		*bytes_per_s = 2.0 * (double)bytes / (bu_median(ms) * 1e-3);
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	cudaFree(a);
	cudaFree(b);
	return rc;
}

// ---- fp16 matmul rate (cuBLAS)

/* cuBLAS is opened here, when the matmul rate is measured, not linked: its
 * libraries are large and their initialisers cost every deftree run about
 * 150 MiB of resident memory, while only `bench attn` needs them. */
struct cublas_fns {
	decltype(&cublasCreate_v2) create;
	decltype(&cublasDestroy_v2) destroy;
	cublasStatus_t (*gemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
			       const void *, const void *, cudaDataType, int, const void *, cudaDataType,
			       int, const void *, void *, cudaDataType, int, cublasComputeType_t,
			       cublasGemmAlgo_t);
};

static int cublas_open(struct cublas_fns *f, char *err)
{
	static void *lib;
	if (!lib) {
		const char *names[] = { "libcublas.so." DT_STR(CUBLAS_VER_MAJOR), "libcublas.so" };
		for (const char *nm : names)
			if ((lib = dlopen(nm, RTLD_NOW | RTLD_LOCAL)) != NULL)
				break;
		if (!lib)
			return dt_err(err, "cannot open cuBLAS (libcublas.so.%d): %s", CUBLAS_VER_MAJOR,
				      dlerror()),
			       DT_ERR_DEVICE;
	}
	f->create = (decltype(f->create))dlsym(lib, "cublasCreate_v2");
	f->destroy = (decltype(f->destroy))dlsym(lib, "cublasDestroy_v2");
	f->gemm = (decltype(f->gemm))dlsym(lib, "cublasGemmEx");
	if (!f->create || !f->destroy || !f->gemm)
		return dt_err(err, "cuBLAS: missing cublasCreate_v2 / cublasDestroy_v2 / cublasGemmEx"),
		       DT_ERR_DEVICE;
	return 0;
}

extern "C" int cuda_bench_gemm_rate(int n, int reps, double *flop_per_s, char *err)
{
	struct cublas_fns cb;
	if (cublas_open(&cb, err))
		return DT_ERR_DEVICE;
	__half *a = NULL, *b = NULL, *c = NULL;
	cublasHandle_t h = NULL;
	cudaEvent_t e0 = NULL, e1 = NULL;
	std::vector<float> ms;
	size_t nn = (size_t)n * n;
	auto body = [&]() -> int {
		CUDA_CHECK(cudaMalloc(&a, nn * sizeof(__half)));
		CUDA_CHECK(cudaMalloc(&b, nn * sizeof(__half)));
		CUDA_CHECK(cudaMalloc(&c, nn * sizeof(__half)));
		bu_fill_f16<<<1024, 256>>>(a, nn, 2);
		CUDA_CHECK_LAUNCH();
		bu_fill_f16<<<1024, 256>>>(b, nn, 3);
		CUDA_CHECK_LAUNCH();
		if (cb.create(&h) != CUBLAS_STATUS_SUCCESS)
			return dt_err(err, "cublasCreate failed"), DT_ERR_DEVICE;
		CUDA_CHECK(cudaEventCreate(&e0));
		CUDA_CHECK(cudaEventCreate(&e1));
		const float alpha = 1.0f, beta = 0.0f;
		for (int i = 0; i < reps + 3; i++) {
			float t = 0;
			CUDA_CHECK(cudaEventRecord(e0, 0));
			cublasStatus_t st = cb.gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a,
							 CUDA_R_16F, n, b, CUDA_R_16F, n, &beta, c,
							 CUDA_R_16F, n, CUBLAS_COMPUTE_32F,
							 CUBLAS_GEMM_DEFAULT);
			if (st != CUBLAS_STATUS_SUCCESS)
				return dt_err(err, "cublasGemmEx failed (status %d)", (int)st), DT_ERR_DEVICE;
			CUDA_CHECK(cudaEventRecord(e1, 0));
			CUDA_CHECK(cudaEventSynchronize(e1));
			CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
			if (i >= 3)
				ms.push_back(t);
		}
		return 0;
	};
	int rc = body();
	if (rc == 0)
		*flop_per_s = 2.0 * (double)n * n * n / (bu_median(ms) * 1e-3);
	if (h)
		cb.destroy(h);
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	cudaFree(a);
	cudaFree(b);
	cudaFree(c);
	return rc;
}

// ---- timing of an enqueued sequence

/* How many repetitions run behind one spin (the host must enqueue them all
 * before the spin ends: a few microseconds each). */
#define BU_BATCH 50
#define BU_SPIN_NS 4000000ull /* 4 ms of head start for the host */

extern "C" int cuda_bench_time(cuda_bench_fn fn, void *ctx, int warmup, int reps,
			       struct cuda_bench_times *out, char *err)
{
	std::vector<cudaEvent_t> ev(BU_BATCH + 1, nullptr);
	std::vector<float> ahead, alone;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	auto body = [&]() -> int {
		for (auto &e : ev)
			CUDA_CHECK(cudaEventCreate(&e));
		int it = 0;
		for (int i = 0; i < warmup; i++)
			if (fn(ctx, it++, err))
				return DT_ERR_DEVICE;
		CUDA_CHECK(cudaDeviceSynchronize());
		// run-ahead intervals
		for (int done = 0; done < reps;) {
			int n = std::min(BU_BATCH, reps - done);
			bu_spin<<<1, 1>>>(BU_SPIN_NS);
			CUDA_CHECK_LAUNCH();
			CUDA_CHECK(cudaEventRecord(ev[0], 0));
			for (int i = 0; i < n; i++) {
				if (fn(ctx, it++, err))
					return DT_ERR_DEVICE;
				CUDA_CHECK(cudaEventRecord(ev[i + 1], 0));
			}
			CUDA_CHECK(cudaEventSynchronize(ev[n]));
			for (int i = 0; i < n; i++) {
				float t = 0;
				CUDA_CHECK(cudaEventElapsedTime(&t, ev[i], ev[i + 1]));
				ahead.push_back(t);
			}
			done += n;
		}
		// each repetition alone
		int n_alone = std::max(5, reps / 4);
		for (int i = 0; i < n_alone; i++) {
			float t = 0;
			CUDA_CHECK(cudaEventRecord(ev[0], 0));
			if (fn(ctx, it++, err))
				return DT_ERR_DEVICE;
			CUDA_CHECK(cudaEventRecord(ev[1], 0));
			CUDA_CHECK(cudaEventSynchronize(ev[1]));
			CUDA_CHECK(cudaEventElapsedTime(&t, ev[0], ev[1]));
			alone.push_back(t);
		}
		return 0;
	};
	rc = body();
	if (rc == 0) {
		out->median_s = bu_median(ahead) * 1e-3;
		out->min_s = *std::min_element(ahead.begin(), ahead.end()) * 1e-3;
		out->max_s = *std::max_element(ahead.begin(), ahead.end()) * 1e-3;
		out->median_alone_s = bu_median(alone) * 1e-3;
		out->n = (int)ahead.size();
	}
	for (auto e : ev)
		if (e)
			cudaEventDestroy(e);
	return rc;
}
