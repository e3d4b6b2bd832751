#!/usr/bin/env python3
"""How often a poetry GPT keeps the metre of a Chinese prompt.

usage: scripts/poem_metre.py RUN_DIR [--seeds 5] [--temperature 0.7] [--top-k 30]
                             [--generate build/bin/loom-generate] [--show 2] [--verse]

For each prompt (the first line of a five- or seven-character poem, ending
in '，') and each seed, loom-generate continues the poem. The continuation is
cut into clauses at Chinese punctuation; a sample keeps the metre when its
first three complete clauses all have the prompt's length (5 or 7 characters).
A sample is counted as recited when it shares a run of 12 or more characters
with the training corpus, so a memorised poem is not mistaken for a composed
one. Half the prompts open famous poems that are in the corpus; the other
half are lines written for this check and found nowhere in it. --verse
passes --verse to loom-generate (sampling under the prompt's metre), which
keeps the metre by construction; the recited column still applies.
"""
import argparse
import pathlib
import re
import subprocess
import sys

FORTUNES = pathlib.Path("/usr/share/games/fortunes")
IN_CORPUS = ["春眠不觉晓，", "白日依山尽，", "国破山河在，", "朝辞白帝彩云间，", "月落乌啼霜满天，"]
NOVEL = ["江上秋风起，", "孤灯照客心，", "寒山一片月，", "长河落日照孤城，", "春风吹过小桥东，"]
CLAUSE_END = "，。！？；、\n"
RECITED_RUN = 12


def corpus_text():
    text = ""
    for name in ("tang300.u8", "song100.u8"):
        path = FORTUNES / name
        if path.exists():
            text += re.sub(r"\x1b\[[0-9;]*m", "", path.read_text(encoding="utf-8"))
    return text


def clauses(text):
    """Complete clauses (text before a clause-ending mark), whitespace removed."""
    out, current = [], ""
    for ch in text:
        if ch in CLAUSE_END:
            if current:
                out.append(current)
            current = ""
        elif not ch.isspace():
            current += ch
    return out


def recited(sample, corpus):
    han = "".join(ch for ch in sample if "\u4e00" <= ch <= "\u9fff" or ch in "，。")
    return any(han[i:i + RECITED_RUN] in corpus for i in range(0, max(0, len(han) - RECITED_RUN + 1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--temperature", default="0.7")
    ap.add_argument("--top-k", default="30")
    ap.add_argument("--max-tokens", default="40")
    ap.add_argument("--generate", default="build/bin/loom-generate")
    ap.add_argument("--show", type=int, default=2, help="samples printed per prompt group")
    ap.add_argument("--verse", action="store_true", help="sample under the prompt's metre (loom-generate --verse)")
    args = ap.parse_args()

    corpus = corpus_text()
    rows = []
    for group, prompts in (("in corpus", IN_CORPUS), ("novel", NOVEL)):
        kept = recites = total = 0
        shown = 0
        for prompt in prompts:
            length = len(prompt) - 1
            for seed in range(1, args.seeds + 1):
                out = subprocess.run([args.generate, args.run, "--prompt", prompt, "--temperature", args.temperature,
                                      "--top-k", args.top_k, "--max-tokens", args.max_tokens, "--seed", str(seed)]
                                     + (["--verse"] if args.verse else []),
                                     capture_output=True, encoding="utf-8", errors="replace")
                if out.returncode != 0:
                    sys.exit(f"poem_metre: loom-generate failed for prompt {prompt!r}: {out.stderr.strip()}")
                sample = out.stdout.strip()
                continuation = sample[len(prompt):] if sample.startswith(prompt) else sample
                first = clauses(continuation)[:3]
                ok = len(first) == 3 and all(len(c) == length for c in first)
                copied = recited(sample, corpus)
                kept += ok
                recites += copied
                total += 1
                if shown < args.show:
                    print(f"[{group}] seed {seed}: {sample!r}  metre={'yes' if ok else 'no'}"
                          f"  recited={'yes' if copied else 'no'}")
                    shown += 1
        rows.append((group, total, kept, recites))
    print("\n| prompts | samples | keep the metre | recited from the corpus |")
    print("| --- | ---: | ---: | ---: |")
    for group, total, kept, recites in rows:
        print(f"| {group} | {total} | {kept} ({kept / total:.0%}) | {recites} ({recites / total:.0%}) |")


if __name__ == "__main__":
    main()
