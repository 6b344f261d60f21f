#!/usr/bin/env python3
"""Re-tuning stability: does tuning a spec twice pick the same winner?

For every spec, `normjit tune --force --json` runs twice, each time into its
own fresh cache. When the two winners differ, `normjit bench --config FIRST
--versus SECOND` times both in one process, in turns on the same buffers
(separate processes differ by up to 10% for the same config here: buffer
placement), `--repeats` times, and the median ratio of their times says how
far apart they are. The issue's target: the same winner, or one within 3%.

    python3 bench/retune_stability.py --normjit build/bin/normjit \
        [--budget 2] [--repeats 3] [--self-check] [--markdown out.md] \
        [--json out.json]

With --self-check, a spec whose winners differ also has its first winner
timed against itself the same way: the spread of that ratio is the
check's own noise, what a 3% tolerance is measured against.

Speed is measured here, never asserted in a test; the exit status is 0
unless a command fails.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# The transformer shapes of the CPU benchmarks (rows x cols), LayerNorm and
# RMSNorm, f32 and bf16, and the fused residual form.
DEFAULT_SPECS = [
    ("layer_norm", 4096, 768, "f32", False),
    ("layer_norm", 8192, 1024, "f32", False),
    ("layer_norm", 2048, 4096, "f32", False),
    ("layer_norm", 256, 1024, "f32", False),
    ("layer_norm", 16, 4096, "f32", False),
    ("layer_norm", 1, 4096, "f32", False),
    ("layer_norm", 512, 12288, "f32", False),
    ("layer_norm", 4096, 768, "bf16", False),
    ("layer_norm", 8192, 1024, "bf16", False),
    ("layer_norm", 2048, 4096, "bf16", False),
    ("layer_norm", 16, 4096, "bf16", False),
    ("layer_norm", 1, 4096, "bf16", False),
    ("rms_norm", 4096, 768, "f32", False),
    ("rms_norm", 2048, 4096, "f32", False),
    ("rms_norm", 16, 4096, "bf16", False),
    ("rms_norm", 2048, 4096, "bf16", False),
    ("rms_norm", 4096, 768, "f32", True),
    ("rms_norm", 2048, 4096, "f32", True),
    ("rms_norm", 256, 1024, "bf16", True),
    ("rms_norm", 2048, 4096, "bf16", True),
    ("layer_norm", 4096, 1024, "f32", True),
    ("layer_norm", 16, 4096, "bf16", True),
]


def spec_args(spec):
    op, rows, cols, dtype, residual = spec
    args = ["--op", op, "--rows", str(rows), "--cols", str(cols),
            "--dtype", dtype]
    if residual:
        args.append("--residual")
    return args


def spec_name(spec):
    op, rows, cols, dtype, residual = spec
    return f"{op}{'+res' if residual else ''} {rows}x{cols} {dtype}"


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def tune(normjit, spec, budget, cache):
    return run_json([normjit, "tune", *spec_args(spec), "--force", "--json",
                     "--budget", str(budget), "--cache", cache,
                     "--no-progress"])


def versus(normjit, spec, first, second):
    """GB/s of `first` / GB/s of `second`, timed in turns in one process."""
    result = run_json([normjit, "bench", *spec_args(spec), "--config", first,
                       "--versus", second, "--json", "--min-time", "0.7",
                       "--reps", "35"])
    return result["versus_ratio"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--normjit", default="build/bin/normjit")
    parser.add_argument("--bench-normjit",
                        help="the normjit that times two winners (needs "
                             "bench --versus; default: --normjit), e.g. to "
                             "check an older tuner")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="tuning budget per spec (default 2, as normjit)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="bench --versus runs per pair of different "
                             "winners (the median ratio counts)")
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument("--self-check", action="store_true",
                        help="where the winners differ, also time the first "
                             "winner against itself the same way: how far "
                             "the check strays with no difference to find")
    parser.add_argument("--limit", type=int, default=0,
                        help="only the first N specs (0: all)")
    parser.add_argument("--markdown")
    parser.add_argument("--json")
    args = parser.parse_args()

    specs = DEFAULT_SPECS[:args.limit] if args.limit else DEFAULT_SPECS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, spec in enumerate(specs):
            first = tune(args.normjit, spec, args.budget,
                         os.path.join(tmp, f"a{index}.toml"))
            second = tune(args.normjit, spec, args.budget,
                          os.path.join(tmp, f"b{index}.toml"))
            row = {"spec": spec_name(spec), "first": first["config"],
                   "second": second["config"],
                   "seconds": [first["seconds"], second["seconds"]],
                   "same": first["config"] == second["config"]}
            if not row["same"]:
                ratio = statistics.median(
                    versus(args.bench_normjit or args.normjit, spec, first["config"],
                           second["config"]) for _ in range(args.repeats))
                row["ratio"] = ratio
                row["within"] = abs(ratio - 1) <= args.tolerance
                if args.self_check:
                    row["self_ratio"] = statistics.median(
                        versus(args.bench_normjit or args.normjit, spec,
                               first["config"], first["config"])
                        for _ in range(args.repeats))
            else:
                row["ratio"] = 1.0
                row["within"] = True
            rows.append(row)
            print(f"{row['spec']:32} {'same' if row['same'] else 'differs':8}"
                  f" first/second {row['ratio']:.3f}"
                  f" {'ok' if row['within'] else 'OUTSIDE'}"
                  f"  tune {row['seconds'][0]:.2f}s {row['seconds'][1]:.2f}s"
                  + (f"  first/first {row['self_ratio']:.3f}"
                     if "self_ratio" in row else ""),
                  flush=True)

    same = sum(r["same"] for r in rows)
    within = sum(r["within"] for r in rows)
    longest = max(max(r["seconds"]) for r in rows)
    summary = (f"{same} of {len(rows)} specs tuned to the same winner twice; "
               f"{within} of {len(rows)} the same or within "
               f"{args.tolerance:.0%}; slowest tune {longest:.2f} s")
    strays = [abs(r["self_ratio"] - 1) for r in rows if "self_ratio" in r]
    if strays:
        summary += (f"; a winner against itself strays by "
                    f"{statistics.median(strays):.1%} (median) to "
                    f"{max(strays):.1%} over {len(strays)} specs")
    print(summary)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write("| spec | same winner | first / second GB/s | within |"
                      " first / first GB/s |\n")
            out.write("|---|---|---:|---|---:|\n")
            for r in rows:
                self_ratio = (f"{r['self_ratio']:.3f}" if "self_ratio" in r
                              else "-")
                out.write(f"| {r['spec']} | {'yes' if r['same'] else 'no'} | "
                          f"{r['ratio']:.3f} | "
                          f"{'yes' if r['within'] else 'no'} | "
                          f"{self_ratio} |\n")
            out.write(f"\n{summary}\n")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"rows": rows, "summary": summary}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
