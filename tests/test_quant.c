/*
 * test_quant.c — the type table, half conversions, dequantization and dot
 * products of src/quant.c, checked against independent code written here
 * from the ggml block layouts (not copied from quant.c), on fresh random
 * blocks each run (seed printed; DT_TEST_SEED=N repeats a run).
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "common.h"
#include "quant.h"
#include "tap.h"

// ---- random numbers (splitmix64: reproducible from the printed seed)

static uint64_t rng_state;

static uint64_t rng_u64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float rng_unit(void) /* [0, 1) */
{
	return (float)(rng_u64() >> 40) * 0x1p-24f;
}

static float rng_sym(void) /* [-1, 1) */
{
	return 2 * rng_unit() - 1;
}

static void rng_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rng_u64();
}

// ---- little-endian field access

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static float h2f(const uint8_t *p)
{
	return quant_f16_to_f32(rd16(p));
}

static void wrh(uint8_t *p, float f)
{
	wr16(p, quant_f32_to_f16(f));
}

static float bits_f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint32_t f_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

// ---- independent dequantization, element by element from the layout

/* Value of element e of a row of type t (raw bytes). */
static double ref_elem(enum dt_type t, const uint8_t *row, int64_t e)
{
	int64_t b = e, k = 0;
	switch (t) {
	case DT_TYPE_F32: {
		float f;
		memcpy(&f, row + 4 * e, 4);
		return f;
	}
	case DT_TYPE_F16:
		return h2f(row + 2 * e);
	case DT_TYPE_BF16:
		return bits_f((uint32_t)rd16(row + 2 * e) << 16);
	default:
		break;
	}
	const struct quant_type_info *ti = quant_type(t);
	b = e / ti->block_size;
	k = e % ti->block_size;
	const uint8_t *p = row + b * (int64_t)ti->type_size;
	/* 32-wide formats: element k < 16 is the low nibble of byte k, k >= 16
	 * the high nibble of byte k-16 */
	int nib = k < 16 ? 0 : 4;
	int byte = (int)(k % 16);
	switch (t) {
	case DT_TYPE_Q4_0: /* {d; qs[16]} */
		return ((p[2 + byte] >> nib & 15) - 8) * (double)h2f(p);
	case DT_TYPE_Q4_1: /* {d; m; qs[16]} */
		return (p[4 + byte] >> nib & 15) * (double)h2f(p) + h2f(p + 2);
	case DT_TYPE_Q5_0: { /* {d; qh[4]; qs[16]}, bit k of qh is bit 4 of element k */
		uint32_t qh = (uint32_t)p[2] | (uint32_t)p[3] << 8 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 24;
		int q = (p[6 + byte] >> nib & 15) | (int)((qh >> k) & 1) << 4;
		return (q - 16) * (double)h2f(p);
	}
	case DT_TYPE_Q5_1: { /* {d; m; qh[4]; qs[16]} */
		uint32_t qh = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
		int q = (p[8 + byte] >> nib & 15) | (int)((qh >> k) & 1) << 4;
		return q * (double)h2f(p) + h2f(p + 2);
	}
	case DT_TYPE_Q8_0: /* {d; qs[32]} */
		return (int8_t)p[2 + k] * (double)h2f(p);
	case DT_TYPE_Q8_1: /* {d; s; qs[32]} */
		return (int8_t)p[4 + k] * (double)h2f(p);
	case DT_TYPE_Q4_K: { /* {d; dmin; scales[12]; qs[128]} */
		const uint8_t *s = p + 4;
		int j = (int)(k / 32), sc, mn; /* sub-block of 32 */
		if (j < 4) {
			sc = s[j] & 63;
			mn = s[j + 4] & 63;
		} else { /* low 4 bits from byte j+4, top 2 bits from the 6/7th bits of bytes j-4 / j */
			sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
			mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
		}
		/* 64-element chunk c uses qs[32c..32c+32): low nibbles then high */
		int c = (int)(k / 64), l = (int)(k % 32), hi = (int)(k % 64) >= 32;
		int q = p[16 + 32 * c + l] >> (hi ? 4 : 0) & 15;
		return (double)h2f(p) * sc * q - (double)h2f(p + 2) * mn;
	}
	case DT_TYPE_Q6_K: { /* {ql[128]; qh[64]; scales[16]; d} */
		int h = (int)(k / 128), r = (int)(k % 128), g = r / 32, l = r % 32;
		int lo = p[64 * h + l + 32 * (g & 1)] >> (4 * (g >> 1)) & 15;
		int hb = p[128 + 32 * h + l] >> (2 * g) & 3;
		int q = (lo | hb << 4) - 32;
		return (double)h2f(p + 208) * (int8_t)p[192 + k / 16] * q;
	}
	default:
		abort();
	}
}

// ---- reference quantizers (ggml's reference rounding) for realistic rows

static void ref_quant_q8_0(const float *x, uint8_t *p)
{
	float amax = 0;
	for (int j = 0; j < 32; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	float d = amax / 127, id = d ? 1 / d : 0;
	wrh(p, d);
	for (int j = 0; j < 32; j++)
		p[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

static void ref_quant_q4_0(const float *x, uint8_t *p)
{
	float amax = 0, max = 0;
	for (int j = 0; j < 32; j++)
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	float d = max / -8, id = d ? 1 / d : 0;
	wrh(p, d);
	for (int j = 0; j < 16; j++) {
		int a = (int)fminf(15, x[j] * id + 8.5f), b = (int)fminf(15, x[j + 16] * id + 8.5f);
		p[2 + j] = (uint8_t)(a | b << 4);
	}
}

static void ref_quant_q4_1(const float *x, uint8_t *p)
{
	float mn = x[0], mx = x[0];
	for (int j = 1; j < 32; j++) {
		mn = fminf(mn, x[j]);
		mx = fmaxf(mx, x[j]);
	}
	float d = (mx - mn) / 15, id = d ? 1 / d : 0;
	wrh(p, d);
	wrh(p + 2, mn);
	for (int j = 0; j < 16; j++) {
		int a = (int)fminf(15, (x[j] - mn) * id + 0.5f);
		int b = (int)fminf(15, (x[j + 16] - mn) * id + 0.5f);
		p[4 + j] = (uint8_t)(a | b << 4);
	}
}

// ---- row generation

static const enum dt_type supported[] = {
	DT_TYPE_F32, DT_TYPE_F16, DT_TYPE_BF16, DT_TYPE_Q4_0, DT_TYPE_Q4_1, DT_TYPE_Q5_0,
	DT_TYPE_Q5_1, DT_TYPE_Q8_0, DT_TYPE_Q8_1, DT_TYPE_Q4_K, DT_TYPE_Q6_K,
};

#define N 768       /* row length: a multiple of 256 and of 32 */
#define NROWS 6     /* random rows per type and check */
#define MAXROW (N * 4)

/* A float of varied magnitude: |x| in about [1e-3, 1] times a block factor. */
static float rand_weight(void)
{
	return rng_sym() * powf(10.0f, -3 * rng_unit());
}

/* Random row of type t: `kind` 0 = random raw bytes with sane scale fields,
 * 1 = quantized from random floats (reference quantizers), where there is one. */
static void make_row(enum dt_type t, int kind, uint8_t *row)
{
	const struct quant_type_info *ti = quant_type(t);
	size_t bs = ti->type_size;
	int64_t nb = N / ti->block_size;
	float x[32];
	if (t == DT_TYPE_F32 || t == DT_TYPE_F16 || t == DT_TYPE_BF16) {
		for (int64_t i = 0; i < N; i++) {
			float f = rand_weight();
			if (t == DT_TYPE_F32)
				memcpy(row + 4 * i, &f, 4);
			else if (t == DT_TYPE_F16)
				wr16(row + 2 * i, quant_f32_to_f16(f));
			else
				wr16(row + 2 * i, quant_f32_to_bf16(f));
		}
		return;
	}
	for (int64_t b = 0; b < nb; b++) {
		uint8_t *p = row + b * (int64_t)bs;
		if (kind == 1 && (t == DT_TYPE_Q8_0 || t == DT_TYPE_Q4_0 || t == DT_TYPE_Q4_1)) {
			float scale = powf(10.0f, -2 * rng_unit());
			float shift = t == DT_TYPE_Q4_1 ? rng_sym() * scale : 0;
			for (int j = 0; j < 32; j++)
				x[j] = rng_sym() * scale + shift;
			if (t == DT_TYPE_Q8_0)
				ref_quant_q8_0(x, p);
			else if (t == DT_TYPE_Q4_0)
				ref_quant_q4_0(x, p);
			else
				ref_quant_q4_1(x, p);
			continue;
		}
		rng_bytes(p, bs);
		/* scale fields: random finite fp16 values (raw bytes could be inf/nan) */
		switch (t) {
		case DT_TYPE_Q4_1:
		case DT_TYPE_Q5_1:
		case DT_TYPE_Q4_K:
			wrh(p, rand_weight() * 0.1f);
			wrh(p + 2, rand_weight() * 0.1f);
			break;
		case DT_TYPE_Q8_1:
			wrh(p, rand_weight() * 0.1f);
			wrh(p + 2, rand_weight()); /* s: not part of the value */
			break;
		case DT_TYPE_Q6_K:
			wrh(p + 208, rand_weight() * 0.1f);
			break;
		default:
			wrh(p, rand_weight() * 0.1f);
			break;
		}
	}
}

/* Activations with block magnitudes across 4 decades, an all-zero block and
 * an outlier, so that q8 scales vary. */
static void make_acts(float *y, int64_t n)
{
	for (int64_t b = 0; b < n / 32; b++) {
		float scale = powf(10.0f, 2 * rng_sym());
		for (int j = 0; j < 32; j++)
			y[32 * b + j] = b == 3 ? 0 : rng_sym() * scale;
	}
	y[5] = 50;
}

// ---- checks

static const char *tname(enum dt_type t)
{
	return quant_type_name(t);
}

static void test_type_table(void)
{
	static const struct {
		uint32_t id;
		const char *name;
		int32_t bs;
		size_t ts;
	} want[] = {
		{0, "f32", 1, 4}, {1, "f16", 1, 2}, {2, "q4_0", 32, 18}, {3, "q4_1", 32, 20},
		{6, "q5_0", 32, 22}, {7, "q5_1", 32, 24}, {8, "q8_0", 32, 34}, {9, "q8_1", 32, 36},
		{10, "q2_K", 256, 84}, {11, "q3_K", 256, 110}, {12, "q4_K", 256, 144},
		{13, "q5_K", 256, 176}, {14, "q6_K", 256, 210}, {15, "q8_K", 256, 292},
		{16, "iq2_xxs", 256, 66}, {17, "iq2_xs", 256, 74}, {18, "iq3_xxs", 256, 98},
		{19, "iq1_s", 256, 50}, {20, "iq4_nl", 32, 18}, {21, "iq3_s", 256, 110},
		{22, "iq2_s", 256, 82}, {23, "iq4_xs", 256, 136}, {24, "i8", 1, 1}, {25, "i16", 1, 2},
		{26, "i32", 1, 4}, {27, "i64", 1, 8}, {28, "f64", 1, 8}, {29, "iq1_m", 256, 56},
		{30, "bf16", 1, 2}, {34, "tq1_0", 256, 54}, {35, "tq2_0", 256, 66},
		{39, "mxfp4", 32, 17},
	};
	int bad = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(want); i++) {
		const struct quant_type_info *ti = quant_type(want[i].id);
		if (!ti || strcmp(ti->name, want[i].name) || ti->block_size != want[i].bs ||
		    ti->type_size != want[i].ts) {
			diag("type %u: expected %s (%d, %zu), found %s", want[i].id, want[i].name,
			     want[i].bs, want[i].ts, ti ? ti->name : "NULL");
			bad++;
		}
	}
	ok(bad == 0, "type table: %zu ggml types have ggml's name, block size and bytes per block",
	   DT_ARRAY_LEN(want));

	static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, UINT32_MAX};
	bad = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(unknown); i++)
		bad += quant_type(unknown[i]) != NULL;
	ok(bad == 0, "quant_type is NULL for the removed ids 4 5 31-33 36-38 and ids >= 40");
	ok(strcmp(quant_type_name(3), "q4_1") == 0 && strcmp(quant_type_name(5), "type-5") == 0 &&
		   strcmp(quant_type_name(70000), "type-70000") == 0,
	   "quant_type_name: q4_1 for 3, type-5 and type-70000 for unknown ids (found %s, %s)",
	   quant_type_name(3), quant_type_name(5));

	static const enum dt_type sup[] = {DT_TYPE_F32, DT_TYPE_F16, DT_TYPE_BF16, DT_TYPE_Q8_0,
					   DT_TYPE_Q4_0, DT_TYPE_Q4_1, DT_TYPE_Q4_K, DT_TYPE_Q6_K};
	bad = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(sup); i++)
		bad += !quant_type(sup[i])->supported;
	bad += quant_type(DT_TYPE_Q2_K)->supported + quant_type(DT_TYPE_I32)->supported +
	       quant_type(20)->supported;
	ok(bad == 0, "supported: true for f32 f16 bf16 q8_0 q4_0 q4_1 q4_K q6_K, false for q2_K i32 iq4_nl");

	bad = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(supported); i++)
		bad += quant_has_q8_dot(supported[i]) !=
		       (supported[i] != DT_TYPE_F32 && supported[i] != DT_TYPE_F16 && supported[i] != DT_TYPE_BF16);
	ok(bad == 0, "quant_has_q8_dot: true for every supported quantized type, false for f32/f16/bf16");
}

static void test_row_size(void)
{
	ok(quant_row_size(DT_TYPE_Q4_1, 576) == 360 && quant_row_size(DT_TYPE_Q8_0, 576) == 612 &&
		   quant_row_size(DT_TYPE_F32, 10) == 40 && quant_row_size(DT_TYPE_Q6_K, 512) == 420 &&
		   quant_row_size(DT_TYPE_Q4_K, 256) == 144 && quant_row_size(DT_TYPE_F16, 0) == 0 &&
		   quant_row_size(35, 768) == 198,
	   "quant_row_size: q4_1 576 -> 360, q8_0 576 -> 612, f32 10 -> 40, q6_K 512 -> 420, tq2_0 768 -> 198");
	ok(quant_row_size(DT_TYPE_Q4_1, 33) == 0 && quant_row_size(DT_TYPE_Q4_K, 128) == 0 &&
		   quant_row_size(DT_TYPE_F32, -4) == 0 && quant_row_size(4, 32) == 0 &&
		   quant_row_size(99, 32) == 0,
	   "quant_row_size is 0 for n not a block multiple, negative n and unknown types");
	ok(quant_row_size(DT_TYPE_F64, INT64_MAX / 2) == 0 && quant_row_size(DT_TYPE_I64, INT64_MAX) == 0 &&
		   quant_row_size(DT_TYPE_F32, INT64_MAX / 8) == (size_t)(INT64_MAX / 8) * 4,
	   "quant_row_size is 0 when the byte count overflows 64 bits (f64 n = INT64_MAX/2, i64 n = INT64_MAX), exact just below");
}

/* Nearest f16 to f (ties to even), by bisection over the ordered positive
 * f16 codes: independent of the library's bit tricks. */
static uint16_t ref_f32_to_f16(float f)
{
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	double a = fabs((double)f);
	if (isnan(f))
		return 0x7e00;
	if (a >= 65520.0) /* halfway between 65504 and 65536 and above: inf */
		return sign | 0x7c00;
	int lo = 0, hi = 0x7bff; /* largest code with value <= a */
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if ((double)quant_f16_to_f32((uint16_t)mid) <= a)
			lo = mid;
		else
			hi = mid - 1;
	}
	double vlo = quant_f16_to_f32((uint16_t)lo), vhi = quant_f16_to_f32((uint16_t)(lo + 1));
	int pick = lo;
	if (a - vlo > vhi - a || (a - vlo == vhi - a && (lo & 1)))
		pick = lo + 1;
	return (uint16_t)(sign | pick);
}

static void test_f16(void)
{
	int bad = 0;
	for (uint32_t h = 0; h < 0x10000; h++) {
		uint32_t e = h >> 10 & 31, m = h & 1023;
		double want = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m | 1024, (int)e - 25);
		if (h & 0x8000)
			want = -want;
		float got = quant_f16_to_f32((uint16_t)h);
		if (e == 31 && m) {
			bad += !isnan(got);
		} else {
			bad += (double)got != want || !signbit(got) != !signbit(want);
		}
	}
	ok(bad == 0, "f16 -> f32 exact for all 65536 codes (subnormals m*2^-24, inf, nan, -0) (%d wrong)", bad);

	bad = 0;
	for (uint32_t h = 0; h < 0x10000; h++) {
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
			continue;
		bad += quant_f32_to_f16(quant_f16_to_f32((uint16_t)h)) != h;
	}
	ok(bad == 0, "f32 -> f16 round trip is the identity on every non-nan f16 code (%d wrong)", bad);

	uint16_t nan16 = quant_f32_to_f16(NAN);
	ok(quant_f32_to_f16(0.0f) == 0 && quant_f32_to_f16(-0.0f) == 0x8000 &&
		   quant_f32_to_f16(65504.0f) == 0x7bff && quant_f32_to_f16(65519.99f) == 0x7bff &&
		   quant_f32_to_f16(65520.0f) == 0x7c00 && quant_f32_to_f16(1e10f) == 0x7c00 &&
		   quant_f32_to_f16(INFINITY) == 0x7c00 && quant_f32_to_f16(-INFINITY) == 0xfc00 &&
		   (nan16 & 0x7c00) == 0x7c00 && (nan16 & 0x3ff) != 0,
	   "f32 -> f16: 0, -0, 65504, 65519.99 -> max, 65520 and 1e10 -> inf, +-inf, nan stays nan (0x%04x)",
	   nan16);
	ok(quant_f32_to_f16(0x1p-24f) == 0x0001 && quant_f32_to_f16(0x1p-25f) == 0 &&
		   quant_f32_to_f16(0x1.000002p-25f) == 0x0001 && quant_f32_to_f16(0x3p-25f) == 0x0002 &&
		   quant_f32_to_f16(0x5p-25f) == 0x0002 && quant_f32_to_f16(0x1p-14f) == 0x0400 &&
		   quant_f32_to_f16(0x1.ffcp-15f) == 0x0400 && quant_f32_to_f16(-0x1p-26f) == 0x8000,
	   "f32 -> f16 subnormals: 2^-24 -> 1, ties 2^-25 -> 0, 3*2^-25 -> 2, 5*2^-25 -> 2, 1023.5*2^-24 carries into the smallest normal");
	ok(quant_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00 && quant_f32_to_f16(1.0f + 0x3p-11f) == 0x3c02 &&
		   quant_f32_to_f16(1.0f + 0x1p-11f + 0x1p-23f) == 0x3c01 &&
		   quant_f32_to_f16(2047.0f / 1024 + 0x1p-11f) == 0x4000,
	   "f32 -> f16 normal ties go to even (1+2^-11 -> 1, 1+3*2^-11 -> 1+2^-9), above a tie rounds up");

	/* every midpoint between adjacent finite f16 values (exact in float) and
	 * its float neighbours, plus random floats over the f16 range */
	bad = 0;
	for (uint32_t h = 0; h < 0x7bff; h++) {
		float mid = (float)(((double)quant_f16_to_f32((uint16_t)h) + quant_f16_to_f32((uint16_t)(h + 1))) / 2);
		float cand[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
		for (int k = 0; k < 3; k++) {
			bad += quant_f32_to_f16(cand[k]) != ref_f32_to_f16(cand[k]);
			bad += quant_f32_to_f16(-cand[k]) != ref_f32_to_f16(-cand[k]);
		}
	}
	for (int i = 0; i < 200000; i++) {
		float f = rng_sym() * ldexpf(1.0f, (int)(rng_u64() % 44) - 28);
		bad += quant_f32_to_f16(f) != ref_f32_to_f16(f);
	}
	ok(bad == 0, "f32 -> f16 equals a bisection nearest-even reference at all %d midpoints +-1 ulp and 200000 random floats (%d wrong)",
	   0x7bff, bad);

	ok(quant_bf16_to_f32(0x3f80) == 1.0f && quant_bf16_to_f32(0xc000) == -2.0f &&
		   f_bits(quant_bf16_to_f32(0x8000)) == 0x80000000u && isinf(quant_bf16_to_f32(0x7f80)),
	   "bf16 -> f32: 1, -2, -0, inf");
	ok(quant_f32_to_bf16(1.0f) == 0x3f80 && quant_f32_to_bf16(bits_f(0x3f808000)) == 0x3f80 &&
		   quant_f32_to_bf16(bits_f(0x3f818000)) == 0x3f82 &&
		   quant_f32_to_bf16(bits_f(0x3f808001)) == 0x3f81 &&
		   quant_f32_to_bf16(bits_f(0x3f807fff)) == 0x3f80 && quant_f32_to_bf16(-0.0f) == 0x8000 &&
		   quant_f32_to_bf16(INFINITY) == 0x7f80 && quant_f32_to_bf16(bits_f(0x7f7fffff)) == 0x7f80 &&
		   (quant_f32_to_bf16(NAN) & 0x7f80) == 0x7f80 && (quant_f32_to_bf16(NAN) & 0x7f) != 0 &&
		   (quant_f32_to_bf16(bits_f(0x7f800001)) & 0x7f) != 0,
	   "f32 -> bf16: ties to even, above/below a tie, -0, inf, FLT_MAX -> inf, nan (also a low-payload nan) stays nan");
	bad = 0;
	for (int i = 0; i < 100000; i++) {
		uint32_t u = (uint32_t)rng_u64();
		if ((u & 0x7f800000u) == 0x7f800000u)
			continue;
		uint32_t lo = u & 0xffff0000u, up = lo + 0x10000u, r = u & 0xffffu;
		uint32_t want = r < 0x8000 ? lo : r > 0x8000 ? up : ((lo >> 16) & 1) ? up : lo;
		bad += quant_f32_to_bf16(bits_f(u)) != (uint16_t)(want >> 16);
	}
	ok(bad == 0, "f32 -> bf16 equals truncate-and-compare rounding on 100000 random finite floats (%d wrong)", bad);
}

/* Largest |a-b| / scale over a set, for messages. */
struct maxerr {
	double worst; /* largest err / tolerance seen (<= 1 passes) */
	double err;   /* the error at that point */
};

static void note(struct maxerr *m, double err, double tol)
{
	double r = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0);
	if (r > m->worst || isnan(err)) {
		m->worst = isnan(err) ? INFINITY : r;
		m->err = err;
	}
}

static float scratch_y[MAXROW], scratch_deq[MAXROW];
static _Alignas(32) uint8_t scratch_row[MAXROW * 4]; /* rows are 2-byte aligned in GGUF too */
static struct quant_q8 scratch_q8[4][N / 32];
static float scratch_acts[4][N];

static void test_q8_quantize(bool have_avx2)
{
	/* invariants: |x - d*q| <= d/2, max |q| = 127, s = d*sum(q), zero block */
	struct maxerr e = {0, 0};
	int bad = 0;
	for (int r = 0; r < NROWS; r++) {
		make_acts(scratch_y, N);
		quant_q8_quantize(scratch_y, scratch_q8[0], N);
		for (int b = 0; b < N / 32; b++) {
			const struct quant_q8 *q = &scratch_q8[0][b];
			int amax = 0, sum = 0;
			for (int j = 0; j < 32; j++) {
				/* + 1e-4: x*(1/d) is rounded in float, |x/d| <= 127 */
				note(&e, fabs(scratch_y[32 * b + j] - (double)q->d * q->q[j]), q->d * 0.5 * (1 + 1e-4));
				amax = abs(q->q[j]) > amax ? abs(q->q[j]) : amax;
				sum += q->q[j];
			}
			bad += b == 3 ? (q->d != 0 || amax != 0 || q->s != 0) : (amax != 127);
			bad += q->s != q->d * (float)sum;
		}
	}
	ok(e.worst <= 1, "q8 quantize (%s): |x - d*q| <= d/2 * (1 + 1e-4) (worst %.3g of the bound)", quant_simd_name(), e.worst);
	ok(bad == 0, "q8 quantize (%s): max |q| = 127, s = d*sum(q), a zero block gives d = s = 0 (%d wrong)",
	   quant_simd_name(), bad);
	if (!have_avx2) {
		tap_skip("q8 quantize avx2 = scalar: no AVX2/FMA/F16C on this CPU");
		return;
	}
	bad = 0;
	for (int r = 0; r < NROWS; r++) {
		make_acts(scratch_y, N);
		scratch_y[7] = 0.5f; /* a probable x/d tie in some block */
		quant_q8_quantize(scratch_y, scratch_q8[0], N);
		quant_force_scalar(true);
		quant_q8_quantize(scratch_y, scratch_q8[1], N);
		quant_force_scalar(false);
		bad += memcmp(scratch_q8[0], scratch_q8[1], sizeof(scratch_q8[0])) != 0;
	}
	ok(bad == 0, "q8 quantize: avx2 and scalar give bit-identical blocks on %d random rows", NROWS);
}

/* One supported type: dequant vs the layout reference, float and q8 dots vs
 * double references, x4 vs single, avx2 vs scalar (tolerances relative to
 * the sum of |terms|, which bounds float summation error). */
static void test_type(enum dt_type t, bool have_avx2)
{
	int kinds = (t == DT_TYPE_Q8_0 || t == DT_TYPE_Q4_0 || t == DT_TYPE_Q4_1) ? 2 : 1;
	struct maxerr deq = {0, 0}, df = {0, 0}, dq = {0, 0}, simd_f = {0, 0}, simd_q = {0, 0},
		      x4 = {0, 0}, x4s = {0, 0};
	bool q8 = quant_has_q8_dot(t);
	for (int r = 0; r < NROWS * kinds; r++) {
		int kind = r % kinds;
		make_row(t, kind, scratch_row);
		/* dequant vs the element-wise reference */
		quant_dequant_row(t, scratch_row, scratch_deq, N);
		double rmax = 0;
		for (int64_t i = 0; i < N; i++)
			rmax = fmax(rmax, fabs(ref_elem(t, scratch_row, i)));
		for (int64_t i = 0; i < N; i++) {
			double want = ref_elem(t, scratch_row, i);
			note(&deq, fabs(scratch_deq[i] - want), 1e-6 * rmax + 1e-30);
		}
		/* float dot */
		for (int k = 0; k < 4; k++)
			make_acts(scratch_acts[k], N);
		double want = 0, mag = 0;
		for (int64_t i = 0; i < N; i++) {
			double term = ref_elem(t, scratch_row, i) * scratch_acts[0][i];
			want += term;
			mag += fabs(term);
		}
		float got = quant_dot_f32(t, scratch_row, scratch_acts[0], N);
		note(&df, fabs(got - want), 1e-4 * mag);
		if (have_avx2) {
			quant_force_scalar(true);
			float sc = quant_dot_f32(t, scratch_row, scratch_acts[0], N);
			quant_force_scalar(false);
			note(&simd_f, fabs(got - sc), 1e-5 * mag);
		}
		if (!q8)
			continue;
		/* q8 dot vs the double dot with the dequantized activations */
		const struct quant_q8 *xq[4];
		for (int k = 0; k < 4; k++) {
			quant_q8_quantize(scratch_acts[k], scratch_q8[k], N);
			xq[k] = scratch_q8[k];
		}
		want = 0;
		mag = 0;
		for (int64_t i = 0; i < N; i++) {
			const struct quant_q8 *b = &scratch_q8[0][i / 32];
			double term = ref_elem(t, scratch_row, i) * ((double)b->d * b->q[i % 32]);
			want += term;
			mag += fabs(term);
		}
		got = quant_dot_q8(t, scratch_row, scratch_q8[0], N);
		note(&dq, fabs(got - want), 1e-4 * mag);
		float out[4], single[4], scalar[4];
		for (int pass = 0; pass < (have_avx2 ? 2 : 1); pass++) {
			quant_force_scalar(pass == 1);
			quant_dot_q8_x4(t, scratch_row, xq, N, out);
			for (int k = 0; k < 4; k++) {
				single[k] = quant_dot_q8(t, scratch_row, xq[k], N);
				note(pass ? &x4s : &x4, fabs(out[k] - single[k]), 1e-6 * mag + 1e-30);
			}
			if (pass == 1) {
				for (int k = 0; k < 4; k++)
					scalar[k] = single[k];
				quant_force_scalar(false);
				quant_dot_q8_x4(t, scratch_row, xq, N, out);
				note(&simd_q, fabs(out[0] - scalar[0]), 1e-5 * mag);
				note(&simd_q, fabs(quant_dot_q8(t, scratch_row, xq[0], N) - scalar[0]), 1e-5 * mag);
			}
		}
		quant_force_scalar(false);
	}
	ok(deq.worst <= 1, "%s: dequant_row = element-wise reference from the layout within 1e-6 * max|value| (%d rows, worst %.3g of tol)",
	   tname(t), NROWS * kinds, deq.worst);
	ok(df.worst <= 1, "%s: dot_f32 (%s) = double dot within 1e-4 * sum|terms| (worst %.3g of tol)",
	   tname(t), quant_simd_name(), df.worst);
	if (have_avx2)
		ok(simd_f.worst <= 1, "%s: dot_f32 avx2 = scalar within 1e-5 * sum|terms| (worst %.3g of tol)",
		   tname(t), simd_f.worst);
	else
		tap_skip("%s: dot_f32 avx2 = scalar: no AVX2/FMA/F16C", tname(t));
	if (!q8)
		return;
	ok(dq.worst <= 1, "%s: dot_q8 (%s) = double dot(dequant row, d*q) within 1e-4 * sum|terms| (worst %.3g of tol)",
	   tname(t), quant_simd_name(), dq.worst);
	ok(x4.worst <= 1, "%s: dot_q8_x4 (%s) = 4 x dot_q8 within 1e-6 * sum|terms| (worst %.3g of tol)",
	   tname(t), quant_simd_name(), x4.worst);
	if (have_avx2) {
		ok(x4s.worst <= 1, "%s: dot_q8_x4 (scalar) = 4 x dot_q8 within 1e-6 * sum|terms| (worst %.3g of tol)",
		   tname(t), x4s.worst);
		ok(simd_q.worst <= 1, "%s: dot_q8 and x4 avx2 = scalar within 1e-5 * sum|terms| (worst %.3g of tol)",
		   tname(t), simd_q.worst);
	} else {
		tap_skip("%s: dot_q8_x4 scalar: covered above (no AVX2)", tname(t));
		tap_skip("%s: dot_q8 avx2 = scalar: no AVX2/FMA/F16C", tname(t));
	}
}

/* Realistic rows from the reference quantizers round-trip within their
 * rounding bound. */
static void test_roundtrip(void)
{
	static const enum dt_type ts[] = {DT_TYPE_Q8_0, DT_TYPE_Q4_0, DT_TYPE_Q4_1};
	float x[N];
	for (size_t ti = 0; ti < DT_ARRAY_LEN(ts); ti++) {
		enum dt_type t = ts[ti];
		size_t bs = quant_type(t)->type_size;
		struct maxerr e = {0, 0};
		for (int r = 0; r < NROWS; r++) {
			for (int b = 0; b < N / 32; b++) {
				float scale = powf(10.0f, -2 * rng_unit()), shift = rng_sym() * scale;
				for (int j = 0; j < 32; j++)
					x[32 * b + j] = rng_sym() * scale + (t == DT_TYPE_Q4_1 ? shift : 0);
				uint8_t *p = scratch_row + b * bs;
				if (t == DT_TYPE_Q8_0)
					ref_quant_q8_0(x + 32 * b, p);
				else if (t == DT_TYPE_Q4_0)
					ref_quant_q4_0(x + 32 * b, p);
				else
					ref_quant_q4_1(x + 32 * b, p);
			}
			quant_dequant_row(t, scratch_row, scratch_deq, N);
			for (int b = 0; b < N / 32; b++) {
				const uint8_t *p = scratch_row + b * bs;
				/* the exact (float) scale the quantizer used, recomputed */
				float amax = 0, mn = x[32 * b], mx = x[32 * b];
				for (int j = 0; j < 32; j++) {
					amax = fmaxf(amax, fabsf(x[32 * b + j]));
					mn = fminf(mn, x[32 * b + j]);
					mx = fmaxf(mx, x[32 * b + j]);
				}
				double d = t == DT_TYPE_Q8_0 ? amax / 127.0 : t == DT_TYPE_Q4_0 ? amax / 8.0 : (mx - mn) / 15.0;
				double dh = fabs(h2f(p));
				double qmax = t == DT_TYPE_Q8_0 ? 127 : t == DT_TYPE_Q4_0 ? 8 : 15;
				double tol = d / 2 + qmax * fabs(d - dh) + (t == DT_TYPE_Q4_1 ? fabs(mn - h2f(p + 2)) : 0);
				for (int j = 0; j < 32; j++) {
					/* Q4_0 maps -max to step 16, clamped to 15: one whole step off */
					double xj = x[32 * b + j];
					double extra = t == DT_TYPE_Q4_0 && fabs(xj) > 7.5 * d ? d / 2 : 0;
					note(&e, fabs(xj - scratch_deq[32 * b + j]), (tol + extra) * (1 + 1e-5) + 1e-12);
				}
			}
		}
		ok(e.worst <= 1, "%s: dequant(quantize(x)) within d/2 + qmax*|d - fp16(d)| (+ |min - fp16(min)|) of x (q4_0: d at its clamped end) (worst %.3g of tol)",
		   tname(t), e.worst);
	}
}

static void test_odd_lengths(bool have_avx2)
{
	/* f32/f16/bf16 dots with lengths that leave SIMD tails */
	static const int64_t lens[] = {1, 7, 9, 31, 33, 37, 100};
	static const enum dt_type ts[] = {DT_TYPE_F32, DT_TYPE_F16, DT_TYPE_BF16};
	struct maxerr e = {0, 0};
	for (size_t ti = 0; ti < DT_ARRAY_LEN(ts); ti++)
		for (size_t li = 0; li < DT_ARRAY_LEN(lens); li++) {
			int64_t n = lens[li];
			make_row(ts[ti], 0, scratch_row);
			make_acts(scratch_y, 128);
			double want = 0, mag = 0;
			for (int64_t i = 0; i < n; i++) {
				double term = ref_elem(ts[ti], scratch_row, i) * scratch_y[i];
				want += term;
				mag += fabs(term);
			}
			for (int pass = 0; pass < (have_avx2 ? 2 : 1); pass++) {
				quant_force_scalar(pass == 1);
				note(&e, fabs(quant_dot_f32(ts[ti], scratch_row, scratch_y, n) - want), 1e-5 * mag + 1e-30);
			}
			quant_force_scalar(false);
		}
	ok(e.worst <= 1, "f32/f16/bf16 dot_f32 for n = 1 7 9 31 33 37 100 (scalar%s) within 1e-5 * sum|terms| (worst %.3g of tol)",
	   have_avx2 ? " and avx2" : "", e.worst);
}

static void test_simd_switch(bool have_avx2)
{
	bool prev = quant_force_scalar(true);
	bool prev2 = quant_force_scalar(false);
	ok(!prev && prev2, "quant_force_scalar returns the previous state (false, then true)");
	const char *now = quant_simd_name();
	quant_force_scalar(true);
	const char *forced = quant_simd_name();
	quant_force_scalar(false);
	ok(strcmp(forced, "scalar") == 0 && strcmp(now, have_avx2 ? "avx2" : "scalar") == 0,
	   "quant_simd_name: %s by default on this CPU, scalar when forced (found %s, %s)",
	   have_avx2 ? "avx2" : "scalar", now, forced);
}

int main(void)
{
	const char *s = getenv("DT_TEST_SEED");
	uint64_t seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	rng_state = seed;
	tap_plan_lazy();
	diag("seed %" PRIu64 " (DT_TEST_SEED=%" PRIu64 " repeats this run)", seed, seed);
	bool have_avx2 = strcmp(quant_simd_name(), "avx2") == 0;
	diag("simd: %s", quant_simd_name());

	test_type_table();
	test_row_size();
	test_f16();
	test_simd_switch(have_avx2);
	test_q8_quantize(have_avx2);
	for (size_t i = 0; i < DT_ARRAY_LEN(supported); i++)
		test_type(supported[i], have_avx2);
	test_roundtrip();
	test_odd_lengths(have_avx2);
	return tap_done();
}
