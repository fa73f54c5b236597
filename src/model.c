/*
 * model.c — architecture table, hyper-parameters from GGUF metadata, weight
 * binding with shape checks, and the CPU forward pass.
 *
 * DESIGN
 *   Loading: gguf_open() maps and validates the file; model_bind() reads the
 *   `{arch}.*` keys into struct model_hparams, then looks up every tensor the
 *   architecture needs and checks its type and shape against them.  Matrices
 *   are bound in place (struct cpu_matrix points into the mapping); the small
 *   1-D tensors (norm weights, biases, rope_freqs) are converted to owned
 *   float arrays.  model_describe() runs the same binding on a throw-away
 *   struct, so `deftree inspect` reports exactly what model_load() would.
 *
 *   Forward: the batch's hidden states x (n, n_embd) go through n_layer blocks
 *       xn = rmsnorm(x) · attn_norm
 *       q, k, v = xn · Wq^T (+bq), xn · Wk^T (+bk), xn · Wv^T (+bv)   one matmul job
 *       rope(q), rope(k) at each token's position
 *       kv->store(k, v); kv->attend(q) -> a                         the caller's attention
 *       x += a · Wo^T
 *       xn = rmsnorm(x) · ffn_norm
 *       g, u = xn · Wgate^T, xn · Wup^T                              one matmul job
 *       x += (silu(g) * u) · Wdown^T
 *   then only the rows that need logits get the final norm and the output
 *   projection (output.weight, or token_embd when tied).  Element-wise work
 *   on batches is split over the pool by rows; a single token runs it inline.
 *
 *   Scratch buffers are sized for the largest batch seen so far (at most
 *   n_batch rows), so a decode-only user never holds prefill-sized buffers.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cpu_matmul.h"
#include "cpu_ops.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "threadpool.h"

// ---- architecture table

struct model_arch {
	const char *name;
	bool rope_neox;  /* llama.cpp rope type NEOX (halves) vs NORM (adjacent pairs) */
	int qkv_bias;    /* 0 = never, 1 = required, 2 = optional */
};

static const struct model_arch model_archs[] = {
	{ "llama", false, 2 },
	{ "qwen2", true, 1 },
};

static const struct model_arch *model_find_arch(const char *name)
{
	for (size_t i = 0; i < DT_ARRAY_LEN(model_archs); i++)
		if (!strcmp(model_archs[i].name, name))
			return &model_archs[i];
	return NULL;
}

/* Copies s into buf (n bytes) with bytes outside printable ASCII as \xNN, so
 * that strings from a file cannot reach the terminal as control sequences. */
static const char *model_esc(const char *s, char *buf, size_t n)
{
	size_t o = 0;
	for (; *s && o + 5 < n; s++) {
		const unsigned char ch = (unsigned char)*s;
		if (ch >= 0x20 && ch < 0x7f)
			buf[o++] = (char)ch;
		else
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
	}
	buf[o] = 0;
	return buf;
}

// ---- the model

struct model_layer {
	float *attn_norm;                /* (n_embd) */
	struct cpu_matrix wq, wk, wv;    /* (n_head*head_dim | n_head_kv*head_dim, n_embd) */
	float *bq, *bk, *bv;             /* (n_head*head_dim | n_head_kv*head_dim) or NULL */
	struct cpu_matrix wo;            /* (n_embd, n_head*head_dim) */
	float *ffn_norm;                 /* (n_embd) */
	struct cpu_matrix w_gate, w_up;  /* (n_ff, n_embd) */
	struct cpu_matrix w_down;        /* (n_embd, n_ff) */
};

struct model_scratch {
	int32_t cap;    /* rows allocated */
	float *x;       /* (cap, n_embd) residual stream */
	float *xn;      /* (cap, n_embd) normalized */
	float *q;       /* (cap, n_head*head_dim) */
	float *k, *v;   /* (cap, n_head_kv*head_dim) */
	float *att;     /* (cap, n_head*head_dim) attention output */
	float *tmp;     /* (cap, n_embd) */
	float *gate;    /* (cap, n_ff) */
	float *up;      /* (cap, n_ff) */
	float *rope_cs; /* (cap, n_rot) cos, sin per token */
	int32_t *rows;  /* (cap) rows that need logits */
};

struct model {
	struct gguf_ctx *g;
	struct model_hparams hp;
	struct model_params params;
	struct threadpool *tp;
	struct cpu_matmul_ws *ws;

	struct cpu_matrix tok_embd;   /* (n_vocab, n_embd) */
	float *output_norm;           /* (n_embd) */
	struct cpu_matrix output;     /* (n_vocab, n_embd): token_embd when tied */
	float *rope_freqs;            /* (n_rot/2) or NULL */
	struct model_layer *layers;   /* (n_layer) */
	size_t weight_bytes;
	struct cpu_rope rope;

	struct model_scratch s;
	struct model_timing timing;
};

struct model_params model_default_params(void)
{
	return (struct model_params){ .n_threads = dt_ncpu(), .n_batch = 512 };
}

// ---- hyper-parameters

/* Reads "{arch}.suffix" as a positive int32. */
static int hp_get_i32(const struct gguf_ctx *g, const char *arch, const char *suffix, bool required,
		      int32_t def, int32_t *out, char *err)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	if (gguf_find_key(g, key) < 0) {
		if (required)
			return dt_err(err, "%s: missing metadata key %s (required for %s models)",
				      gguf_path(g), key, arch);
		*out = def;
		return 0;
	}
	int64_t v;
	if (gguf_get_i64(g, key, &v, err) != 0)
		return -1;
	if (v <= 0 || v > (1 << 30))
		return dt_err(err, "%s: %s = %lld out of range (expected 1 .. 2^30)", gguf_path(g), key,
			      (long long)v);
	*out = (int32_t)v;
	return 0;
}

static int hp_get_f32(const struct gguf_ctx *g, const char *arch, const char *suffix, bool required,
		      float def, float *out, char *err)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	if (gguf_find_key(g, key) < 0) {
		if (required)
			return dt_err(err, "%s: missing metadata key %s (required for %s models)",
				      gguf_path(g), key, arch);
		*out = def;
		return 0;
	}
	if (gguf_get_f32(g, key, out, err) != 0)
		return -1;
	if (!isfinite(*out) || *out <= 0.0f)
		return dt_err(err, "%s: %s = %g out of range (expected a positive number)",
			      gguf_path(g), key, (double)*out);
	return 0;
}

static int model_read_hparams(const struct gguf_ctx *g, struct model_hparams *hp,
			      const struct model_arch **arch_out, char *err)
{
	const char *path = gguf_path(g);
	const char *arch;
	memset(hp, 0, sizeof(*hp));
	if (gguf_find_key(g, "general.architecture") < 0)
		return dt_err(err, "%s: missing metadata key general.architecture (not a model file?)",
			      path);
	if (gguf_get_str(g, "general.architecture", &arch, err) != 0)
		return -1;
	const struct model_arch *a = model_find_arch(arch);
	char esc[96];
	if (!a)
		return dt_err(err, "%s: unsupported architecture '%s' (expected llama or qwen2)", path,
			      model_esc(arch, esc, sizeof(esc)));
	*arch_out = a;
	snprintf(hp->arch, sizeof(hp->arch), "%s", arch);
	const char *name;
	if (gguf_find_key(g, "general.name") >= 0 && gguf_get_str(g, "general.name", &name, NULL) == 0)
		model_esc(name, hp->name, sizeof(hp->name));

	int bad = 0;
	bad = bad || hp_get_i32(g, arch, "block_count", true, 0, &hp->n_layer, err);
	bad = bad || hp_get_i32(g, arch, "embedding_length", true, 0, &hp->n_embd, err);
	bad = bad || hp_get_i32(g, arch, "feed_forward_length", true, 0, &hp->n_ff, err);
	bad = bad || hp_get_i32(g, arch, "attention.head_count", true, 0, &hp->n_head, err);
	bad = bad || hp_get_i32(g, arch, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, err);
	bad = bad || hp_get_i32(g, arch, "context_length", true, 0, &hp->n_ctx_train, err);
	bad = bad || hp_get_f32(g, arch, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps, err);
	bad = bad || hp_get_f32(g, arch, "rope.freq_base", false, 10000.0f, &hp->rope_base, err);
	if (bad)
		return -1;
	if (hp->n_head % hp->n_head_kv != 0)
		return dt_err(err, "%s: %s.attention.head_count %d is not a multiple of head_count_kv %d",
			      path, arch, hp->n_head, hp->n_head_kv);
	if (hp->n_embd % hp->n_head != 0)
		return dt_err(err, "%s: %s.embedding_length %d is not a multiple of head_count %d",
			      path, arch, hp->n_embd, hp->n_head);
	int32_t kl, vl;
	if (hp_get_i32(g, arch, "attention.key_length", false, hp->n_embd / hp->n_head, &kl, err) ||
	    hp_get_i32(g, arch, "attention.value_length", false, kl, &vl, err))
		return -1;
	if (kl != vl)
		return dt_err(err, "%s: %s.attention.key_length %d != value_length %d (unsupported)",
			      path, arch, kl, vl);
	hp->head_dim = kl;
	if (hp_get_i32(g, arch, "rope.dimension_count", false, hp->head_dim, &hp->n_rot, err))
		return -1;
	if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
		return dt_err(err, "%s: %s.rope.dimension_count %d invalid (expected even, <= head dim %d)",
			      path, arch, hp->n_rot, hp->head_dim);

	/* rope scaling: {arch}.rope.scaling.type + factor, or the older rope.scale_linear */
	hp->rope_scale = 1.0f;
	hp->rope_scaling = MODEL_ROPE_SCALING_NONE;
	char key[128];
	snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
	const char *stype = "none";
	if (gguf_find_key(g, key) >= 0 && gguf_get_str(g, key, &stype, err) != 0)
		return -1;
	float factor = 0.0f;
	snprintf(key, sizeof(key), "%s.rope.scaling.factor", arch);
	if (gguf_find_key(g, key) >= 0 && gguf_get_f32(g, key, &factor, err) != 0)
		return -1;
	snprintf(key, sizeof(key), "%s.rope.scale_linear", arch);
	if (gguf_find_key(g, key) >= 0) {
		if (gguf_get_f32(g, key, &factor, err) != 0)
			return -1;
		stype = "linear";
	}
	if (!strcmp(stype, "linear")) {
		if (!(factor > 0.0f) || !isfinite(factor))
			return dt_err(err, "%s: linear rope scaling with factor %g (expected > 0)", path,
				      (double)factor);
		if (factor != 1.0f) {
			hp->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
			hp->rope_scale = factor;
		}
	} else if (strcmp(stype, "none") != 0) {
		return dt_err(err, "%s: unsupported rope scaling type '%s' (expected none or linear)",
			      path, model_esc(stype, esc, sizeof(esc)));
	}
	hp->rope_neox = a->rope_neox;

	/* vocabulary: the tokenizer's token list when present */
	if (gguf_find_key(g, "tokenizer.ggml.tokens") >= 0) {
		enum gguf_type elt;
		int64_t n;
		const void *data;
		if (gguf_get_arr(g, "tokenizer.ggml.tokens", &elt, &n, &data, err) != 0)
			return -1;
		if (elt != GGUF_TYPE_STRING || n <= 0 || n > (1 << 30))
			return dt_err(err, "%s: tokenizer.ggml.tokens is not a non-empty string array",
				      path);
		hp->n_vocab = (int32_t)n;
	}
	return 0;
}

// ---- weight binding

static const struct gguf_tensor *find_tensor(const struct gguf_ctx *g, const char *name,
					     bool required, char *err)
{
	const struct gguf_tensor *t = gguf_find_tensor(g, name);
	if (!t && required)
		dt_err(err, "%s: missing tensor %s", gguf_path(g), name);
	return t;
}

static int check_shape(const struct gguf_ctx *g, const struct gguf_tensor *t, int64_t ne0,
		       int64_t ne1, char *err)
{
	const int want_dims = ne1 > 0 ? 2 : 1;
	bool okay = t->ne[0] == ne0 && (want_dims == 1 ? t->ne[1] == 1 : t->ne[1] == ne1) &&
		    t->ne[2] == 1 && t->ne[3] == 1;
	if (okay)
		return 0;
	char want[64], got[96];
	if (want_dims == 2)
		snprintf(want, sizeof(want), "[%lld, %lld]", (long long)ne0, (long long)ne1);
	else
		snprintf(want, sizeof(want), "[%lld]", (long long)ne0);
	/* 4 dims of at most 20 digits fit in got[96] */
	size_t len = (size_t)snprintf(got, sizeof(got), "[%lld", (long long)t->ne[0]);
	for (uint32_t d = 1; d < t->n_dims && d < GGUF_MAX_DIMS; d++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, ", %lld", (long long)t->ne[d]);
	snprintf(got + len, sizeof(got) - len, "]");
	return dt_err(err, "%s: tensor %s has shape %s (expected %s)", gguf_path(g), t->name, got,
		      want);
}

/* Binds a 2-D matrix of n_out rows of n_in elements. */
static int bind_matrix(struct model *m, const char *name, int64_t n_in, int64_t n_out,
		       struct cpu_matrix *w, char *err)
{
	const struct gguf_tensor *t = find_tensor(m->g, name, true, err);
	if (!t || check_shape(m->g, t, n_in, n_out, err))
		return -1;
	const struct quant_type_info *ti = quant_type(t->type);
	if (!ti || !ti->supported)
		return dt_err(err, "%s: tensor %s has unsupported type %s", gguf_path(m->g), name,
			      quant_type_name(t->type));
	if (t->type == DT_TYPE_Q8_1)
		return dt_err(err, "%s: tensor %s has type q8_1 (an activation format, not supported for weights)",
			      gguf_path(m->g), name);
	w->data = t->data;
	w->type = (enum dt_type)t->type;
	w->n_in = n_in;
	w->n_out = n_out;
	w->row_bytes = quant_row_size(t->type, n_in);
	if (w->row_bytes == 0)
		return dt_err(err, "%s: tensor %s: row of %lld elements is not a whole number of %s blocks",
			      gguf_path(m->g), name, (long long)n_in, ti->name);
	m->weight_bytes += t->nbytes;
	return 0;
}

/* Binds a 1-D vector as an owned float copy (*out stays NULL when absent and optional). */
static int bind_vector(struct model *m, const char *name, int64_t n, bool required, float **out,
		       char *err)
{
	*out = NULL;
	const struct gguf_tensor *t = find_tensor(m->g, name, required, err);
	if (!t)
		return required ? -1 : 0;
	if (check_shape(m->g, t, n, 0, err))
		return -1;
	if (t->type != DT_TYPE_F32 && t->type != DT_TYPE_F16 && t->type != DT_TYPE_BF16)
		return dt_err(err, "%s: tensor %s has type %s (expected f32, f16 or bf16)",
			      gguf_path(m->g), name, quant_type_name(t->type));
	*out = xmallocarray((size_t)n, sizeof(float));
	quant_dequant_row((enum dt_type)t->type, t->data, *out, n);
	m->weight_bytes += t->nbytes;
	return 0;
}

static void model_unbind(struct model *m)
{
	if (m->layers) {
		for (int32_t l = 0; l < m->hp.n_layer; l++) {
			struct model_layer *L = &m->layers[l];
			free(L->attn_norm);
			free(L->ffn_norm);
			free(L->bq);
			free(L->bk);
			free(L->bv);
		}
	}
	free(m->layers);
	m->layers = NULL;
	free(m->output_norm);
	free(m->rope_freqs);
	m->output_norm = m->rope_freqs = NULL;
}

static int model_bind(struct model *m, char *err)
{
	const struct model_arch *a = NULL;
	struct model_hparams *hp = &m->hp;
	if (model_read_hparams(m->g, hp, &a, err) != 0)
		return -1;
	const char *path = gguf_path(m->g);
	const int64_t n_embd = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim,
		      kv_dim = (int64_t)hp->n_head_kv * hp->head_dim, n_ff = hp->n_ff;
	if (n_embd % QUANT_Q8_BLOCK || q_dim % QUANT_Q8_BLOCK || n_ff % QUANT_Q8_BLOCK)
		return dt_err(err, "%s: embedding %lld, attention %lld and feed-forward %lld widths must be multiples of %d",
			      path, (long long)n_embd, (long long)q_dim, (long long)n_ff, QUANT_Q8_BLOCK);

	const struct gguf_tensor *te = find_tensor(m->g, "token_embd.weight", true, err);
	if (!te)
		return -1;
	if (hp->n_vocab == 0) {
		if (te->ne[1] <= 0 || te->ne[1] > (1 << 30))
			return dt_err(err, "%s: token_embd.weight has %lld rows", path, (long long)te->ne[1]);
		hp->n_vocab = (int32_t)te->ne[1];
	}
	if (bind_matrix(m, "token_embd.weight", n_embd, hp->n_vocab, &m->tok_embd, err) ||
	    bind_vector(m, "output_norm.weight", n_embd, true, &m->output_norm, err))
		return -1;
	if (gguf_find_tensor(m->g, "output.weight")) {
		if (bind_matrix(m, "output.weight", n_embd, hp->n_vocab, &m->output, err))
			return -1;
		hp->tied_output = false;
	} else {
		m->output = m->tok_embd;
		hp->tied_output = true;
	}
	if (bind_vector(m, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs, err))
		return -1;
	if (m->rope_freqs)
		hp->rope_scaling = MODEL_ROPE_SCALING_FREQS;

	m->layers = xcalloc((size_t)hp->n_layer, sizeof(*m->layers));
	hp->has_qkv_bias = false;
	for (int32_t l = 0; l < hp->n_layer; l++) {
		struct model_layer *L = &m->layers[l];
		char name[96];
#define NAME(s) (snprintf(name, sizeof(name), "blk.%d." s, l), name)
		if (bind_vector(m, NAME("attn_norm.weight"), n_embd, true, &L->attn_norm, err) ||
		    bind_matrix(m, NAME("attn_q.weight"), n_embd, q_dim, &L->wq, err) ||
		    bind_matrix(m, NAME("attn_k.weight"), n_embd, kv_dim, &L->wk, err) ||
		    bind_matrix(m, NAME("attn_v.weight"), n_embd, kv_dim, &L->wv, err) ||
		    bind_matrix(m, NAME("attn_output.weight"), q_dim, n_embd, &L->wo, err) ||
		    bind_vector(m, NAME("ffn_norm.weight"), n_embd, true, &L->ffn_norm, err) ||
		    bind_matrix(m, NAME("ffn_gate.weight"), n_embd, n_ff, &L->w_gate, err) ||
		    bind_matrix(m, NAME("ffn_up.weight"), n_embd, n_ff, &L->w_up, err) ||
		    bind_matrix(m, NAME("ffn_down.weight"), n_ff, n_embd, &L->w_down, err))
			return -1;
		if (a->qkv_bias) {
			const bool req = a->qkv_bias == 1;
			if (bind_vector(m, NAME("attn_q.bias"), q_dim, req, &L->bq, err) ||
			    bind_vector(m, NAME("attn_k.bias"), kv_dim, req, &L->bk, err) ||
			    bind_vector(m, NAME("attn_v.bias"), kv_dim, req, &L->bv, err))
				return -1;
			if (l == 0)
				hp->has_qkv_bias = L->bq != NULL;
			if ((L->bq != NULL) != hp->has_qkv_bias || (L->bk != NULL) != hp->has_qkv_bias ||
			    (L->bv != NULL) != hp->has_qkv_bias)
				return dt_err(err, "%s: layer %d: q/k/v biases present in some layers or projections only",
					      path, l);
		}
#undef NAME
	}
	m->rope = (struct cpu_rope){ .n_rot = hp->n_rot, .base = hp->rope_base,
				     .freq_scale = 1.0f / hp->rope_scale,
				     .freq_factors = m->rope_freqs, .neox = hp->rope_neox };
	return 0;
}

// ---- lifetime

struct model *model_load(const char *path, const struct model_params *p, char *err)
{
	struct model_params def = model_default_params();
	if (!p)
		p = &def;
	if (p->n_threads < 1 || p->n_threads > 1024 || p->n_batch < 1) {
		dt_err(err, "%s: bad model parameters (n_threads %d, n_batch %d)", path, p->n_threads,
		       p->n_batch);
		return NULL;
	}
	struct gguf_ctx *g = gguf_open(path, err);
	if (!g)
		return NULL;
	struct model *m = xcalloc(1, sizeof(*m));
	m->g = g;
	m->params = *p;
	if (model_bind(m, err) != 0) {
		model_free(m);
		return NULL;
	}
	m->tp = threadpool_new(p->n_threads);
	m->ws = cpu_matmul_ws_new();
	return m;
}

static void model_scratch_free(struct model_scratch *s)
{
	free(s->x);
	free(s->xn);
	free(s->q);
	free(s->k);
	free(s->v);
	free(s->att);
	free(s->tmp);
	free(s->gate);
	free(s->up);
	free(s->rope_cs);
	free(s->rows);
	memset(s, 0, sizeof(*s));
}

void model_free(struct model *m)
{
	if (!m)
		return;
	threadpool_free(m->tp);
	cpu_matmul_ws_free(m->ws);
	model_scratch_free(&m->s);
	model_unbind(m);
	gguf_close(m->g);
	free(m);
}

const struct model_hparams *model_hparams(const struct model *m)
{
	return &m->hp;
}

struct gguf_ctx *model_gguf(const struct model *m)
{
	return m->g;
}

struct threadpool *model_threadpool(struct model *m)
{
	return m->tp;
}

size_t model_weight_bytes(const struct model *m)
{
	return m->weight_bytes;
}

int32_t model_n_threads(const struct model *m)
{
	return m->params.n_threads;
}

int32_t model_n_batch(const struct model *m)
{
	return m->params.n_batch;
}

const struct model_timing *model_last_timing(const struct model *m)
{
	return &m->timing;
}

// ---- describe

void model_describe(const struct gguf_ctx *g, FILE *out)
{
	char err[DT_ERR_LEN];
	struct model tmp = { .g = (struct gguf_ctx *)g };
	if (model_bind(&tmp, err) != 0) {
		fprintf(out, "model: %s\n", err);
		model_unbind(&tmp);
		return;
	}
	const struct model_hparams *hp = &tmp.hp;
	static const char *const scaling[] = { "none", "linear", "rope_freqs (llama3)" };
	fprintf(out, "model: %s%s%s%s\n", hp->arch, hp->name[0] ? " (" : "", hp->name,
		hp->name[0] ? ")" : "");
	fprintf(out, "  layers %d, embd %d, ffn %d, heads %d q / %d kv, head dim %d, vocab %d\n",
		hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_vocab);
	fprintf(out, "  rope %s, %d dims, base %g, scaling %s", hp->rope_neox ? "neox" : "normal",
		hp->n_rot, (double)hp->rope_base, scaling[hp->rope_scaling]);
	if (hp->rope_scaling == MODEL_ROPE_SCALING_LINEAR)
		fprintf(out, " x%g", (double)hp->rope_scale);
	fprintf(out, "; rms eps %g; context %d; qkv bias %s; output %s\n", (double)hp->rms_eps,
		hp->n_ctx_train, hp->has_qkv_bias ? "yes" : "no",
		hp->tied_output ? "tied to token_embd" : "separate");

	int64_t n_params = 0;
	uint64_t bytes[DT_TYPE_COUNT] = { 0 }, count[DT_TYPE_COUNT] = { 0 };
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		int64_t ne = 1;
		for (int d = 0; d < GGUF_MAX_DIMS; d++)
			ne *= t->ne[d];
		n_params += ne;
		if (t->type < DT_TYPE_COUNT) {
			bytes[t->type] += t->nbytes;
			count[t->type]++;
		}
	}
	fprintf(out, "  parameters %.2f M, weights read per token %.1f MiB\n", (double)n_params / 1e6,
		(double)tmp.weight_bytes / (1024.0 * 1024.0));
	for (uint32_t t = 0; t < DT_TYPE_COUNT; t++)
		if (count[t])
			fprintf(out, "  %-6s %4llu tensors %10.2f MiB\n", quant_type_name(t),
				(unsigned long long)count[t], (double)bytes[t] / (1024.0 * 1024.0));
	model_unbind(&tmp);
}

// ---- forward: scratch and row-parallel element-wise work

static void model_scratch_reserve(struct model *m, int32_t n)
{
	struct model_scratch *s = &m->s;
	if (s->cap >= n)
		return;
	model_scratch_free(s);
	const struct model_hparams *hp = &m->hp;
	const size_t N = (size_t)n, q_dim = (size_t)hp->n_head * hp->head_dim,
		     kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
	s->cap = n;
	s->x = xmallocarray(N * hp->n_embd, sizeof(float));
	s->xn = xmallocarray(N * hp->n_embd, sizeof(float));
	s->q = xmallocarray(N * q_dim, sizeof(float));
	s->k = xmallocarray(N * kv_dim, sizeof(float));
	s->v = xmallocarray(N * kv_dim, sizeof(float));
	s->att = xmallocarray(N * q_dim, sizeof(float));
	s->tmp = xmallocarray(N * hp->n_embd, sizeof(float));
	s->gate = xmallocarray(N * hp->n_ff, sizeof(float));
	s->up = xmallocarray(N * hp->n_ff, sizeof(float));
	s->rope_cs = xmallocarray(N * (size_t)DT_MAX(hp->n_rot, 2), sizeof(float));
	s->rows = xmallocarray(N, sizeof(int32_t));
}

enum model_ew_op {
	EW_ATTN_NORM,  /* xn = rmsnorm(x) * attn_norm */
	EW_ROPE,       /* rope(q), rope(k) */
	EW_ADD_TMP,    /* x += tmp */
	EW_FFN_NORM,   /* xn = rmsnorm(x) * ffn_norm */
	EW_SWIGLU,     /* gate = silu(gate) * up */
};

struct model_ew_job {
	struct model *m;
	enum model_ew_op op;
	const struct model_layer *L;
	int32_t n;
	atomic_int next; /* next row */
};

static void model_ew_rows(struct model *m, enum model_ew_op op, const struct model_layer *L,
			  int32_t r0, int32_t r1)
{
	const struct model_hparams *hp = &m->hp;
	struct model_scratch *s = &m->s;
	const int64_t E = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim,
		      kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
	for (int32_t i = r0; i < r1; i++) {
		switch (op) {
		case EW_ATTN_NORM:
			cpu_rmsnorm(s->xn + i * E, s->x + i * E, L->attn_norm, E, hp->rms_eps);
			break;
		case EW_FFN_NORM:
			cpu_rmsnorm(s->xn + i * E, s->x + i * E, L->ffn_norm, E, hp->rms_eps);
			break;
		case EW_ROPE: {
			const float *cs = s->rope_cs + (int64_t)i * hp->n_rot;
			cpu_rope_apply(&m->rope, s->q + i * q_dim, hp->n_head, hp->head_dim, cs);
			cpu_rope_apply(&m->rope, s->k + i * kv_dim, hp->n_head_kv, hp->head_dim, cs);
			break;
		}
		case EW_ADD_TMP:
			cpu_add(s->x + i * E, s->x + i * E, s->tmp + i * E, E);
			break;
		case EW_SWIGLU:
			cpu_swiglu(s->gate + i * (int64_t)hp->n_ff, s->gate + i * (int64_t)hp->n_ff,
				   s->up + i * (int64_t)hp->n_ff, hp->n_ff);
			break;
		}
	}
}

#define MODEL_EW_PARALLEL_ROWS 4 /* below this a batch's element-wise work runs inline */
#define MODEL_EW_CHUNK 2         /* rows per task */

static void model_ew_worker(void *arg, int ith, int nth)
{
	struct model_ew_job *j = arg;
	for (;;) {
		const int32_t r0 = atomic_fetch_add_explicit(&j->next, MODEL_EW_CHUNK, memory_order_relaxed);
		if (r0 >= j->n)
			break;
		model_ew_rows(j->m, j->op, j->L, r0, DT_MIN(r0 + MODEL_EW_CHUNK, j->n));
	}
}

static void model_ew(struct model *m, enum model_ew_op op, const struct model_layer *L, int32_t n)
{
	if (n < MODEL_EW_PARALLEL_ROWS || threadpool_n_threads(m->tp) == 1) {
		model_ew_rows(m, op, L, 0, n);
		return;
	}
	struct model_ew_job j = { .m = m, .op = op, .L = L, .n = n };
	atomic_init(&j.next, 0);
	threadpool_run_any(m->tp, model_ew_worker, &j);
}

// ---- forward
int model_forward(struct model *m, const struct model_batch *b, const struct model_kv_ops *kv,
		  float *logits_out, const atomic_bool *cancel, char *err)
{
	const int64_t t_start = dt_now_ns();
	const struct model_hparams *hp = &m->hp;
	const int32_t n = b->n;
	memset(&m->timing, 0, sizeof(m->timing));
	m->timing.n_tokens = n;
	if (n < 1 || n > m->params.n_batch) {
		dt_err(err, "model: batch of %d tokens (expected 1 .. n_batch %d)", n, m->params.n_batch);
		return DT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		if (b->tokens[i] < 0 || b->tokens[i] >= hp->n_vocab) {
			dt_err(err, "model: token id %d at batch row %d out of range (vocab %d)",
			       b->tokens[i], i, hp->n_vocab);
			return DT_ERR_ARG;
		}
		if (b->pos[i] < 0) {
			dt_err(err, "model: negative position %d at batch row %d", b->pos[i], i);
			return DT_ERR_ARG;
		}
	}
	model_scratch_reserve(m, n);
	struct model_scratch *s = &m->s;
	const int64_t E = hp->n_embd;

	for (int32_t i = 0; i < n; i++) {
		cpu_matrix_row(&m->tok_embd, b->tokens[i], s->x + i * E);
		cpu_rope_cache(&m->rope, b->pos[i], s->rope_cs + (int64_t)i * hp->n_rot);
	}

	int64_t attend_ns = 0, matmul_ns = 0;
	for (int32_t l = 0; l < hp->n_layer; l++) {
		if (cancel && atomic_load(cancel)) {
			dt_err(err, "model: cancelled at layer %d", l);
			return DT_ERR_CANCELLED;
		}
		const struct model_layer *L = &m->layers[l];
		int64_t t0 = dt_now_ns();

		model_ew(m, EW_ATTN_NORM, L, n);
		const struct cpu_matmul_op qkv[3] = {
			{ &L->wq, L->bq, s->q }, { &L->wk, L->bk, s->k }, { &L->wv, L->bv, s->v },
		};
		cpu_matmul(m->tp, m->ws, s->xn, n, E, qkv, 3);
		int64_t t1 = dt_now_ns();
		matmul_ns += t1 - t0;
		model_ew(m, EW_ROPE, L, n);

		t0 = dt_now_ns();
		int rc = kv->store(kv->ctx, l, n, s->k, s->v, err);
		if (rc == 0)
			rc = kv->attend(kv->ctx, l, n, s->q, s->att, err);
		if (rc != 0)
			return rc < 0 ? rc : DT_ERR_ARG;
		t1 = dt_now_ns();
		attend_ns += t1 - t0;

		const struct cpu_matmul_op wo = { &L->wo, NULL, s->tmp };
		cpu_matmul(m->tp, m->ws, s->att, n, (int64_t)hp->n_head * hp->head_dim, &wo, 1);
		int64_t t2 = dt_now_ns();
		model_ew(m, EW_ADD_TMP, L, n);
		model_ew(m, EW_FFN_NORM, L, n);
		int64_t t3 = dt_now_ns();
		const struct cpu_matmul_op gu[2] = { { &L->w_gate, NULL, s->gate }, { &L->w_up, NULL, s->up } };
		cpu_matmul(m->tp, m->ws, s->xn, n, E, gu, 2);
		model_ew(m, EW_SWIGLU, L, n);
		const struct cpu_matmul_op down = { &L->w_down, NULL, s->tmp };
		cpu_matmul(m->tp, m->ws, s->gate, n, hp->n_ff, &down, 1);
		int64_t t4 = dt_now_ns();
		model_ew(m, EW_ADD_TMP, L, n);
		matmul_ns += (t2 - t1) + (t4 - t3);
	}

	/* output: final norm and projection of the rows that need logits */
	const int64_t t_out = dt_now_ns();
	int32_t n_rows = 0;
	for (int32_t i = 0; i < n; i++)
		if (b->logits ? b->logits[i] : i == n - 1)
			s->rows[n_rows++] = i;
	for (int32_t r = 0; r < n_rows; r++)
		cpu_rmsnorm(s->xn + r * E, s->x + (int64_t)s->rows[r] * E, m->output_norm, E,
			    hp->rms_eps);
	if (n_rows > 0) {
		const struct cpu_matmul_op out = { &m->output, NULL, logits_out };
		cpu_matmul(m->tp, m->ws, s->xn, n_rows, E, &out, 1);
	}
	const int64_t t_end = dt_now_ns();
	m->timing.total_ns = t_end - t_start;
	m->timing.attend_ns = attend_ns;
	m->timing.matmul_ns = matmul_ns;
	m->timing.output_ns = t_end - t_out;
	return DT_OK;
}
