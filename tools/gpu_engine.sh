#!/bin/bash
# tools/gpu_engine.sh — one call on the GPU machine for the engine's cuda
# backend (src/backend_cuda.c): a full build (--disable-tui), `make check`
# (tests/test_backend runs its GPU half there), compute-sanitizer memcheck on
# test_backend, and an end-to-end replay of a few-shot tree with a synthetic
# model, attention on cpu and on cuda, every algorithm.  Logs under $OUT.
#
#   STAGES=build,check,memcheck,replay,worker bash tools/gpu_engine.sh
# worker: runs .devcarry/bin/test_ui_worker, built here with the TUI (the
# GPU machine has no curses headers; the test itself needs no curses).
# with carry = configure Makefile.in config.h.in aclocal.m4 build-aux .devcarry
# (kernels/NOTES.md).  FEWSHOT (default 4000:20:32) and MODEL_ARGS set the replay.
set -u
SRC=$(pwd)
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
STAGES=${STAGES:-build,check,memcheck,replay}
FEWSHOT=${FEWSHOT:-4000:20:32}
MODEL_ARGS=${MODEL_ARGS:---layers 4 --embd 2048 --heads 16 --kv-heads 4 --ff 4096 --vocab 4096 --type q8_0}
B=/tmp/dt-full
has() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
stamp() { echo "== $(date +%T) $*"; }

if has build; then
	{
		stamp env
		nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
		XCPP= XLD=
		if [ ! -f /usr/include/jansson.h ]; then
			J=/tmp/jroot
			mkdir -p $J
			for f in "$SRC"/.devcarry/debs/*.deb; do dpkg -x "$f" $J; done
			XCPP="-I$J/usr/include"
			XLD="-L$J/usr/lib/x86_64-linux-gnu -Wl,-rpath,$J/usr/lib/x86_64-linux-gnu"
		fi
		touch "$SRC/aclocal.m4"
		sleep 1
		touch "$SRC/configure" "$SRC/config.h.in" "$SRC/Makefile.in"
		mkdir -p $B && cd $B || exit 1
		"$SRC/configure" -q --disable-tui CPPFLAGS="$XCPP" LDFLAGS="$XLD" PKG_CONFIG=/bin/false
		grep -E "define HAVE_CUDA" config.h
		stamp make
		make -j16 >make.log 2>&1 && echo "build ok" || { echo "BUILD FAILED"; tail -30 make.log; }
	} >"$OUT/build.log" 2>&1
fi
cd $B || exit 1
export DT_TOP_SRCDIR="$SRC" DT_TOP_BUILDDIR="$B"
SEED=${DT_SEED:-$(date +%s)}
if has check; then
	{
		stamp "make check seed $SEED"
		DT_SEED=$SEED timeout 300 make -j16 check >check.out 2>&1
		echo "exit $?"
		grep -E "^# (TOTAL|PASS|SKIP|FAIL|ERROR)" check.out
		grep -hE "^(FAIL|ERROR)" tests/*.log | head -20
		echo "---- tests/test_backend.log"
		cat tests/test_backend.log
		echo "---- tests/test_cuda_attn.log (summary)"
		grep -cE "^ok" tests/test_cuda_attn.log
		grep -E "^not ok" tests/test_cuda_attn.log | head
	} >"$OUT/check.log" 2>&1
fi
if has memcheck; then
	{
		stamp "memcheck test_backend seed $SEED"
		DT_SEED=$SEED timeout 200 compute-sanitizer --tool memcheck --error-exitcode 3 ./tests/test_backend | tail -8
		echo "exit $?"
	} >"$OUT/memcheck.log" 2>&1
fi
if has worker; then
	{
		stamp "test_ui_worker (built on the dev machine) seed $SEED"
		CUDA_LIB=/usr/local/cuda/lib64
		[ -d /usr/local/cuda/targets/x86_64-linux/lib ] && CUDA_LIB=/usr/local/cuda/targets/x86_64-linux/lib
		DT_SEED=$SEED LD_LIBRARY_PATH="/tmp/jroot/usr/lib/x86_64-linux-gnu:$CUDA_LIB" timeout 120 \
			"$SRC/.devcarry/bin/test_ui_worker"
		echo "exit $?"
	} >"$OUT/worker.log" 2>&1
fi
if has replay; then
	{
		stamp "mkmodel $MODEL_ARGS"
		./deftree mkmodel -o /tmp/syn.gguf $MODEL_ARGS -t 16
		for be in cpu cuda; do
			stamp "replay --fewshot $FEWSHOT --backend $be"
			timeout 200 ./deftree replay --fewshot "$FEWSHOT" -m /tmp/syn.gguf --backend $be --algo all -t 16 \
				--json "$OUT/replay_$be.json"
		done
		stamp "tree, sample:8, cuda"
		timeout 60 ./deftree tree -m /tmp/syn.gguf -p "The quick brown fox" --policy sample:8 --steps 24 --backend cuda -q
	} >"$OUT/replay.log" 2>&1
fi
stamp done
for f in build check memcheck worker replay; do
	[ -f "$OUT/$f.log" ] && { echo "---- $f"; tail -25 "$OUT/$f.log"; }
done
exit 0
