/*
 * ui_fixture.h — a known token tree built in memory (no model) for the UI
 * unit tests, with a small vocabulary standing in for the tokenizer.
 *
 * The tree (page size 2, token ids in brackets):
 *
 *   root   "<s>The sea is"            [0 1 2 3]       prompt, <s> is a control token
 *   ├─ A   " wide and deep"           [4 6 7]         inner node
 *   │  ├─ C " blue"                   [8]             live leaf
 *   │  └─ D " Waves"                  [13]            pruned
 *   └─ B   " calm✓ ok"                [5 10 11 12]    finished leaf; ✓ (E2 9C 93) is split
 *                                                     over tokens 10 and 11
 *
 * Log-probabilities are chosen so that every probability colour appears.
 */
#ifndef DT_UI_FIXTURE_H
#define DT_UI_FIXTURE_H

#include <locale.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "kvpool.h"
#include "render.h"
#include "snapshot.h"
#include "tree.h"

static const char *fx_vocab[] = {
	"<s>", "The", " sea", " is", " wide", " calm", " and", " deep", " blue", "\n",
	"\xe2\x9c", "\x93", " ok", " Waves", "\xe6\x97\xa5\xe6\x9c\xac",
};

static inline const char *fx_piece(void *ctx, int32_t id, size_t *len)
{
	(void)ctx;
	if (id < 0 || id >= (int32_t)(sizeof(fx_vocab) / sizeof(fx_vocab[0]))) {
		*len = 0;
		return NULL;
	}
	*len = strlen(fx_vocab[id]);
	return fx_vocab[id];
}

static inline bool fx_is_control(void *ctx, int32_t id)
{
	(void)ctx;
	return id == 0;
}

struct fx {
	struct kvpool *pool;
	struct tree *tree;
	int32_t root, a, b, c, d;
};

/* alts for n tokens: the token itself first with its logprob, then id 9 */
static inline void fx_alts(struct tree_alt *alts, const int32_t *ids, const float *lp, int32_t n, int32_t n_alt)
{
	for (int32_t i = 0; i < n; i++)
		for (int32_t k = 0; k < n_alt; k++) {
			struct tree_alt *a = &alts[i * n_alt + k];
			if (k == 0)
				*a = (struct tree_alt){ ids[i], lp[i] };
			else if (k == 1)
				*a = (struct tree_alt){ 12, logf(0.05f) };
			else
				*a = (struct tree_alt){ -1, -INFINITY };
		}
}

static inline void fx_append(struct fx *f, int32_t node, const int32_t *ids, const float *p, int32_t n, int32_t step)
{
	float lp[16];
	struct tree_alt alts[16 * 4];
	for (int32_t i = 0; i < n; i++)
		lp[i] = logf(p[i]);
	fx_alts(alts, ids, lp, n, 4);
	char err[DT_ERR_LEN];
	int rc = tree_append(f->tree, node, ids, lp, alts, n, step, err);
	DT_ASSERT(rc == 0);
}

static inline void fx_build(struct fx *f, int32_t page_size, int32_t n_pages)
{
	char err[DT_ERR_LEN];
	struct kvpool_params kp = kvpool_default_params();
	kp.page_size = page_size;
	kp.n_layer = 1;
	kp.n_kv_heads = 1;
	kp.head_dim = 4;
	kp.host_storage = false;
	kp.elt_bytes = 2;
	kp.budget_bytes = (size_t)n_pages * (size_t)page_size * 4 * 2 * 2;
	f->pool = kvpool_new(&kp, err);
	DT_ASSERT(f->pool);
	struct tree_params tp = tree_default_params();
	tp.n_alt = 4;
	const int32_t prompt[] = { 0, 1, 2, 3 };
	f->tree = tree_new(&tp, f->pool, prompt, 4, err);
	DT_ASSERT(f->tree);
	f->root = tree_root(f->tree);
	f->a = tree_add_child(f->tree, f->root, err);
	const int32_t ia[] = { 4, 6, 7 };
	const float pa[] = { 0.95f, 0.7f, 0.4f };
	fx_append(f, f->a, ia, pa, 3, 1);
	f->b = tree_add_child(f->tree, f->root, err);
	const int32_t ib[] = { 5, 10, 11, 12 };
	const float pb[] = { 0.2f, 0.05f, 0.99f, 0.5f };
	fx_append(f, f->b, ib, pb, 4, 1);
	tree_set_status(f->tree, f->b, TREE_FINISHED, err);
	f->c = tree_add_child(f->tree, f->a, err);
	const int32_t ic[] = { 8 };
	const float pc[] = { 0.65f };
	fx_append(f, f->c, ic, pc, 1, 4);
	f->d = tree_add_child(f->tree, f->a, err);
	const int32_t id_[] = { 13 };
	const float pd[] = { 0.3f };
	fx_append(f, f->d, id_, pd, 1, 4);
	int rc = tree_prune(f->tree, f->d, err);
	DT_ASSERT(rc == 0);
}

static inline struct ui_snap *fx_snap(struct fx *f)
{
	struct ui_snap_src src = { 0 };
	src.tree = f->tree;
	src.pool = f->pool;
	src.piece = fx_piece;
	src.is_control = fx_is_control;
	return ui_snap_build(&src);
}

static inline void fx_free(struct fx *f)
{
	tree_free(f->tree);
	kvpool_free(f->pool);
}

/* UTF-8 locale for wcwidth; the tests skip if none is installed */
static bool fx_utf8_locale(void)
{
	return setlocale(LC_ALL, "C.UTF-8") || setlocale(LC_ALL, "C.utf8") || setlocale(LC_ALL, "en_US.UTF-8");
}

/* Row y of a canvas as text. */
static inline const char *fx_row(const struct ui_canvas *c, int y)
{
	static char bufs[4][4096]; /* a few at once for one message */
	static int k;
	char *buf = bufs[k++ & 3];
	ui_canvas_row(c, y, buf, sizeof(bufs[0]));
	return buf;
}

/* Style letters of row y. */
static inline const char *fx_styles(const struct ui_canvas *c, int y)
{
	static char bufs[4][4096];
	static int k;
	char *buf = bufs[k++ & 3];
	int n = 0;
	for (int x = 0; x < c->w && n < (int)sizeof(bufs[0]) - 1; x++)
		buf[n++] = ui_style_letter(c->cells[y * c->w + x].style);
	buf[n] = 0;
	return buf;
}

#endif
