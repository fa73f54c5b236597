/*
 * quant.c — the type table, half-precision conversions, dequantization and
 * dot products for ggml's tensor formats.
 *
 * DESIGN
 *   The type table covers every ggml type id so that the GGUF reader can size
 *   any tensor; only the `supported` formats are computed with here.
 *
 *   Two paths per hot function: a scalar reference (plain loops written from
 *   the layout, the definition of correct) and an AVX2+FMA+F16C path that
 *   follows llama.cpp's techniques (maddubs of unsigned nibbles by signed
 *   int8, madd to int32, one FMA per block with the combined scale).  The
 *   SIMD functions carry __attribute__((target(...))) so that the rest of the
 *   binary runs on any x86-64; the choice is made once at load time from
 *   __builtin_cpu_supports and can be forced back to scalar for tests.
 *
 *   Activations for the q8 dot are blocks of 32 int8 in [-127, 127] with a
 *   float scale d and s = d*sum(q) (struct quant_q8).  The q8 dot is defined
 *   as the dot of the dequantized weight row with the dequantized activations
 *   (d*q), computed per block in integers and scaled once per block; the
 *   SIMD paths differ from the scalar ones only in the order (and FMA fusing)
 *   of the float operations.  SIMD q8 dots: Q4_0 Q4_1 Q8_0 Q4_K Q6_K, x4 for
 *   Q4_0 Q4_1 Q8_0 (bit-identical to four single dots); Q5_0 Q5_1 Q8_1 and
 *   the other x4 cases use the scalar code / loop over the single dot.
 *
 *   Block layouts are ggml's (little-endian, fp16 scales stored as raw bits).
 *   Row pointers must be 2-byte aligned (GGUF aligns tensor data to 32 and
 *   every supported block size is even).
 */
#include "config.h"

#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#include "common.h"

#if defined(__x86_64__) || defined(__i386__)
#define QUANT_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define QUANT_X86 0
#endif

// ---- type table

/* {name, elements per block, bytes per block, supported}; ids from ggml.h.
 * Ids 4, 5 (old Q4_2/Q4_3), 31..33 and 36..38 (removed repacked formats)
 * are not types any more. */
static const struct quant_type_info type_table[DT_TYPE_COUNT] = {
	[0] = {"f32", 1, 4, true},
	[1] = {"f16", 1, 2, true},
	[2] = {"q4_0", 32, 18, true},
	[3] = {"q4_1", 32, 20, true},
	[6] = {"q5_0", 32, 22, true},
	[7] = {"q5_1", 32, 24, true},
	[8] = {"q8_0", 32, 34, true},
	[9] = {"q8_1", 32, 36, true},
	[10] = {"q2_K", 256, 84, false},
	[11] = {"q3_K", 256, 110, false},
	[12] = {"q4_K", 256, 144, true},
	[13] = {"q5_K", 256, 176, false},
	[14] = {"q6_K", 256, 210, true},
	[15] = {"q8_K", 256, 292, false},
	[16] = {"iq2_xxs", 256, 66, false},
	[17] = {"iq2_xs", 256, 74, false},
	[18] = {"iq3_xxs", 256, 98, false},
	[19] = {"iq1_s", 256, 50, false},
	[20] = {"iq4_nl", 32, 18, false},
	[21] = {"iq3_s", 256, 110, false},
	[22] = {"iq2_s", 256, 82, false},
	[23] = {"iq4_xs", 256, 136, false},
	[24] = {"i8", 1, 1, false},
	[25] = {"i16", 1, 2, false},
	[26] = {"i32", 1, 4, false},
	[27] = {"i64", 1, 8, false},
	[28] = {"f64", 1, 8, false},
	[29] = {"iq1_m", 256, 56, false},
	[30] = {"bf16", 1, 2, true},
	[34] = {"tq1_0", 256, 54, false},
	[35] = {"tq2_0", 256, 66, false},
	[39] = {"mxfp4", 32, 17, false},
};

const struct quant_type_info *quant_type(uint32_t id)
{
	if (id >= DT_TYPE_COUNT || type_table[id].name == NULL)
		return NULL;
	return &type_table[id];
}

const char *quant_type_name(uint32_t id)
{
	/* one buffer per thread: the "type-N" form is rare (error messages) */
	static _Thread_local char buf[24];
	const struct quant_type_info *ti = quant_type(id);
	if (ti)
		return ti->name;
	snprintf(buf, sizeof(buf), "type-%u", id);
	return buf;
}

size_t quant_row_size(uint32_t id, int64_t n)
{
	const struct quant_type_info *ti = quant_type(id);
	uint64_t size;
	if (!ti || n < 0 || n % ti->block_size != 0)
		return 0;
	if (!dt_mul_ok((uint64_t)(n / ti->block_size), ti->type_size, &size) || size > SIZE_MAX)
		return 0;
	return (size_t)size;
}

// ---- half precision

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

float quant_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;
	if (exp == 0) {
		/* zero or subnormal: mant * 2^-24, exact in float */
		float v = (float)mant * 0x1p-24f;
		return f32_from_bits(sign | f32_bits(v));
	}
	if (exp == 31) /* inf or nan (payload kept) */
		return f32_from_bits(sign | 0x7f800000u | (mant << 13));
	return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t quant_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t ax = x & 0x7fffffffu;
	if (ax > 0x7f800000u) /* nan: quiet, keep the top payload bits */
		return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
	if (ax >= 0x477ff000u) /* >= 65520 rounds to inf (also inf itself) */
		return (uint16_t)(sign | 0x7c00);
	if (ax >= 0x38800000u) {
		/* normal: rebias the exponent, round the 13 dropped bits to
		 * nearest even; a carry into the exponent is the right result */
		uint32_t r = ax - (112u << 23);
		r += 0xfffu + ((r >> 13) & 1);
		return (uint16_t)(sign | (r >> 13));
	}
	/* subnormal or zero: result = round_even(|f| * 2^24) in [0, 1024] */
	uint32_t e = ax >> 23;
	if (e < 102) /* |f| < 2^-25: rounds to zero (2^-25 itself is a tie to 0) */
		return sign;
	uint32_t m = (ax & 0x7fffffu) | 0x800000u; /* |f| = m * 2^(e-150) */
	uint32_t shift = 126 - e;                  /* 14..24 */
	uint32_t q = m >> shift;
	uint32_t rem = m & ((1u << shift) - 1);
	uint32_t half = 1u << (shift - 1);
	if (rem > half || (rem == half && (q & 1)))
		q++;
	return (uint16_t)(sign | q);
}

float quant_bf16_to_f32(uint16_t h)
{
	return f32_from_bits((uint32_t)h << 16);
}

uint16_t quant_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);
	if ((x & 0x7fffffffu) > 0x7f800000u) /* nan: keep it a (quiet) nan */
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fffu + ((x >> 16) & 1); /* round to nearest even */
	return (uint16_t)(x >> 16);
}

#define F16(h) quant_f16_to_f32(h)

// ---- block layouts (ggml's)

#define QK 32   /* elements per block of the 32-wide formats */
#define QK_K 256 /* elements per K-quant super-block */

struct blk_q4_0 {
	uint16_t d;      /* fp16 scale */
	uint8_t qs[16];  /* element j: low nibble of qs[j], element j+16: high */
};
struct blk_q4_1 {
	uint16_t d, m;   /* fp16 scale and min: value = nibble*d + m */
	uint8_t qs[16];
};
struct blk_q5_0 {
	uint16_t d;
	uint8_t qh[4];   /* bit j: 5th bit of element j */
	uint8_t qs[16];
};
struct blk_q5_1 {
	uint16_t d, m;
	uint8_t qh[4];
	uint8_t qs[16];
};
struct blk_q8_0 {
	uint16_t d;
	int8_t qs[32];
};
struct blk_q8_1 {
	uint16_t d, s;   /* s = d*sum(qs), unused for the value */
	int8_t qs[32];
};
struct blk_q4_K {
	uint16_t d, dmin;    /* super-block scales for the 6-bit scales / mins */
	uint8_t scales[12];  /* 8 (scale, min) pairs, 6 bits each, packed */
	uint8_t qs[128];     /* chunk c of 64 elements: qs[32c..32c+32), low nibbles first */
};
struct blk_q6_K {
	uint8_t ql[128];     /* low 4 bits */
	uint8_t qh[64];      /* high 2 bits */
	int8_t scales[16];   /* one per 16 elements */
	uint16_t d;
};

_Static_assert(sizeof(struct blk_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(struct blk_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(struct blk_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(struct blk_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(struct blk_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(struct blk_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(struct blk_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(struct blk_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(struct quant_q8) == 40 && offsetof(struct quant_q8, s) == 4,
	       "q8 activation block: d, s adjacent (the Q4_1 SIMD path loads them together)");

/* Scale and min j (0..7) of a Q4_K super-block: j < 4 in the low 6 bits of
 * bytes j and j+4; j >= 4 split into a low nibble of byte j+4 and the top 2
 * bits of bytes j-4 (scale) and j (min). */
static inline void q4_K_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*mn = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
		*mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

// ---- integer unpacking of one block (shared by dequant and the scalar dots)

/* Each fills q[0..block) with the integer quant of each element, in element
 * order; the value is then a per-element affine map given by the caller. */
static void unpack_q4(const uint8_t *qs, int8_t q[32])
{
	for (int j = 0; j < 16; j++) {
		q[j] = (int8_t)(qs[j] & 0xf);
		q[j + 16] = (int8_t)(qs[j] >> 4);
	}
}

static void unpack_q5(const uint8_t *qs, const uint8_t qh4[4], int8_t q[32])
{
	uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 |
		      (uint32_t)qh4[3] << 24;
	for (int j = 0; j < 16; j++) {
		q[j] = (int8_t)((qs[j] & 0xf) | (((qh >> j) & 1) << 4));
		q[j + 16] = (int8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
	}
}

/* Q4_K: nibbles 0..15 of the 256 elements (sub-block j = elements 32j..32j+32). */
static void unpack_q4_K(const struct blk_q4_K *b, int8_t q[256])
{
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++) {
			q[64 * c + l] = (int8_t)(b->qs[32 * c + l] & 0xf);
			q[64 * c + 32 + l] = (int8_t)(b->qs[32 * c + l] >> 4);
		}
}

/* Q6_K: quants -32..31; element 128h + 32k + l comes from ql[64h + l + 32*(k&1)]
 * (low nibble for k < 2, high for k >= 2) and bits 2k..2k+1 of qh[32h + l]. */
static void unpack_q6_K(const struct blk_q6_K *b, int8_t q[256])
{
	for (int h = 0; h < 2; h++) {
		const uint8_t *ql = b->ql + 64 * h;
		const uint8_t *qh = b->qh + 32 * h;
		for (int l = 0; l < 32; l++) {
			q[128 * h + l] = (int8_t)(((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32);
			q[128 * h + 32 + l] = (int8_t)(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
			q[128 * h + 64 + l] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
			q[128 * h + 96 + l] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
		}
	}
}

// ---- dequantization (reference)

/* Dequantizes block i of a row of type t into y[0..block_size). */
static void dequant_block(enum dt_type t, const void *x, int64_t i, float *y)
{
	int8_t q[256];
	switch (t) {
	case DT_TYPE_F32:
		y[0] = ((const float *)x)[i];
		return;
	case DT_TYPE_F16:
		y[0] = F16(((const uint16_t *)x)[i]);
		return;
	case DT_TYPE_BF16:
		y[0] = quant_bf16_to_f32(((const uint16_t *)x)[i]);
		return;
	case DT_TYPE_Q4_0: {
		const struct blk_q4_0 *b = (const struct blk_q4_0 *)x + i;
		float d = F16(b->d);
		unpack_q4(b->qs, q);
		for (int j = 0; j < QK; j++)
			y[j] = (float)(q[j] - 8) * d;
		return;
	}
	case DT_TYPE_Q4_1: {
		const struct blk_q4_1 *b = (const struct blk_q4_1 *)x + i;
		float d = F16(b->d), m = F16(b->m);
		unpack_q4(b->qs, q);
		for (int j = 0; j < QK; j++)
			y[j] = (float)q[j] * d + m;
		return;
	}
	case DT_TYPE_Q5_0: {
		const struct blk_q5_0 *b = (const struct blk_q5_0 *)x + i;
		float d = F16(b->d);
		unpack_q5(b->qs, b->qh, q);
		for (int j = 0; j < QK; j++)
			y[j] = (float)(q[j] - 16) * d;
		return;
	}
	case DT_TYPE_Q5_1: {
		const struct blk_q5_1 *b = (const struct blk_q5_1 *)x + i;
		float d = F16(b->d), m = F16(b->m);
		unpack_q5(b->qs, b->qh, q);
		for (int j = 0; j < QK; j++)
			y[j] = (float)q[j] * d + m;
		return;
	}
	case DT_TYPE_Q8_0: {
		const struct blk_q8_0 *b = (const struct blk_q8_0 *)x + i;
		float d = F16(b->d);
		for (int j = 0; j < QK; j++)
			y[j] = (float)b->qs[j] * d;
		return;
	}
	case DT_TYPE_Q8_1: {
		const struct blk_q8_1 *b = (const struct blk_q8_1 *)x + i;
		float d = F16(b->d);
		for (int j = 0; j < QK; j++)
			y[j] = (float)b->qs[j] * d;
		return;
	}
	case DT_TYPE_Q4_K: {
		const struct blk_q4_K *b = (const struct blk_q4_K *)x + i;
		float d = F16(b->d), dmin = F16(b->dmin);
		unpack_q4_K(b, q);
		for (int j = 0; j < 8; j++) {
			uint8_t sc, mn;
			q4_K_scale_min(j, b->scales, &sc, &mn);
			float ds = d * sc, dm = dmin * mn;
			for (int l = 0; l < 32; l++)
				y[32 * j + l] = ds * (float)q[32 * j + l] - dm;
		}
		return;
	}
	case DT_TYPE_Q6_K: {
		const struct blk_q6_K *b = (const struct blk_q6_K *)x + i;
		float d = F16(b->d);
		unpack_q6_K(b, q);
		for (int j = 0; j < QK_K; j++)
			y[j] = d * (float)b->scales[j / 16] * (float)q[j];
		return;
	}
	default:
		DT_ASSERT(!"quant: dequantization of an unsupported type");
	}
}

static int32_t block_of(enum dt_type t)
{
	const struct quant_type_info *ti = quant_type((uint32_t)t);
	DT_ASSERT(ti && ti->supported);
	return ti->block_size;
}

void quant_dequant_row(enum dt_type t, const void *x, float *y, int64_t n)
{
	int32_t bs = block_of(t);
	DT_ASSERT(n % bs == 0);
	if (t == DT_TYPE_F32) {
		memcpy(y, x, (size_t)n * sizeof(float));
		return;
	}
	for (int64_t i = 0; i < n / bs; i++)
		dequant_block(t, x, i, y + i * bs);
}

// ---- SIMD selection

static bool simd_has_avx2;           /* CPU has AVX2+FMA+F16C; set at load */
static _Atomic bool simd_force_scalar; /* tests switch to the portable path */

#if QUANT_X86
__attribute__((constructor)) static void quant_detect_simd(void)
{
	__builtin_cpu_init(); /* required before cpu_supports inside a constructor */
	/* F16C from cpuid: clang's __builtin_cpu_supports does not know "f16c"
	 * (every AVX2 CPU has it; the OS-support check comes with "avx2") */
	unsigned eax, ebx, ecx, edx;
	bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
	simd_has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}
#endif

static inline bool use_avx2(void)
{
	return simd_has_avx2 && !atomic_load_explicit(&simd_force_scalar, memory_order_relaxed);
}

const char *quant_simd_name(void)
{
	return use_avx2() ? "avx2" : "scalar";
}

bool quant_force_scalar(bool on)
{
	return atomic_exchange(&simd_force_scalar, on);
}

// ---- scalar reference: float dot, q8 quantization, q8 dot

static float dot_f32_scalar(enum dt_type t, const void *x, const float *y, int64_t n)
{
	float sum = 0;
	if (t == DT_TYPE_F32) {
		const float *xf = x;
		for (int64_t i = 0; i < n; i++)
			sum += xf[i] * y[i];
		return sum;
	}
	int32_t bs = block_of(t);
	float buf[QK_K];
	for (int64_t i = 0; i < n / bs; i++) {
		dequant_block(t, x, i, buf);
		float part = 0;
		for (int32_t j = 0; j < bs; j++)
			part += buf[j] * y[i * bs + j];
		sum += part;
	}
	return sum;
}

static void q8_quantize_scalar(const float *x, struct quant_q8 *out, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float *xb = x + i * QUANT_Q8_BLOCK;
		float amax = 0;
		for (int j = 0; j < QUANT_Q8_BLOCK; j++)
			amax = fmaxf(amax, fabsf(xb[j]));
		float d = amax / 127.0f;
		float id = d != 0 ? 1.0f / d : 0.0f;
		int sum = 0;
		for (int j = 0; j < QUANT_Q8_BLOCK; j++) {
			/* round half to even, as the SIMD path (_MM_FROUND_TO_NEAREST_INT) */
			int q = (int)nearbyintf(xb[j] * id);
			out[i].q[j] = (int8_t)q;
			sum += q;
		}
		out[i].d = d;
		out[i].s = d * (float)sum;
	}
}

static int32_t idot32(const int8_t *a, const int8_t *b, int n)
{
	int32_t s = 0;
	for (int j = 0; j < n; j++)
		s += (int32_t)a[j] * (int32_t)b[j];
	return s;
}

static float dot_q8_scalar(enum dt_type t, const void *x, const struct quant_q8 *y, int64_t n)
{
	int8_t q[256];
	float sum = 0;
	switch (t) {
	case DT_TYPE_Q4_0:
		for (int64_t i = 0; i < n / QK; i++) {
			const struct blk_q4_0 *b = (const struct blk_q4_0 *)x + i;
			unpack_q4(b->qs, q);
			for (int j = 0; j < QK; j++)
				q[j] -= 8;
			sum += F16(b->d) * y[i].d * (float)idot32(q, y[i].q, QK);
		}
		return sum;
	case DT_TYPE_Q4_1:
		for (int64_t i = 0; i < n / QK; i++) {
			const struct blk_q4_1 *b = (const struct blk_q4_1 *)x + i;
			unpack_q4(b->qs, q);
			sum += F16(b->d) * y[i].d * (float)idot32(q, y[i].q, QK) + F16(b->m) * y[i].s;
		}
		return sum;
	case DT_TYPE_Q5_0:
		for (int64_t i = 0; i < n / QK; i++) {
			const struct blk_q5_0 *b = (const struct blk_q5_0 *)x + i;
			unpack_q5(b->qs, b->qh, q);
			for (int j = 0; j < QK; j++)
				q[j] -= 16;
			sum += F16(b->d) * y[i].d * (float)idot32(q, y[i].q, QK);
		}
		return sum;
	case DT_TYPE_Q5_1:
		for (int64_t i = 0; i < n / QK; i++) {
			const struct blk_q5_1 *b = (const struct blk_q5_1 *)x + i;
			unpack_q5(b->qs, b->qh, q);
			sum += F16(b->d) * y[i].d * (float)idot32(q, y[i].q, QK) + F16(b->m) * y[i].s;
		}
		return sum;
	case DT_TYPE_Q8_0:
		for (int64_t i = 0; i < n / QK; i++) {
			const struct blk_q8_0 *b = (const struct blk_q8_0 *)x + i;
			sum += F16(b->d) * y[i].d * (float)idot32(b->qs, y[i].q, QK);
		}
		return sum;
	case DT_TYPE_Q8_1:
		for (int64_t i = 0; i < n / QK; i++) {
			const struct blk_q8_1 *b = (const struct blk_q8_1 *)x + i;
			sum += F16(b->d) * y[i].d * (float)idot32(b->qs, y[i].q, QK);
		}
		return sum;
	case DT_TYPE_Q4_K:
		/* sub-block j (32 wide) lines up with activation block 8i+j:
		 * value = d*sc*q - dmin*mn, so the min term is dmin*mn*s */
		for (int64_t i = 0; i < n / QK_K; i++) {
			const struct blk_q4_K *b = (const struct blk_q4_K *)x + i;
			const struct quant_q8 *yb = y + 8 * i;
			float d = F16(b->d), dmin = F16(b->dmin);
			unpack_q4_K(b, q);
			for (int j = 0; j < 8; j++) {
				uint8_t sc, mn;
				q4_K_scale_min(j, b->scales, &sc, &mn);
				sum += d * (float)sc * yb[j].d * (float)idot32(q + 32 * j, yb[j].q, 32) -
				       dmin * (float)mn * yb[j].s;
			}
		}
		return sum;
	case DT_TYPE_Q6_K:
		/* two 16-wide sub-blocks (own int8 scale) per activation block */
		for (int64_t i = 0; i < n / QK_K; i++) {
			const struct blk_q6_K *b = (const struct blk_q6_K *)x + i;
			const struct quant_q8 *yb = y + 8 * i;
			float d = F16(b->d);
			unpack_q6_K(b, q);
			for (int j = 0; j < 8; j++) {
				int32_t lo = idot32(q + 32 * j, yb[j].q, 16);
				int32_t hi = idot32(q + 32 * j + 16, yb[j].q + 16, 16);
				int32_t is = b->scales[2 * j] * lo + b->scales[2 * j + 1] * hi;
				sum += d * yb[j].d * (float)is;
			}
		}
		return sum;
	default:
		DT_ASSERT(!"quant: no q8 dot for this type");
		return 0;
	}
}

// ---- AVX2 + FMA + F16C paths (llama.cpp's techniques)

#if QUANT_X86
#define SIMD_FN __attribute__((target("avx2,fma,f16c")))

SIMD_FN static inline float hsum_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

SIMD_FN static inline int32_t hsum_epi32(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 1, 1, 1)));
	return _mm_cvtsi128_si32(s);
}

SIMD_FN static inline __m256i load256(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

SIMD_FN static inline float f16_simd(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* 16 bytes of packed nibbles -> 32 bytes 0..15: low nibbles are elements
 * 0..15 (low lane), high nibbles elements 16..31 (high lane). */
SIMD_FN static inline __m256i load_nibbles(const uint8_t *qs)
{
	__m128i t = _mm_loadu_si128((const __m128i *)qs);
	__m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* Sums of 4 adjacent products of unsigned bytes ux (<= 128) by signed bytes sy,
 * as 8 floats.  maddubs pairs cannot saturate: 2*128*127 < 32767. */
SIMD_FN static inline __m256 mul_sum_us8(__m256i ux, __m256i sy)
{
	__m256i p16 = _mm256_maddubs_epi16(ux, sy);
	return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* Same for signed x signed: |x| times y with x's sign (y must not be -128). */
SIMD_FN static inline __m256 mul_sum_i8(__m256i x, __m256i y)
{
	return mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* 8 elements of an f32/f16/bf16 row as floats. */
SIMD_FN static inline __m256 load8_f(enum dt_type t, const void *x, int64_t i)
{
	if (t == DT_TYPE_F32)
		return _mm256_loadu_ps((const float *)x + i);
	__m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)x + i));
	if (t == DT_TYPE_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Four accumulators (32 elements per step) hide the FMA latency. */
SIMD_FN static float dot_f32_avx2(enum dt_type t, const void *x, const float *y, int64_t n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	__m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(load8_f(t, x, i), _mm256_loadu_ps(y + i), a0);
		a1 = _mm256_fmadd_ps(load8_f(t, x, i + 8), _mm256_loadu_ps(y + i + 8), a1);
		a2 = _mm256_fmadd_ps(load8_f(t, x, i + 16), _mm256_loadu_ps(y + i + 16), a2);
		a3 = _mm256_fmadd_ps(load8_f(t, x, i + 24), _mm256_loadu_ps(y + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(load8_f(t, x, i), _mm256_loadu_ps(y + i), a0);
	float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++) {
		float xv = t == DT_TYPE_F32 ? ((const float *)x)[i]
			   : t == DT_TYPE_F16 ? f16_simd(((const uint16_t *)x)[i])
					      : quant_bf16_to_f32(((const uint16_t *)x)[i]);
		sum += xv * y[i];
	}
	return sum;
}

SIMD_FN static inline __m256 abs_ps(__m256 v)
{
	return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

SIMD_FN static inline __m256i round_epi32(__m256 v, __m256 mul)
{
	return _mm256_cvtps_epi32(
		_mm256_round_ps(_mm256_mul_ps(v, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

SIMD_FN static void q8_quantize_avx2(const float *x, struct quant_q8 *out, int64_t nb)
{
	const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	for (int64_t i = 0; i < nb; i++) {
		const float *xb = x + i * QUANT_Q8_BLOCK;
		__m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
		__m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
		__m256 m = _mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)),
					 _mm256_max_ps(abs_ps(v2), abs_ps(v3)));
		__m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		float d = _mm_cvtss_f32(m4) / 127.0f;
		float id = d != 0 ? 1.0f / d : 0.0f;
		__m256 mul = _mm256_set1_ps(id);
		__m256i q0 = round_epi32(v0, mul), q1 = round_epi32(v1, mul);
		__m256i q2 = round_epi32(v2, mul), q3 = round_epi32(v3, mul);
		int32_t sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
		/* packs work per 128-bit lane: restore element order with one permute */
		__m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
		_mm256_storeu_si256((__m256i *)out[i].q, _mm256_permutevar8x32_epi32(b, order));
		out[i].d = d;
		out[i].s = d * (float)sum;
	}
}

/* One block of each 32-wide format times one activation block, added into
 * acc with the combined scale (and the Q4_1 min term into *summ). */
SIMD_FN static inline __m256 q4_0_block(const struct blk_q4_0 *x, const struct quant_q8 *y, __m256 acc)
{
	__m256i qx = _mm256_sub_epi8(load_nibbles(x->qs), _mm256_set1_epi8(8));
	__m256 p = mul_sum_i8(qx, load256(y->q));
	return _mm256_fmadd_ps(_mm256_set1_ps(f16_simd(x->d) * y->d), p, acc);
}

/* Q4_1 scales: [d, m] (two fp16 in one load) times [y.d, y.s] gives the
 * block scale in lane 0 and the min term in lane 1, in one conversion and
 * one multiply; *msum accumulates lane 1. */
SIMD_FN static inline __m256 q4_1_block(const struct blk_q4_1 *x, const struct quant_q8 *y, __m256 acc,
					__m128 *msum)
{
	int32_t dm16;
	memcpy(&dm16, x, sizeof(dm16)); /* d, m: adjacent fp16 */
	__m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(dm16));
	__m128 ds = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)y)); /* y->d, y->s */
	__m128 sc = _mm_mul_ps(dm, ds);
	*msum = _mm_add_ps(*msum, sc);
	__m256 p = mul_sum_us8(load_nibbles(x->qs), load256(y->q));
	return _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), p, acc);
}

SIMD_FN static inline __m256 q8_0_block(const struct blk_q8_0 *x, const struct quant_q8 *y, __m256 acc)
{
	__m256 p = mul_sum_i8(load256(x->qs), load256(y->q));
	return _mm256_fmadd_ps(_mm256_set1_ps(f16_simd(x->d) * y->d), p, acc);
}

/* The 32-wide dots keep two accumulators (even and odd blocks) so that a row
 * is not bound by the latency of one FMA chain; the x4 variants below keep
 * the same split, so they give bit-identical results. */
SIMD_FN static float dot_q4_0_avx2(const void *vx, const struct quant_q8 *y, int64_t nb)
{
	const struct blk_q4_0 *x = vx;
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		acc0 = q4_0_block(x + i, y + i, acc0);
		acc1 = q4_0_block(x + i + 1, y + i + 1, acc1);
	}
	if (i < nb)
		acc0 = q4_0_block(x + i, y + i, acc0);
	return hsum_ps(_mm256_add_ps(acc0, acc1));
}

SIMD_FN static float dot_q4_1_avx2(const void *vx, const struct quant_q8 *y, int64_t nb)
{
	const struct blk_q4_1 *x = vx;
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	__m128 m0 = _mm_setzero_ps(), m1 = _mm_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		acc0 = q4_1_block(x + i, y + i, acc0, &m0);
		acc1 = q4_1_block(x + i + 1, y + i + 1, acc1, &m1);
	}
	if (i < nb)
		acc0 = q4_1_block(x + i, y + i, acc0, &m0);
	__m128 m = _mm_add_ss(_mm_movehdup_ps(m0), _mm_movehdup_ps(m1)); /* lane 1 of each */
	return hsum_ps(_mm256_add_ps(acc0, acc1)) + _mm_cvtss_f32(m);
}

SIMD_FN static float dot_q8_0_avx2(const void *vx, const struct quant_q8 *y, int64_t nb)
{
	const struct blk_q8_0 *x = vx;
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		acc0 = q8_0_block(x + i, y + i, acc0);
		acc1 = q8_0_block(x + i + 1, y + i + 1, acc1);
	}
	if (i < nb)
		acc0 = q8_0_block(x + i, y + i, acc0);
	return hsum_ps(_mm256_add_ps(acc0, acc1));
}

SIMD_FN static float dot_q4_K_avx2(const void *vx, const struct quant_q8 *y, int64_t nb)
{
	const struct blk_q4_K *x = vx;
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	float summ = 0;
	for (int64_t i = 0; i < nb; i++) {
		const struct blk_q4_K *b = x + i;
		const struct quant_q8 *yb = y + 8 * i;
		float d = f16_simd(b->d), dmin = f16_simd(b->dmin);
		uint8_t sc[8], mn[8];
		for (int j = 0; j < 8; j++)
			q4_K_scale_min(j, b->scales, &sc[j], &mn[j]);
		float msum = 0;
		for (int c = 0; c < 4; c++) {
			const struct quant_q8 *ya = yb + 2 * c, *yh = yb + 2 * c + 1;
			__m256i q = load256(b->qs + 32 * c);
			__m256 plo = mul_sum_us8(_mm256_and_si256(q, m4), load256(ya->q));
			__m256 phi = mul_sum_us8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), load256(yh->q));
			acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc[2 * c] * ya->d), plo, acc0);
			acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc[2 * c + 1] * yh->d), phi, acc1);
			msum += (float)mn[2 * c] * ya->s + (float)mn[2 * c + 1] * yh->s;
		}
		summ += dmin * msum;
	}
	return hsum_ps(_mm256_add_ps(acc0, acc1)) - summ;
}

/* Q6_K: one activation block (32 wide) against 32 unsigned quants 0..63 whose
 * halves have the int8 scales sa and sb: (q - 32)*y per pair through two
 * maddubs, then madd with the per-half scales. */
SIMD_FN static inline __m256 q6_K_group(__m256i q, int8_t sa, int8_t sb, float d, const struct quant_q8 *y,
					__m256 acc)
{
	__m256i yq = load256(y->q);
	__m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, yq),
				       _mm256_maddubs_epi16(_mm256_set1_epi8(32), yq));
	__m256i s16 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(sa)), _mm_set1_epi16(sb), 1);
	__m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, s16));
	return _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), p, acc);
}

SIMD_FN static float dot_q6_K_avx2(const void *vx, const struct quant_q8 *y, int64_t nb)
{
	const struct blk_q6_K *x = vx;
	const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const struct blk_q6_K *b = x + i;
		const struct quant_q8 *yb = y + 8 * i;
		const int8_t *sc = b->scales;
		float d = f16_simd(b->d);
		for (int h = 0; h < 2; h++) {
			/* half h: elements 128h + 32g + l, g = 0..3 (activation block 4h+g) */
			__m256i l0 = load256(b->ql + 64 * h), l1 = load256(b->ql + 64 * h + 32);
			__m256i hb = load256(b->qh + 32 * h);
			__m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
						     _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
			__m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
						     _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
			__m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
						     _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
			__m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
						     _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
			const int8_t *s8 = sc + 8 * h;
			const struct quant_q8 *yh = yb + 4 * h;
			acc0 = q6_K_group(q0, s8[0], s8[1], d, yh + 0, acc0);
			acc1 = q6_K_group(q1, s8[2], s8[3], d, yh + 1, acc1);
			acc0 = q6_K_group(q2, s8[4], s8[5], d, yh + 2, acc0);
			acc1 = q6_K_group(q3, s8[6], s8[7], d, yh + 3, acc1);
		}
	}
	return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* 4 activation vectors against one weight row: the row's blocks are loaded and
 * unpacked once.  Same operation order per vector as the single dots above
 * (even blocks into a, odd blocks into b), so the results are identical. */
struct x4acc {
	__m256 a0, a1, a2, a3, b0, b1, b2, b3; /* named, not an array: stays in registers */
	float m[8];                            /* Q4_1 min terms, even 0..3, odd 4..7 */
};

SIMD_FN static inline void x4acc_zero(struct x4acc *c)
{
	c->a0 = c->a1 = c->a2 = c->a3 = c->b0 = c->b1 = c->b2 = c->b3 = _mm256_setzero_ps();
	memset(c->m, 0, sizeof(c->m));
}

SIMD_FN static inline void x4acc_out(const struct x4acc *c, float out[4])
{
	out[0] = hsum_ps(_mm256_add_ps(c->a0, c->b0)) + (c->m[0] + c->m[4]);
	out[1] = hsum_ps(_mm256_add_ps(c->a1, c->b1)) + (c->m[1] + c->m[5]);
	out[2] = hsum_ps(_mm256_add_ps(c->a2, c->b2)) + (c->m[2] + c->m[6]);
	out[3] = hsum_ps(_mm256_add_ps(c->a3, c->b3)) + (c->m[3] + c->m[7]);
}

/* Signed weights (q4_0 - 8, q8_0): |x| and the signs are taken once per block. */
SIMD_FN static inline __m256 x4_signed(__m256i ax, __m256i qx, float dx, const struct quant_q8 *y,
				       __m256 acc)
{
	__m256 p = mul_sum_us8(ax, _mm256_sign_epi8(load256(y->q), qx));
	return _mm256_fmadd_ps(_mm256_set1_ps(dx * y->d), p, acc);
}

SIMD_FN static inline void x4_signed_block(__m256i qx, float dx, const struct quant_q8 *const y[4],
					   int64_t i, __m256 *c0, __m256 *c1, __m256 *c2, __m256 *c3)
{
	__m256i ax = _mm256_sign_epi8(qx, qx);
	*c0 = x4_signed(ax, qx, dx, y[0] + i, *c0);
	*c1 = x4_signed(ax, qx, dx, y[1] + i, *c1);
	*c2 = x4_signed(ax, qx, dx, y[2] + i, *c2);
	*c3 = x4_signed(ax, qx, dx, y[3] + i, *c3);
}

SIMD_FN static void dot_q4_0_x4_avx2(const void *vx, const struct quant_q8 *const y[4], int64_t nb,
				     float out[4])
{
	const struct blk_q4_0 *x = vx;
	const __m256i off = _mm256_set1_epi8(8);
	struct x4acc c;
	x4acc_zero(&c);
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		x4_signed_block(_mm256_sub_epi8(load_nibbles(x[i].qs), off), f16_simd(x[i].d), y, i,
				&c.a0, &c.a1, &c.a2, &c.a3);
		x4_signed_block(_mm256_sub_epi8(load_nibbles(x[i + 1].qs), off), f16_simd(x[i + 1].d), y,
				i + 1, &c.b0, &c.b1, &c.b2, &c.b3);
	}
	if (i < nb)
		x4_signed_block(_mm256_sub_epi8(load_nibbles(x[i].qs), off), f16_simd(x[i].d), y, i,
				&c.a0, &c.a1, &c.a2, &c.a3);
	x4acc_out(&c, out);
}

SIMD_FN static void dot_q8_0_x4_avx2(const void *vx, const struct quant_q8 *const y[4], int64_t nb,
				     float out[4])
{
	const struct blk_q8_0 *x = vx;
	struct x4acc c;
	x4acc_zero(&c);
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		x4_signed_block(load256(x[i].qs), f16_simd(x[i].d), y, i, &c.a0, &c.a1, &c.a2, &c.a3);
		x4_signed_block(load256(x[i + 1].qs), f16_simd(x[i + 1].d), y, i + 1, &c.b0, &c.b1,
				&c.b2, &c.b3);
	}
	if (i < nb)
		x4_signed_block(load256(x[i].qs), f16_simd(x[i].d), y, i, &c.a0, &c.a1, &c.a2, &c.a3);
	x4acc_out(&c, out);
}

SIMD_FN static inline __m256 x4_q4_1(__m256i qx, float dx, const struct quant_q8 *y, __m256 acc)
{
	__m256 p = mul_sum_us8(qx, load256(y->q));
	return _mm256_fmadd_ps(_mm256_set1_ps(dx * y->d), p, acc);
}

/* The min terms of the 4 vectors go into one __m128 (lane k for vector k),
 * with a separate multiply and add as in the single dot (no fused rounding). */
SIMD_FN static inline __m128 x4_q4_1_block(const struct blk_q4_1 *x, const struct quant_q8 *const y[4],
					   int64_t i, __m256 *c0, __m256 *c1, __m256 *c2, __m256 *c3, __m128 m)
{
	__m256i qx = load_nibbles(x->qs);
	float dx = f16_simd(x->d);
	*c0 = x4_q4_1(qx, dx, y[0] + i, *c0);
	*c1 = x4_q4_1(qx, dx, y[1] + i, *c1);
	*c2 = x4_q4_1(qx, dx, y[2] + i, *c2);
	*c3 = x4_q4_1(qx, dx, y[3] + i, *c3);
	__m128 s4 = _mm_setr_ps(y[0][i].s, y[1][i].s, y[2][i].s, y[3][i].s);
	return _mm_add_ps(m, _mm_mul_ps(_mm_set1_ps(f16_simd(x->m)), s4));
}

SIMD_FN static void dot_q4_1_x4_avx2(const void *vx, const struct quant_q8 *const y[4], int64_t nb,
				     float out[4])
{
	const struct blk_q4_1 *x = vx;
	struct x4acc c;
	x4acc_zero(&c);
	__m128 me = _mm_setzero_ps(), mo = _mm_setzero_ps(); /* even / odd blocks */
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		me = x4_q4_1_block(x + i, y, i, &c.a0, &c.a1, &c.a2, &c.a3, me);
		mo = x4_q4_1_block(x + i + 1, y, i + 1, &c.b0, &c.b1, &c.b2, &c.b3, mo);
	}
	if (i < nb)
		me = x4_q4_1_block(x + i, y, i, &c.a0, &c.a1, &c.a2, &c.a3, me);
	_mm_storeu_ps(c.m, me);
	_mm_storeu_ps(c.m + 4, mo);
	x4acc_out(&c, out);
}
#endif /* QUANT_X86 */

// ---- public entry points (dispatch)

float quant_dot_f32(enum dt_type t, const void *x, const float *y, int64_t n)
{
	DT_ASSERT(n % block_of(t) == 0);
#if QUANT_X86
	if ((t == DT_TYPE_F32 || t == DT_TYPE_F16 || t == DT_TYPE_BF16) && use_avx2())
		return dot_f32_avx2(t, x, y, n);
#endif
	return dot_f32_scalar(t, x, y, n);
}

void quant_q8_quantize(const float *x, struct quant_q8 *out, int64_t n)
{
	DT_ASSERT(n % QUANT_Q8_BLOCK == 0);
#if QUANT_X86
	if (use_avx2()) {
		q8_quantize_avx2(x, out, n / QUANT_Q8_BLOCK);
		return;
	}
#endif
	q8_quantize_scalar(x, out, n / QUANT_Q8_BLOCK);
}

bool quant_has_q8_dot(enum dt_type t)
{
	switch (t) {
	case DT_TYPE_Q4_0:
	case DT_TYPE_Q4_1:
	case DT_TYPE_Q5_0:
	case DT_TYPE_Q5_1:
	case DT_TYPE_Q8_0:
	case DT_TYPE_Q8_1:
	case DT_TYPE_Q4_K:
	case DT_TYPE_Q6_K:
		return true;
	default:
		return false;
	}
}

float quant_dot_q8(enum dt_type t, const void *x, const struct quant_q8 *xq, int64_t n)
{
#if QUANT_X86
	if (use_avx2()) {
		switch (t) {
		case DT_TYPE_Q4_0:
			DT_ASSERT(n % QK == 0);
			return dot_q4_0_avx2(x, xq, n / QK);
		case DT_TYPE_Q4_1:
			DT_ASSERT(n % QK == 0);
			return dot_q4_1_avx2(x, xq, n / QK);
		case DT_TYPE_Q8_0:
			DT_ASSERT(n % QK == 0);
			return dot_q8_0_avx2(x, xq, n / QK);
		case DT_TYPE_Q4_K:
			DT_ASSERT(n % QK_K == 0);
			return dot_q4_K_avx2(x, xq, n / QK_K);
		case DT_TYPE_Q6_K:
			DT_ASSERT(n % QK_K == 0);
			return dot_q6_K_avx2(x, xq, n / QK_K);
		default:
			break;
		}
	}
#endif
	DT_ASSERT(quant_has_q8_dot(t) && n % block_of(t) == 0);
	return dot_q8_scalar(t, x, xq, n);
}

void quant_dot_q8_x4(enum dt_type t, const void *row, const struct quant_q8 *const xq[4], int64_t n,
		     float out[4])
{
#if QUANT_X86
	if (use_avx2()) {
		switch (t) {
		case DT_TYPE_Q4_0:
			DT_ASSERT(n % QK == 0);
			dot_q4_0_x4_avx2(row, xq, n / QK, out);
			return;
		case DT_TYPE_Q4_1:
			DT_ASSERT(n % QK == 0);
			dot_q4_1_x4_avx2(row, xq, n / QK, out);
			return;
		case DT_TYPE_Q8_0:
			DT_ASSERT(n % QK == 0);
			dot_q8_0_x4_avx2(row, xq, n / QK, out);
			return;
		default:
			break;
		}
	}
#endif
	for (int k = 0; k < 4; k++)
		out[k] = quant_dot_q8(t, row, xq[k], n);
}
