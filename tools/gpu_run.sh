#!/bin/bash
# tools/gpu_run.sh — one call on the GPU machine: build for sm_90, the CUDA
# attention tests, compute-sanitizer (memcheck, racecheck) on them, and
# `bench attn` with the PyTorch peers.  Logs go to $OUT (at most 8 files:
# build.log (with the environment and ptxas), test.log memcheck.log
# racecheck.log bench.log bench_attn.json exp.log ncu.log).
#
# Run from the repository root, with the generated autotools files and
# .devcarry/ carried (see kernels/NOTES.md):
#   STAGES=build,test,memcheck,racecheck,bench CASES=perf PEER=1 tools/gpu_run.sh
# Each stage has its own time limit (T_TEST, T_SAN, T_BENCH seconds).
# BENCH_ARGS: extra bench_attn arguments (e.g. --algos seq,deft-flatten).
# Stage `base`: the same bench with the kernels in .devcarry/base (the
# committed attn_*.cu files: `git show HEAD:kernels/F > .devcarry/base/F`),
# built into a second binary, run right after the bench: base.log.
# Stage `exp` runs bench_attn $EXP_ARGS with the environment $EXP_ENV
# (e.g. DT_ATTN_FUSE=0).  Stage `sweep` runs the deft-flatten bench over
# $CASES once per setting of SWEEP ("A=1 B=2;A=3", ';' between settings):
# sweep.log, one line of flatten us per setting.  Stage `ncu`: NCU_CASES,
# NCU_KERNEL (regex), NCU_COUNT, NCU_METRICS, NCU_SECTION override the
# defaults.  FULL=0 skips the informative full-tree build.
# The machine has no curses/readline headers (--disable-tui) and maybe no
# jansson: then the carried .devcarry/debs are unpacked into /tmp/jroot.
# Only what the attention needs is built (the CUDA library, a few engine
# objects, the test, and bench_attn.c as a standalone program), so a broken
# file elsewhere in the tree does not stop the measurement.
set -u
SRC=$(pwd)
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
STAGES=${STAGES:-build,test,memcheck,racecheck,bench}
CASES=${CASES:-all}
PEER=${PEER:-1}
T_TEST=${T_TEST:-240}
T_SAN=${T_SAN:-150}
T_BENCH=${T_BENCH:-300}
B=/tmp/dt-build
has() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
stamp() { echo "== $(date +%T) $*"; }

{
	stamp env
	nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.draw --format=csv
	nvcc --version | tail -2
	gcc --version | head -1
	for t in autoreconf compute-sanitizer ncu python3 cuobjdump; do printf '%s: %s\n' $t "$(command -v $t)"; done
	ls -la /usr/include/jansson.h 2>&1
	ls -d /usr/local/cuda* 2>&1
} >"$OUT/build.log" 2>&1

# ---- build
XCPP=
XLD=
if [ ! -f /usr/include/jansson.h ]; then
	J=/tmp/jroot
	mkdir -p $J
	for f in "$SRC"/.devcarry/debs/*.deb; do dpkg -x "$f" $J; done
	XCPP="-I$J/usr/include"
	XLD="-L$J/usr/lib/x86_64-linux-gnu -Wl,-rpath,$J/usr/lib/x86_64-linux-gnu"
	echo "jansson from .devcarry/debs in $J" >>"$OUT/build.log"
fi
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
CUDA_LIB=$CUDA_HOME/lib64
[ -d $CUDA_HOME/targets/x86_64-linux/lib ] && CUDA_LIB=$CUDA_HOME/targets/x86_64-linux/lib
LIBS="$XLD -L$CUDA_LIB -Wl,-rpath,$CUDA_LIB -lcudart -lcublas -lstdc++ -ljansson -lm -lpthread -ldl"
CFLAGS="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -I$B -I$SRC/src -I$SRC/kernels $XCPP"

if has build; then
	{
		stamp configure
		# the carried generated files must look newer than their sources
		touch "$SRC/aclocal.m4"
		sleep 1
		touch "$SRC/configure" "$SRC/config.h.in" "$SRC/Makefile.in"
		mkdir -p $B && cd $B || exit 1
		if [ -n "$XCPP" ]; then
			"$SRC/configure" -q --disable-tui CPPFLAGS="$XCPP" LDFLAGS="$XLD" PKG_CONFIG=/bin/false
		else
			"$SRC/configure" -q --disable-tui
		fi
		grep -E "define HAVE_CUDA" config.h
		stamp "make libdeftree_cuda.a"
		make -j16 libdeftree_cuda.a || echo "BUILD FAILED: libdeftree_cuda.a"
		stamp "engine objects, test, bench"
		mkdir -p fb
		for f in common kvpool tree treeplan cpu_tree_attn threadpool workload jsoncheck; do
			gcc $CFLAGS -c "$SRC/src/$f.c" -o fb/$f.o &
		done
		gcc $CFLAGS -c "$SRC/tests/test_cuda_attn.c" -o fb/test_cuda_attn.o &
		gcc $CFLAGS -Dbench_attn_main=main -c "$SRC/src/bench_attn.c" -o fb/bench_attn.o &
		wait
		ENG="fb/common.o fb/kvpool.o fb/tree.o fb/treeplan.o fb/cpu_tree_attn.o fb/threadpool.o fb/workload.o fb/jsoncheck.o"
		gcc -o test_cuda_attn fb/test_cuda_attn.o $ENG libdeftree_cuda.a $LIBS || echo "BUILD FAILED: test"
		gcc -o bench_attn fb/bench_attn.o $ENG libdeftree_cuda.a $LIBS || echo "BUILD FAILED: bench"
		ls -la test_cuda_attn bench_attn libdeftree_cuda.a
		if [ "${FULL:-1}" = 1 ]; then
			stamp "full tree (informative: deftree bench attn)"
			timeout 120 make -k -j16 deftree >/dev/null 2>full.log && echo "deftree built" ||
				{ echo "deftree not built (other files):"; grep -m5 -E "error|Error" full.log; }
		fi
		if has base; then
			stamp "baseline kernels from .devcarry/base"
			rm -rf /tmp/dt-base && mkdir -p /tmp/dt-base && cp "$SRC"/.devcarry/base/* /tmp/dt-base/ &&
				cp libdeftree_cuda.a /tmp/dt-base/base.a && cd /tmp/dt-base || exit 1
			for f in attn_deft_flatten attn_plan attn_reduce; do
				nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a $BASE_FLAGS -I$B -I$SRC/src -I$SRC/kernels \
					-Xcompiler -fPIC -c $f.cu -o $f.o &
			done
			wait
			ar r base.a attn_deft_flatten.o attn_plan.o attn_reduce.o
			cd $B && gcc -o bench_base fb/bench_attn.o $ENG /tmp/dt-base/base.a $LIBS || echo "BUILD FAILED: base"
		fi
	} >>"$OUT/build.log" 2>&1
	{
		cd "$SRC/kernels" &&
			nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I$B -I$SRC/src -I. -Xptxas -v \
				-c attn_deft_flatten.cu -o /tmp/attn_df.o 2>&1 | grep -E "Compiling|registers|spill|smem"
		cuobjdump --dump-sass /tmp/attn_df.o | grep -cE "HMMA|HGMMA" | sed "s/^/HMMA+HGMMA instructions: /"
		cuobjdump --dump-sass /tmp/attn_df.o | grep -cE "LDGSTS" | sed 's/^/LDGSTS (cp.async) instructions: /'
		cuobjdump --dump-sass /tmp/attn_df.o | grep -cE "LDSM" | sed 's/^/LDSM (ldmatrix) instructions: /'
		cuobjdump --dump-sass /tmp/attn_df.o | grep -cE "\bLDL|\bSTL" | sed 's/^/local memory instructions: /'
	} >>"$OUT/build.log" 2>&1
fi
cd $B || exit 1
export DT_TOP_SRCDIR="$SRC"
SEED=${DT_SEED:-$(date +%s)}

if has test; then
	{
		stamp "test_cuda_attn seed $SEED"
		DT_SEED=$SEED timeout $T_TEST ./test_cuda_attn
		echo "exit $?"
	} >"$OUT/test.log" 2>&1
fi
if has bench; then
	PEER_ARG=
	[ "$PEER" = 1 ] && PEER_ARG="--peer $SRC/.devcarry/torch_tree_baselines.py"
	{
		stamp "bench attn --cases $CASES"
		PYTHONUNBUFFERED=1 timeout $T_BENCH ./bench_attn --cases "$CASES" --json "$OUT/bench_attn.json" \
			--workloads "$SRC/.devcarry/workloads" $PEER_ARG ${BENCH_ARGS:-}
		echo "exit $?"
	} >"$OUT/bench.log" 2>&1
fi
if has base; then
	{
		stamp "baseline bench attn --cases $CASES"
		timeout $T_BENCH ./bench_base --cases "$CASES" --workloads "$SRC/.devcarry/workloads" ${BENCH_ARGS:-}
		echo "exit $?"
	} >"$OUT/base.log" 2>&1
fi
if has memcheck; then
	{
		stamp "memcheck (quick) seed $SEED"
		DT_SEED=$SEED DT_TEST_QUICK=1 timeout $T_SAN compute-sanitizer --tool memcheck --error-exitcode 3 \
			./test_cuda_attn
		echo "exit $?"
	} >"$OUT/memcheck.log" 2>&1
fi
if has racecheck; then
	{
		stamp "racecheck (quick) seed $SEED"
		DT_SEED=$SEED DT_TEST_QUICK=1 timeout $T_SAN compute-sanitizer --tool racecheck --error-exitcode 3 \
			./test_cuda_attn
		echo "exit $?"
	} >"$OUT/racecheck.log" 2>&1
fi
if has exp; then
	# experiments of the current optimization step (kernels/NOTES.md)
	W="--workloads $SRC/.devcarry/workloads"
	{
		stamp "exp: ${EXP_ARGS:-none}"
		[ -n "${EXP_ARGS:-}" ] && env ${EXP_ENV:-} timeout 150 ./bench_attn $W $EXP_ARGS
		echo "exit $?"
	} >"$OUT/exp.log" 2>&1
fi
if has sweep; then
	# SWEEP: environment settings separated by ';' (e.g. "DT_ATTN_SNAP=0;DT_ATTN_SNAP=65"),
	# each one deft-flatten bench over $CASES; one line of flatten us per setting
	W="--workloads $SRC/.devcarry/workloads"
	{
		stamp "sweep: ${SWEEP:-none}"
		IFS=';' read -ra SW <<<"${SWEEP:-}"
		for e in "${SW[@]}"; do
			printf '%-40s ' "$e"
			env $e timeout 100 ./bench_attn $W --cases "$CASES" --algos deft-flatten 2>&1 |
				awk '/^case +U MiB/ {t=1; next} t && NF > 6 && $1 !~ /^\(/ {printf "%s %s | ", $1, $6} END {print ""}'
		done
		echo "exit $?"
	} >"$OUT/sweep.log" 2>&1
fi
if has ncu; then
	M=smsp__issue_active.avg.pct_of_peak_sustained_active
	for r in barrier long_scoreboard short_scoreboard math_pipe_throttle mio_throttle wait \
		no_instruction lg_throttle dispatch_stall not_selected selected branch_resolving misc; do
		M="$M,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
	done
	M="$M,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"
	M="$M,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__cycles_active.avg"
	M=${NCU_METRICS:-$M}
	{
		for c in ${NCU_CASES:-long32k-l3}; do
			stamp "ncu $c"
			timeout 100 ncu --clock-control none --kernel-name ${NCU_KERNEL:-regex:attn_part_kernel} --launch-skip 4 \
				--launch-count ${NCU_COUNT:-1} --metrics "$M" ${NCU_SECTION---section SpeedOfLight} ${NCU_EXTRA:-} \
				./bench_attn --workloads "$SRC/.devcarry/workloads" --cases $c --algos deft-flatten \
				--reps 10 --copies 4 2>&1 | grep -vE "^==PROF==" | grep -A150 -E "attn_(part|reduce)_kernel" | head -150
		done
		echo "exit $?"
	} >"$OUT/ncu.log" 2>&1
fi
stamp done
for f in test memcheck racecheck exp sweep bench; do
	[ -f "$OUT/$f.log" ] && { echo "---- $f"; grep -E "^not ok|exit |ERROR SUMMARY|RACECHECK SUMMARY|FAILED|^# " "$OUT/$f.log" | head -20; }
done
[ -f "$OUT/bench.log" ] && tail -${TAIL:-45} "$OUT/bench.log"
[ -f "$OUT/base.log" ] && { echo "---- baseline"; tail -${TAIL:-45} "$OUT/base.log"; }
exit 0
