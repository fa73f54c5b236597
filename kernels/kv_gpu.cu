// kv_gpu.cu — device KV pages and the small memory helpers of kernels.h.
//
// DESIGN
//   The device KV mirror has the host pool's page ids and index order
//   (src/kvpool.h): element (layer, page, head, slot, d) of copy c sits at
//       k[c * n_layer + layer][((page * n_kv_heads + head) * page_size + slot) * head_dim + d]
//   in fp16 or bf16, one allocation per (copy, layer) for K and one for V.
//   The attention kernels address a token by its "row" page * n_kv_heads *
//   page_size + slot (in head_dim units); head h of that token is row +
//   h * page_size.  Uploads are incremental: a run of slots of one page is
//   rounded on the host and sent with one 2-D copy (one row per KV head).
#include "config.h"

extern "C" {
#include "common.h"
}

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attn_common.cuh"
#include "cuda_common.h"
#include "kernels.h"

// ---- host rounding

static uint16_t kv_f32_to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return 0x7fc0; /* NaN */
	u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
	return (uint16_t)(u >> 16);
}

static float kv_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static void kv_convert(uint16_t *dst, const float *src, size_t n, enum cuda_dtype t)
{
	if (t == CUDA_DT_BF16)
		for (size_t i = 0; i < n; i++)
			dst[i] = kv_f32_to_bf16(src[i]);
	else
		for (size_t i = 0; i < n; i++) {
			__half h = __float2half_rn(src[i]);
			memcpy(&dst[i], &h, 2);
		}
}

extern "C" void cuda_round_host(float *x, size_t n, enum cuda_dtype t)
{
	for (size_t i = 0; i < n; i++) {
		if (t == CUDA_DT_BF16) {
			x[i] = kv_bf16_to_f32(kv_f32_to_bf16(x[i]));
		} else {
			__half h = __float2half_rn(x[i]);
			x[i] = __half2float(h);
		}
	}
}

extern "C" const char *cuda_dtype_name(enum cuda_dtype t)
{
	return t == CUDA_DT_BF16 ? "bf16" : "fp16";
}

// ---- memory helpers

extern "C" void *cuda_malloc(size_t bytes, char *err)
{
	void *p = NULL;
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		cudaGetLastError();
		dt_err(err, "cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
		return NULL;
	}
	return p;
}

extern "C" void cuda_free(void *p)
{
	if (p)
		cudaFree(p);
}

extern "C" int cuda_upload(void *dst, const void *src, size_t bytes, char *err)
{
	CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
	return 0;
}

extern "C" void *cuda_host_alloc(size_t bytes, char *err)
{
	void *p = NULL;
	cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		cudaGetLastError();
		dt_err(err, "cudaMallocHost(%zu): %s", bytes, cudaGetErrorString(e));
		return NULL;
	}
	return p;
}

extern "C" void cuda_host_free(void *p)
{
	if (p)
		cudaFreeHost(p);
}

extern "C" int cuda_upload_async(void *dst, const void *src, size_t bytes, char *err)
{
	CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, 0));
	return 0;
}

extern "C" int cuda_download_async(void *dst, const void *src, size_t bytes, char *err)
{
	CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, 0));
	return 0;
}

extern "C" int cuda_download(void *dst, const void *src, size_t bytes, char *err)
{
	CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
	return 0;
}

extern "C" int cuda_upload_convert(void *dst, const float *src, size_t n, enum cuda_dtype t,
				   char *err)
{
	std::vector<uint16_t> tmp(n);
	kv_convert(tmp.data(), src, n, t);
	CUDA_CHECK(cudaMemcpy(dst, tmp.data(), n * 2, cudaMemcpyHostToDevice));
	return 0;
}

template <typename T>
static __global__ void kv_convert_kernel(T *dst, const float *src, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		dst[i] = attn_from_float<T>(src[i]);
}

extern "C" int cuda_convert(void *dst, const float *src, size_t n, enum cuda_dtype t, char *err)
{
	if (n == 0)
		return 0;
	int blocks = (int)DT_MIN((n + 255) / 256, (size_t)1024);
	if (t == CUDA_DT_BF16)
		kv_convert_kernel<<<blocks, 256>>>((__nv_bfloat16 *)dst, src, n);
	else
		kv_convert_kernel<<<blocks, 256>>>((__half *)dst, src, n);
	CUDA_CHECK_LAUNCH();
	return 0;
}

static __global__ void kv_nan_kernel(float *p, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		p[i] = __int_as_float(0x7fc00000);
}

extern "C" int cuda_fill_nan(float *dst, size_t n, char *err)
{
	kv_nan_kernel<<<256, 256>>>(dst, n);
	CUDA_CHECK_LAUNCH();
	return 0;
}

static __device__ __forceinline__ uint32_t kv_hash(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x;
}

template <typename T>
static __global__ void kv_random_kernel(T *p, size_t n, uint64_t seed, float amp)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		uint32_t h = kv_hash(seed * 0x9e3779b97f4a7c15ull + i);
		float u = (float)(h >> 8) * (1.0f / 16777216.0f);
		p[i] = attn_from_float<T>(amp * (2.0f * u - 1.0f));
	}
}

extern "C" int cuda_fill_random(void *dst, size_t n, enum cuda_dtype t, uint64_t seed, float amp,
				char *err)
{
	if (t == CUDA_DT_BF16)
		kv_random_kernel<<<1024, 256>>>((__nv_bfloat16 *)dst, n, seed, amp);
	else
		kv_random_kernel<<<1024, 256>>>((__half *)dst, n, seed, amp);
	CUDA_CHECK_LAUNCH();
	return 0;
}

extern "C" int cuda_sync(char *err)
{
	CUDA_CHECK(cudaDeviceSynchronize());
	return 0;
}

// ---- the KV mirror

struct cuda_kv {
	struct cuda_kv_params p;
	std::vector<void *> k, v; /* (n_copies * n_layer) */
	size_t layer_elems;       /* n_pages * n_kv_heads * page_size * head_dim */
	uint64_t uploaded;
	std::vector<uint16_t> stage;
	void *dstage;       /* device staging of cuda_kv_store_rows */
	size_t dstage_cap;  /* bytes */
	void *hstage;       /* its pinned host side (the copy is asynchronous) */
	size_t hstage_cap;  /* bytes */
};

extern "C" struct cuda_kv_params cuda_kv_default_params(void)
{
	struct cuda_kv_params p;
	memset(&p, 0, sizeof(p));
	p.n_pages = 0;
	p.page_size = 16;
	p.n_layer = 1;
	p.n_kv_heads = 1;
	p.head_dim = 64;
	p.type = CUDA_DT_F16;
	p.n_copies = 1;
	return p;
}

extern "C" void cuda_kv_free(struct cuda_kv *kv)
{
	if (!kv)
		return;
	for (void *x : kv->k)
		cudaFree(x);
	for (void *x : kv->v)
		cudaFree(x);
	cudaFree(kv->dstage);
	cudaFreeHost(kv->hstage);
	delete kv;
}

extern "C" struct cuda_kv *cuda_kv_new(const struct cuda_kv_params *p, char *err)
{
	if (p->n_pages < 1 || p->page_size < 1 || p->n_layer < 1 || p->n_kv_heads < 1 ||
	    p->head_dim < 1 || p->n_copies < 1) {
		dt_err(err, "cuda kv: bad shape (pages %d, page size %d, layers %d, kv heads %d, "
			    "head dim %d, copies %d; expected all >= 1)",
		       p->n_pages, p->page_size, p->n_layer, p->n_kv_heads, p->head_dim, p->n_copies);
		return NULL;
	}
	uint64_t rows = (uint64_t)p->n_pages * p->n_kv_heads * p->page_size;
	if (rows > INT32_MAX) {
		dt_err(err, "cuda kv: %llu token rows per layer (expected at most %d)",
		       (unsigned long long)rows, INT32_MAX);
		return NULL;
	}
	struct cuda_kv *kv = new cuda_kv();
	kv->p = *p;
	kv->layer_elems = (size_t)rows * p->head_dim;
	kv->uploaded = 0;
	kv->dstage = NULL;
	kv->dstage_cap = 0;
	kv->hstage = NULL;
	kv->hstage_cap = 0;
	int n = p->n_copies * p->n_layer;
	for (int i = 0; i < n; i++) {
		void *k = cuda_malloc(kv->layer_elems * 2, err);
		void *v = k ? cuda_malloc(kv->layer_elems * 2, err) : NULL;
		if (k)
			kv->k.push_back(k);
		if (v)
			kv->v.push_back(v);
		if (!k || !v) {
			cuda_kv_free(kv);
			return NULL;
		}
		/* zeroed: a slot no one wrote holds no NaN that a masked-out
		 * probability (0) times V could turn into a NaN output */
		if (cudaMemset(k, 0, kv->layer_elems * 2) != cudaSuccess ||
		    cudaMemset(v, 0, kv->layer_elems * 2) != cudaSuccess) {
			cudaGetLastError();
			dt_err(err, "cuda kv: cudaMemset failed");
			cuda_kv_free(kv);
			return NULL;
		}
	}
	return kv;
}

extern "C" const struct cuda_kv_params *cuda_kv_params(const struct cuda_kv *kv)
{
	return &kv->p;
}

extern "C" size_t cuda_kv_bytes(const struct cuda_kv *kv)
{
	return kv->layer_elems * 2 * 2 * kv->k.size();
}

extern "C" uint64_t cuda_kv_uploaded_bytes(const struct cuda_kv *kv)
{
	return kv->uploaded;
}

extern "C" int cuda_kv_upload(struct cuda_kv *kv, int32_t layer, const float *k_host,
			      const float *v_host, int32_t page, int32_t slot0, int32_t n, char *err)
{
	const struct cuda_kv_params *p = &kv->p;
	if (layer < 0 || layer >= p->n_layer || page < 0 || page >= p->n_pages || slot0 < 0 ||
	    n < 0 || slot0 + n > p->page_size)
		return dt_err(err, "cuda kv upload: layer %d page %d slots %d+%d out of range", layer,
			      page, slot0, n),
		       DT_ERR_ARG;
	if (n == 0)
		return 0;
	const size_t d = (size_t)p->head_dim, ps = (size_t)p->page_size, hk = (size_t)p->n_kv_heads;
	const size_t row = (size_t)n * d;  /* elements of one head's run of slots */
	kv->stage.resize(2 * hk * row);
	for (int w = 0; w < 2; w++) {
		const float *src = w ? v_host : k_host;
		for (size_t h = 0; h < hk; h++)
			kv_convert(kv->stage.data() + (w * hk + h) * row,
				   src + (((size_t)page * hk + h) * ps + slot0) * d, row, p->type);
	}
	for (int c = 0; c < p->n_copies; c++) {
		for (int w = 0; w < 2; w++) {
			uint16_t *base = (uint16_t *)(w ? kv->v : kv->k)[c * p->n_layer + layer];
			uint16_t *dst = base + ((size_t)page * hk * ps + slot0) * d;
			CUDA_CHECK(cudaMemcpy2D(dst, ps * d * 2, kv->stage.data() + w * hk * row,
						row * 2, row * 2, hk, cudaMemcpyHostToDevice));
			kv->uploaded += 2 * hk * row;
		}
	}
	return 0;
}

/* One thread per 4 elements of a row (head_dim is a multiple of 4): fp32 in,
 * the KV type out. */
template <typename T>
static __global__ void kv_scatter_kernel(T *k, T *v, const float *src, const int32_t *page, const int32_t *slot,
					 int32_t n, int32_t hk, int32_t ps, int32_t d)
{
	const size_t per_row = (size_t)hk * d / 4; /* float4 words of one token row */
	const size_t total = (size_t)n * per_row;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / per_row, w = i % per_row;
		size_t e = w * 4, h = e / d, dd = e % d;
		size_t dst = (((size_t)page[r] * hk + h) * ps + slot[r]) * d + dd;
		float4 a = ((const float4 *)(src + r * hk * d))[w];
		float4 b = ((const float4 *)(src + ((size_t)n + r) * hk * d))[w];
		k[dst] = attn_from_float<T>(a.x), k[dst + 1] = attn_from_float<T>(a.y);
		k[dst + 2] = attn_from_float<T>(a.z), k[dst + 3] = attn_from_float<T>(a.w);
		v[dst] = attn_from_float<T>(b.x), v[dst + 1] = attn_from_float<T>(b.y);
		v[dst + 2] = attn_from_float<T>(b.z), v[dst + 3] = attn_from_float<T>(b.w);
	}
}

extern "C" int cuda_kv_store_rows(struct cuda_kv *kv, int32_t layer, int32_t n, const int32_t *page,
				  const int32_t *slot, const float *k, const float *v, char *err)
{
	const struct cuda_kv_params *p = &kv->p;
	if (layer < 0 || layer >= p->n_layer || n < 0)
		return dt_err(err, "cuda kv store: layer %d of %d, %d rows", layer, p->n_layer, n), DT_ERR_ARG;
	if (p->head_dim % 4)
		return dt_err(err, "cuda kv store: head dim %d (expected a multiple of 4)", p->head_dim),
		       DT_ERR_ARG;
	for (int32_t i = 0; i < n; i++)
		if (page[i] < 0 || page[i] >= p->n_pages || slot[i] < 0 || slot[i] >= p->page_size)
			return dt_err(err, "cuda kv store: row %d at page %d slot %d (expected pages < %d, "
					   "slots < %d)",
				      i, page[i], slot[i], p->n_pages, p->page_size),
			       DT_ERR_ARG;
	if (n == 0)
		return 0;
	const size_t row = (size_t)p->n_kv_heads * p->head_dim;
	const size_t half = (size_t)n * row;                   /* elements of K (and of V) */
	const size_t bytes = 2 * half * 4 + 2 * (size_t)n * 4; /* K, V fp32 + page, slot */
	if (bytes > kv->hstage_cap || bytes > kv->dstage_cap) {
		/* the previous asynchronous copy may still read the old buffers */
		CUDA_CHECK(cudaDeviceSynchronize());
		cudaFreeHost(kv->hstage);
		cudaFree(kv->dstage);
		kv->hstage = kv->dstage = NULL;
		kv->hstage_cap = kv->dstage_cap = 0;
		size_t cap = bytes * 2;
		CUDA_CHECK(cudaMallocHost(&kv->hstage, cap));
		kv->hstage_cap = cap;
		CUDA_CHECK(cudaMalloc(&kv->dstage, cap));
		kv->dstage_cap = cap;
	} else {
		/* the pinned stage is reused: its last copy must have left */
		CUDA_CHECK(cudaStreamSynchronize(0));
	}
	char *st = (char *)kv->hstage;
	memcpy(st, k, half * 4);
	memcpy(st + half * 4, v, half * 4);
	memcpy(st + 2 * half * 4, page, (size_t)n * 4);
	memcpy(st + 2 * half * 4 + (size_t)n * 4, slot, (size_t)n * 4);
	CUDA_CHECK(cudaMemcpyAsync(kv->dstage, st, bytes, cudaMemcpyHostToDevice, 0));
	kv->uploaded += bytes;
	const float *dsrc = (const float *)kv->dstage;
	const int32_t *dpage = (const int32_t *)(dsrc + 2 * half);
	const int32_t *dslot = dpage + n;
	int blocks = (int)DT_MIN((half / 4 + 255) / 256, (size_t)1024);
	for (int c = 0; c < p->n_copies; c++) {
		void *dk = kv->k[c * p->n_layer + layer], *dv = kv->v[c * p->n_layer + layer];
		if (p->type == CUDA_DT_BF16)
			kv_scatter_kernel<<<blocks, 256>>>((__nv_bfloat16 *)dk, (__nv_bfloat16 *)dv, dsrc, dpage,
							   dslot, n, p->n_kv_heads, p->page_size, p->head_dim);
		else
			kv_scatter_kernel<<<blocks, 256>>>((__half *)dk, (__half *)dv, dsrc, dpage, dslot, n,
							   p->n_kv_heads, p->page_size, p->head_dim);
		CUDA_CHECK_LAUNCH();
	}
	return 0;
}

extern "C" int cuda_kv_fill_random(struct cuda_kv *kv, uint64_t seed, float amp, char *err)
{
	for (size_t i = 0; i < kv->k.size(); i++) {
		if (cuda_fill_random(kv->k[i], kv->layer_elems, kv->p.type, seed * 1000 + 2 * i, amp, err))
			return DT_ERR_DEVICE;
		if (cuda_fill_random(kv->v[i], kv->layer_elems, kv->p.type, seed * 1000 + 2 * i + 1, amp,
				     err))
			return DT_ERR_DEVICE;
	}
	return 0;
}

// ---- for the attention launcher (attn_common.cuh)

const void *cuda_kv_k_ptr(const struct cuda_kv *kv, int32_t copy, int32_t layer)
{
	return kv->k[(size_t)copy * kv->p.n_layer + layer];
}

const void *cuda_kv_v_ptr(const struct cuda_kv *kv, int32_t copy, int32_t layer)
{
	return kv->v[(size_t)copy * kv->p.n_layer + layer];
}
