#!/usr/bin/env python3
"""Regenerates the category table of src/unicode.c from Python's unicodedata.

    python3.13 tools/gen_unicode.py src/unicode.c

Rewrites the lines between the '// ---- generated table: begin' and
'// ---- generated table: end' markers. The table is a sorted list of
(first code point, flags) ranges, a range ending where the next begins; the
flags are one category group bit (as llama.cpp's gen-unicode-data.py groups
the general categories) plus the White_Space bit. Use a Python whose
unicodedata is at least as new as llama.cpp's table (3.13: Unicode 15.1).
"""
import sys
import unicodedata

GROUP = {"C": "CTL", "L": "LET", "M": "MRK", "N": "NUM", "P": "PUN", "S": "SYM", "Z": "SEP"}

# White_Space property (PropList.txt), the set llama.cpp uses
WHITESPACE = set(range(0x0009, 0x000D + 1)) | set(range(0x2000, 0x200A + 1)) | {
    0x0020, 0x0085, 0x00A0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}


def flags_of(cp):
    cat = unicodedata.category(chr(cp))
    name = "UND" if cat == "Cn" else GROUP[cat[0]]
    return name + ("|WS" if cp in WHITESPACE else "")


def table():
    ranges = []
    prev = None
    for cp in range(0x110000):
        f = flags_of(cp)
        if f != prev:
            ranges.append((cp, f))
            prev = f
    return ranges


def render(ranges):
    out = ["// ---- generated table: begin (tools/gen_unicode.py, Unicode %s, %d ranges)"
           % (unicodedata.unidata_version, len(ranges)),
           "static const struct unicode_range unicode_ranges[] = {"]
    line = "\t"
    for cp, f in ranges:
        item = "{0x%X, %s}," % (cp, f)
        if len(line) + len(item) + 1 > 96:
            out.append(line.rstrip())
            line = "\t"
        line += item + " "
    out.append(line.rstrip())
    out.append("};")
    out.append("/* the same for ASCII, indexed by code point */")
    out.append("static const uint16_t unicode_ascii[128] = {")
    line = "\t"
    for cp in range(128):
        item = flags_of(cp) + ","
        if len(line) + len(item) + 1 > 96:
            out.append(line.rstrip())
            line = "\t"
        line += item + " "
    out.append(line.rstrip())
    out.append("};")
    out.append("// ---- generated table: end")
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_unicode.py src/unicode.c")
    path = sys.argv[1]
    src = open(path, encoding="utf-8").read().split("\n")
    begin = next(i for i, l in enumerate(src) if l.startswith("// ---- generated table: begin"))
    end = next(i for i, l in enumerate(src) if l.startswith("// ---- generated table: end"))
    src[begin:end + 1] = render(table())
    open(path, "w", encoding="utf-8").write("\n".join(src))


if __name__ == "__main__":
    main()
