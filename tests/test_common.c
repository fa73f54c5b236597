/* test_common.c — the error helper, overflow checks and allocation family. */
#include "config.h"

#include <string.h>

#include "common.h"
#include "tap.h"

int main(void)
{
	char err[DT_ERR_LEN];
	uint64_t r;

	tap_plan(6);
	ok(dt_err(err, "%s: bad (expected %d, found %d)", "f.gguf", 3, 4) == -1,
	   "dt_err returns -1");
	ok(!strcmp(err, "f.gguf: bad (expected 3, found 4)"), "dt_err formats the message");
	ok(!dt_mul_ok(UINT64_MAX / 2, 3, &r), "multiplication overflow is detected");
	ok(dt_mul_ok(1u << 20, 1u << 20, &r) && r == (1ull << 40), "plain multiplication passes");
	ok(!dt_add_ok(UINT64_MAX, 1, &r), "addition overflow is detected");
	char *s = xstrdup("tree");
	ok(!strcmp(s, "tree"), "xstrdup copies");
	free(s);
	return tap_done();
}
