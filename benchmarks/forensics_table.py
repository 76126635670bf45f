"""The rows of `forensics evaluate --output` (one detector per training seed) as the
tables of docs/forensics.md: per held-out set and perturbation, each metric's median
over the seeds and its range.

    python benchmarks/forensics_table.py runs/f26/protocol.json \
        --detector='spectral_residual=runs/det/sr_s0,runs/det/sr_s1,runs/det/sr_s2'

Prints one Markdown table per detector: cells `median (min-max)` of AUC and TPR@1%,
then the median AP, accuracy and (where the rows have it) ECE.
"""

import argparse
import json

import numpy as np

METRICS = (("auc", "AUC"), ("tpr_at_1pct_fpr", "TPR@1%"), ("ap", "AP"),
           ("accuracy", "acc"), ("ece", "ECE"))


def summarize(rows, directories):
    """{(set, perturbation): {metric: (median, min, max)}} over `directories`' rows."""
    chosen = {}
    for row in rows:
        if row["scorer"] in directories:
            chosen.setdefault((row["set"], row["perturbation"]), []).append(row)
    out = {}
    for key, group in chosen.items():
        if len(group) != len(directories):
            raise SystemExit(f"{key}: {len(group)} rows for {len(directories)} detectors")
        out[key] = {name: (float(np.median(values)), min(values), max(values))
                    for name, _ in METRICS
                    if all(name in row for row in group)
                    for values in [[row[name] for row in group]]}
    return out


def table(summary):
    present = [(k, label) for k, label in METRICS
               if any(k in cell for cell in summary.values())]
    head = "| set | perturbation | " + " | ".join(label for _, label in present) + " |"
    lines = [head, "|---|---|" + "---|" * len(present)]
    for (set_name, perturbation), cell in summary.items():
        parts = []
        for key, _ in present:
            if key not in cell:
                parts.append("")
                continue
            median, low, high = cell[key]
            parts.append(f"{median:.3f} ({low:.3f}-{high:.3f})"
                         if key in ("auc", "tpr_at_1pct_fpr") else f"{median:.3f}")
        lines.append(f"| {set_name} | {perturbation} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("protocol", help="the JSON `forensics evaluate --output` wrote")
    parser.add_argument("--detector", action="append", required=True,
                        help="LABEL=DIR,DIR,...: one detector's folders, one per seed")
    args = parser.parse_args()
    with open(args.protocol) as f:
        rows = json.load(f)
    for spec in args.detector:
        label, _, dirs = spec.partition("=")
        print(f"\n### {label} ({len(dirs.split(','))} seeds)\n")
        print(table(summarize(rows, dirs.split(","))))


if __name__ == "__main__":
    main()
