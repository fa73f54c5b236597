#!/usr/bin/env python3
"""llama.cpp peer of `deftree bench cpu` (through llama-cpp-python).

Runs the same measurement as deftree on the same GGUF file with the same
thread count and prints one JSON object on stdout:
  pp: one prefill of PP synthetic tokens from an empty cache (batches of 512),
      tokens/s = PP / time
  tg: TG single-token decodes from an empty cache, tokens/s = TG / time
Each is the median of REPS runs after one warm-up.  The synthetic token ids
are the ones deftree uses: id[i] = splitmix64(0xdef7ee + i) mod n_vocab.
Logits are computed for the last token of each call only, as in deftree.

usage: llamacpp_cpu.py --model M [--threads T] [--pp 512] [--tg 128] [--reps 3]
exit status 2 when llama_cpp cannot be imported (the caller says so).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

MASK = (1 << 64) - 1
N_BATCH = 512


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def synthetic_tokens(n, n_vocab):
    return [splitmix64(0xDEF7EE + i) % n_vocab for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    try:
        import llama_cpp
    except ImportError as e:
        print(f"llamacpp_cpu.py: llama-cpp-python is not installed ({e})", file=sys.stderr)
        return 2

    llm = llama_cpp.Llama(model_path=a.model, n_ctx=a.pp + a.tg + 16, n_batch=N_BATCH,
                          n_ubatch=N_BATCH, n_threads=a.threads, n_threads_batch=a.threads,
                          n_gpu_layers=0, verbose=False)
    ctx = llm._ctx.ctx
    mem = llama_cpp.llama_get_memory(ctx)
    n_vocab = llm.n_vocab()
    toks = synthetic_tokens(max(a.pp, a.tg), n_vocab)

    def decode(ids):
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(ids)))
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc})")

    def run_pp():
        llama_cpp.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        for i in range(0, a.pp, N_BATCH):
            decode(toks[i:i + N_BATCH])
        llama_cpp.llama_synchronize(ctx)
        return time.perf_counter() - t0

    def run_tg(n):
        llama_cpp.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        for i in range(n):
            decode(toks[i:i + 1])
        llama_cpp.llama_synchronize(ctx)
        return time.perf_counter() - t0

    run_pp()  # warm-up
    run_tg(min(a.tg, 16))
    pp = [a.pp / run_pp() for _ in range(a.reps)] if a.pp > 0 else []
    tg = [a.tg / run_tg(a.tg) for _ in range(a.reps)] if a.tg > 0 else []
    out = {
        "peer": "llama.cpp",
        "version": getattr(llama_cpp, "__version__", "?"),
        "model": a.model,
        "threads": a.threads,
        "pp": a.pp,
        "tg": a.tg,
        "reps": a.reps,
        "pp_tokens_per_s": statistics.median(pp) if pp else None,
        "tg_tokens_per_s": statistics.median(tg) if tg else None,
        "pp_runs": pp,
        "tg_runs": tg,
        "first_tokens": toks[:4],
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
