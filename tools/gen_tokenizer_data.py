#!/usr/bin/env python3
"""Expected token ids for tests/test_tokenizer.c, from llama.cpp as the peer.

    python3 tools/gen_tokenizer_data.py [MODEL.gguf]

Needs llama-cpp-python (import llama_cpp) and jinja2; not run by make check.
MODEL defaults to models/SmolLM2-135M-Instruct.Q4_1.gguf. Writes:

  tests/data/tokenizer_smollm2.tsv   ids of SmolLM2's gpt2-style tokenizer
  tests/data/tokenizer_spm_vocab.tsv a small sentencepiece vocabulary (BPE
                                     pieces learned here from CORPUS, scores,
                                     256 <0xXX> byte tokens, special tokens)
  tests/data/tokenizer_spm.tsv       ids of llama.cpp on that vocabulary,
                                     written as a vocab-only GGUF (llama arch)

Line formats (TAB-separated; '#' starts a comment line). Text fields are
escaped: \\\\ \\t \\n \\r and \\xHH for the other bytes below 0x20 and 0x7F;
everything else is raw UTF-8.
  encode FLAGS TEXT IDS         FLAGS: '-' or letters s (parse special
                                tokens) and b (add BOS); IDS space-separated
                                (may be empty)
  chat   ADD TEXT ROLE CONTENT [ROLE CONTENT]...
                                the chat template rendered by jinja2 for the
                                messages; ADD 1 = add_generation_prompt
  (vocab) TYPE SCORE PIECE      one line per token, in id order
"""
import os
import struct
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "tests", "data")

# ---- escaping


def esc(s):
    out = bytearray()
    for c in s.encode("utf-8"):
        if c in (0x5C, 0x09, 0x0A, 0x0D):
            out += {0x5C: b"\\\\", 0x09: b"\\t", 0x0A: b"\\n", 0x0D: b"\\r"}[c]
        elif c < 0x20 or c == 0x7F:
            out += b"\\x%02X" % c
        else:
            out.append(c)
    return out.decode("utf-8")


def unesc(s):
    b = s.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(b):
        if b[i] == 0x5C:
            c = chr(b[i + 1])
            if c == "x":
                out.append(int(b[i + 2:i + 4], 16))
                i += 4
                continue
            out.append({"\\": 0x5C, "t": 9, "n": 10, "r": 13}[c])
            i += 2
        else:
            out.append(b[i])
            i += 1
    return out.decode("utf-8")


# ---- a minimal GGUF v3 writer (metadata only)

T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR = 4, 5, 6, 7, 8, 9


def gguf_bytes(kvs):
    def s(x):
        x = x.encode("utf-8") if isinstance(x, str) else x
        return struct.pack("<Q", len(x)) + x

    def val(t, v):
        if t == T_STR:
            return s(v)
        return struct.pack("<" + {T_U32: "I", T_I32: "i", T_F32: "f", T_BOOL: "?"}[t], v)

    out = [b"GGUF", struct.pack("<IQQ", 3, 0, len(kvs))]
    for k, t, v in kvs:
        out.append(s(k))
        if isinstance(t, tuple):
            out.append(struct.pack("<IIQ", T_ARR, t[1], len(v)))
            out.extend(val(t[1], x) for x in v)
        else:
            out.append(struct.pack("<I", t) + val(t, v))
    data = b"".join(out)
    return data + b"\0" * (-len(data) % 32)


# the llama.* keys llama.cpp wants even for a vocab-only load
LLAMA_KEYS = [
    ("general.architecture", T_STR, "llama"),
    ("llama.block_count", T_U32, 1),
    ("llama.context_length", T_U32, 512),
    ("llama.embedding_length", T_U32, 64),
    ("llama.feed_forward_length", T_U32, 128),
    ("llama.attention.head_count", T_U32, 4),
    ("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
]

# ---- the sentencepiece test vocabulary

CORPUS = """
the quick brown fox jumps over the lazy dog . hello world , hello there !
a tokenizer turns text into tokens and tokens back into text . the tree of
tokens grows as the model writes ; every branch shares the prefix it came from .
they said that this is the thing to test : spaces , words , and the merges
between them . interesting things happen when the text is long and the
words repeat : the the the hello hello world world tokens tokens .
caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe 12 345 6789
"""

N_MERGES = 220
SPACE = "\u2581"


def learn_pieces():
    words = {}
    for w in CORPUS.split():
        words[SPACE + w] = words.get(SPACE + w, 0) + 1
    segs = {w: list(w) for w in words}
    chars = sorted({c for w in words for c in w})
    pieces = []
    for _ in range(N_MERGES):
        pairs = {}
        for w, n in words.items():
            sg = segs[w]
            for a, b in zip(sg, sg[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merged = best[0] + best[1]
        pieces.append(merged)
        for w in words:
            sg, out, i = segs[w], [], 0
            while i < len(sg):
                if i + 1 < len(sg) and (sg[i], sg[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(sg[i])
                    i += 1
            segs[w] = out
    return pieces, chars


def spm_vocab():
    """[(type, score, piece)] in id order"""
    v = [(2, 0.0, "<unk>"), (3, 0.0, "<s>"), (3, 0.0, "</s>")]
    v += [(6, 0.0, "<0x%02X>" % b) for b in range(256)]
    v += [(4, 0.0, "<|user|>"), (3, 0.0, "<|sys|>")]
    pieces, chars = learn_pieces()
    v += [(1, -float(i), p) for i, p in enumerate(pieces)]
    known = {p for _, _, p in v}
    v += [(1, -1000.0 - i, c) for i, c in enumerate(chars) if c not in known]
    return v


SPM_CASES = [
    ("-", "hello world"), ("b", "hello world"), ("-", "Hello World"), ("-", "the quick brown fox"),
    ("-", " leading space"), ("-", "trailing space  "), ("-", "multiple   spaces   here"),
    ("-", "tabs\tand\nnew\nlines"), ("-", "caf\u00e9 na\u00efve r\u00e9sum\u00e9"),
    ("-", "\u00e0 \u00e8 \u00ec not in the vocabulary"), ("-", "\u65e5\u672c\u8a9e"),
    ("-", "emoji \U0001F600 and \U0001F468\u200d\U0001F469\u200d\U0001F467"),
    ("-", "<|user|>hello<|sys|>world"), ("s", "<|user|>hello<|sys|>world"),
    ("sb", "<s>the tree</s>"), ("-", "<s>the tree</s>"), ("s", "a<unk>b"),
    ("-", "interesting tokens between the words"), ("-", "12 345 6789"), ("-", "x"), ("-", " "),
    ("-", ""), ("-", "thethethe"), ("-", "hello, world! (tokens)"),
]

# ---- SmolLM2 cases

SMOL_TEXTS = [
    "Hello world!",
    "Hello, World! How are you doing today?  I'm fine; thanks.",
    "Caf\u00e9 au lait, na\u00efve r\u00e9sum\u00e9, \u00c5ngstr\u00f6m, \u03a9mega.",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u4e2d\u6587\u6587\u672c\u3002\ud55c\uad6d\uc5b4\ub3c4 \uc788\uc2b5\ub2c8\ub2e4.",
    "Emoji: \U0001F600 \U0001F44D\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 "
    "\U0001F3F3\ufe0f\u200d\U0001F308 \u2764\ufe0f",
    "\ttabs\tand\nnewlines\n\n\nand   multiple   spaces   trailing   ",
    "def foo(x):\n    return x**2 + 3.14159  # comment\n",
    "for (int i = 0; i < 10; i++) { printf(\"%d\\n\", i); }",
    "Numbers: 1234567890 12 3.5 1,000,000 2024-05-01 \u0661\u0662\u0663 \u2177 \u00bd",
    "he's they'll we've I'd you're IT'S DON'T 'tis",
    "It's   \n \n   end   \t \n\tx \r\n windows\r\nline  ",
    "\u00a0nbsp \u200bzero width\u200d \u00abquotes\u00bb \u201ccurly\u201d \u2014 dash \u2026",
    "$100 + $200 = <$300> ^_^ ~tilde~ |pipe| @at #hash %percent &amp;",
    "\u0401\u0436\u0438\u043a \u0432 \u0442\u0443\u043c\u0430\u043d\u0435. \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5. "
    "\u05e9\u05dc\u05d5\u05dd. \u0645\u0631\u062d\u0628\u0627. \u0928\u092e\u0938\u094d\u0924\u0947.",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "x<|endoftext|>y <|im_start|> z<|im_end|><|im_end|>  <repo_name>abc",
    "<|im_start", "   ", "\n\n", "a" * 64,
    "https://example.com/path?q=1&r=2#frag",
    "\U0001D518\U0001D52B\U0001D526 \U0001D7D9\U0001D7DA \uff26\uff35\uff2c\uff2c\u3000x",
]

SMOL_CHATS = [
    (True, [("user", "What is 2+2?")]),
    (False, [("system", "You are terse."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Bye \U0001F44B")]),
    (True, [("user", "Line one\nLine two\twith tab"), ("assistant", "ok"), ("user", "<|im_end|> inside")]),
]


def llama(path):
    import llama_cpp
    return llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)


def tok(m, text, flags):
    return m.tokenize(text.encode("utf-8"), add_bos="b" in flags, special="s" in flags)


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    hdr = ("# generated by tools/gen_tokenizer_data.py with llama-cpp-python %s (format: its docstring)\n"
           "# encode FLAGS(-|s|b|sb) TEXT IDS / chat ADD TEXT ROLE CONTENT ...; "
           "TEXT escapes \\\\ \\t \\n \\r \\xHH\n")
    import llama_cpp
    import jinja2

    # SmolLM2
    m = llama(model)
    tmpl = m.metadata["tokenizer.chat_template"]
    lines = [hdr % llama_cpp.__version__]
    for text in SMOL_TEXTS:
        for flags in ("-", "s"):
            lines.append("encode\t%s\t%s\t%s\n" % (flags, esc(text), " ".join(map(str, tok(m, text, flags)))))
    env = jinja2.Environment()
    for add, msgs in SMOL_CHATS:
        rendered = env.from_string(tmpl).render(
            messages=[{"role": r, "content": c} for r, c in msgs], add_generation_prompt=add)
        fields = [esc(x) for rc in msgs for x in rc]
        lines.append("chat\t%d\t%s\t%s\n" % (add, esc(rendered), "\t".join(fields)))
        lines.append("encode\ts\t%s\t%s\n" % (esc(rendered), " ".join(map(str, tok(m, rendered, "s")))))
    open(os.path.join(DATA, "tokenizer_smollm2.tsv"), "w", encoding="utf-8").writelines(lines)
    del m

    # sentencepiece
    vocab = spm_vocab()
    lines = [hdr % llama_cpp.__version__, "# TYPE\tSCORE\tPIECE\n"]
    lines += ["%d\t%r\t%s\n" % (t, s, esc(p)) for t, s, p in vocab]
    open(os.path.join(DATA, "tokenizer_spm_vocab.tsv"), "w", encoding="utf-8").writelines(lines)
    kvs = LLAMA_KEYS + [
        ("tokenizer.ggml.model", T_STR, "llama"),
        ("tokenizer.ggml.tokens", (T_ARR, T_STR), [p for _, _, p in vocab]),
        ("tokenizer.ggml.scores", (T_ARR, T_F32), [s for _, s, _ in vocab]),
        ("tokenizer.ggml.token_type", (T_ARR, T_I32), [t for t, _, _ in vocab]),
        ("tokenizer.ggml.bos_token_id", T_U32, 1),
        ("tokenizer.ggml.eos_token_id", T_U32, 2),
        ("tokenizer.ggml.unknown_token_id", T_U32, 0),
        ("tokenizer.ggml.add_bos_token", T_BOOL, True),
        ("tokenizer.ggml.add_space_prefix", T_BOOL, True),
    ]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "spm.gguf")
        open(path, "wb").write(gguf_bytes(kvs))
        m = llama(path)
        lines = [hdr % llama_cpp.__version__]
        for flags, text in SPM_CASES:
            lines.append("encode\t%s\t%s\t%s\n" % (flags, esc(text), " ".join(map(str, tok(m, text, flags)))))
        del m
    open(os.path.join(DATA, "tokenizer_spm.tsv"), "w", encoding="utf-8").writelines(lines)

    # self-check of the escaping
    for text in SMOL_TEXTS:
        assert unesc(esc(text)) == text


if __name__ == "__main__":
    main()
