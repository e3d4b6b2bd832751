#!/usr/bin/env python3
"""Prints the omni-tiny summary table: each figure of a pretraining run's
eval.json next to its chance level and the target, plus the 1%-label
fine-tune against the same model trained from scratch.

    scripts/omni_summary.py RUN_DIR [PRETRAINED_FINETUNE_DIR SCRATCH_DIR]
"""
import json
import os
import sys

# (metric, target, higher is better)
TARGETS = [
    ("zero_shot_accuracy", 0.75, True),
    ("i2t_r1", 0.50, True),
    ("t2i_r1", None, True),
    ("a2t_r1", 0.80, True),
    ("t2a_r1", None, True),
    ("i2a_r1", None, True),
    ("a2i_r1", None, True),
    ("v2t_r1", None, True),
    ("t2v_r1", None, True),
    ("caption_exact_match", None, True),
    ("asr_cer", 0.10, False),
    ("compositional_zero_shot_accuracy", None, True),
    ("video_caption_exact_match", None, True),
]


def load(run):
    path = os.path.join(run, "eval.json")
    if not os.path.exists(path):
        sys.exit(f"omni_summary: {path} does not exist (did the run finish?)")
    with open(path) as f:
        return json.load(f)


def row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def main():
    if len(sys.argv) not in (2, 4):
        sys.exit(__doc__)
    ev = load(sys.argv[1])
    m, chance, n = ev["metrics"], ev["chance"], ev["n"]
    lines = [("metric", "English", "Chinese", "chance", "target", "n")]
    for name, target, higher in TARGETS:
        if name not in m:
            continue
        zh = m.get(name + "_zh")
        t = "-" if target is None else (">= " if higher else "<= ") + f"{target:.2f}"
        met = "" if target is None else (" ok" if (m[name] >= target if higher else m[name] <= target) else " missed")
        lines.append((name, f"{m[name]:.3f}{met}", "-" if zh is None else f"{zh:.3f}", f"{chance.get(name, 0):.3f}", t,
                      n.get(name, "")))
    if len(sys.argv) == 4:
        pre, scratch = load(sys.argv[2])["metrics"]["accuracy"], load(sys.argv[3])["metrics"]["accuracy"]
        gain = 100 * (pre - scratch)
        lines.append(("1%-label accuracy, pretrained", f"{pre:.3f}", "-", "0.100", "", ""))
        lines.append(("1%-label accuracy, from scratch", f"{scratch:.3f}", "-", "0.100", "", ""))
        lines.append(("gain of pretraining (points)", f"{gain:+.1f}" + (" ok" if gain >= 5 else " missed"), "-", "",
                      ">= +5.0", ""))
    widths = [max(len(str(l[i])) for l in lines) for i in range(6)]
    print(row(lines[0], widths))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines[1:]:
        print(row(l, widths))


if __name__ == "__main__":
    main()
