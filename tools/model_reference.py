#!/usr/bin/env python3
"""Reference greedy generations of the default model by llama.cpp, for tests/test_model.c.

Writes tests/data/model_smollm2_greedy.txt: for each fixed prompt, the prompt token ids
(from llama.cpp's tokenizer, so the test does not depend on ours), the 64 greedy tokens
llama.cpp generates from them, the gap between its top-1 and top-2 logits at each step
(to tell near-ties apart), and reference logits of the first step (the top 16 and 48
ids spread over the vocabulary).

Usage: python3 tools/model_reference.py [MODEL.gguf] [OUT.txt]
Needs llama-cpp-python (pip install llama-cpp-python); not run by `make check`.
With --dump DIR it also writes DIR/<prompt>.f32: the full first-step logits
(float32, n_vocab values) for offline comparison.
"""
import sys
import os
import argparse

import numpy as np
import llama_cpp
from llama_cpp import Llama

PROMPTS = [
    ("question", "What is the capital of France? Answer in one sentence."),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("list", "Here is a list of five fruits:\n1."),
    ("chat", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
             "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is gravity?<|im_end|>\n"
             "<|im_start|>assistant\n"),
    ("french", "La tour Eiffel est un monument situé à Paris. Elle a été construite"),
]
N_GEN = 64
N_TOP = 16
N_SPREAD = 48


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("out", nargs="?", default="tests/data/model_smollm2_greedy.txt")
    ap.add_argument("--dump", default=None)
    args = ap.parse_args()

    llm = Llama(model_path=args.model, n_ctx=512, n_batch=512, n_threads=2, logits_all=True,
                verbose=False)
    n_vocab = llm.n_vocab()
    lines = [
        "# Greedy generations of %s by llama.cpp (llama-cpp-python %s, n_threads 2, f16 KV cache,"
        % (os.path.basename(args.model), llama_cpp.__version__),
        "# no flash attention), made by tools/model_reference.py; read by tests/test_model.c.",
        "# prompt NAME / ids N ... (prompt token ids) / greedy N ... (generated ids) /",
        "# gap N ... (llama.cpp top-1 minus top-2 logit at each step) /",
        "# logits N id:value ... (first-step logits: top %d, then %d spread ids) / end" % (N_TOP, N_SPREAD),
    ]
    for name, text in PROMPTS:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32).copy()
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            first.tofile(os.path.join(args.dump, name + ".f32"))
            with open(os.path.join(args.dump, name + ".ids"), "w") as f:
                f.write(" ".join(str(i) for i in ids) + "\n")
        gen, gaps = [], []
        for step in range(N_GEN):
            row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            order = np.argsort(-row, kind="stable")
            tok = int(order[0])
            gen.append(tok)
            gaps.append(float(row[order[0]] - row[order[1]]))
            if step + 1 < N_GEN:
                llm.eval([tok])
        top = [int(i) for i in np.argsort(-first, kind="stable")[:N_TOP]]
        spread = [int(i) for i in np.linspace(0, n_vocab - 1, N_SPREAD).round().astype(int)]
        ref = top + [i for i in spread if i not in top]
        lines.append("prompt %s" % name)
        lines.append("ids %d %s" % (len(ids), " ".join(str(i) for i in ids)))
        lines.append("greedy %d %s" % (len(gen), " ".join(str(i) for i in gen)))
        lines.append("gap %d %s" % (len(gaps), " ".join("%.4f" % g for g in gaps)))
        lines.append("logits %d %s" % (len(ref), " ".join("%d:%.6g" % (i, first[i]) for i in ref)))
        lines.append("end")
        print("%-9s %3d prompt ids, min gap %.4f, text: %r" % (
            name, len(ids), min(gaps), llm.detokenize(gen).decode("utf-8", "replace")[:60]),
            file=sys.stderr)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
