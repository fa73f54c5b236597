// cuda_link_shim.cu — a C++-linkage dt_err for .cu files that include
// src/common.h without extern "C" (device.cu, through cuda_common.h):
// common.h has no __cplusplus guards, so nvcc mangles the name there and the
// C definition in src/common.c does not satisfy the reference.  This file
// must not include common.h.  Remove it once common.h carries the guards.
#include <stdarg.h>
#include <stdio.h>

int dt_err(char *err, const char *fmt, ...);

int dt_err(char *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, 512 /* DT_ERR_LEN */, fmt, ap);
		va_end(ap);
	}
	return -1;
}
