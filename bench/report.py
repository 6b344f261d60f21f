#!/usr/bin/env python3
"""Turns normjit-bench-norm's JSON output into the Markdown tables of
bench/README.md.

    build/bin/normjit-bench-norm --benchmark_min_time=0.2 \
        --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
        --benchmark_out=bench.json --benchmark_out_format=json
    python3 bench/report.py bench.json

With repetitions, every cell is the median of the repetitions; random
interleaving runs them in a shuffled order, so that a slow minute of the
machine does not land on one benchmark only.
"""
import json
import math
import re
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    results = {}
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            continue
        # With --benchmark_repetitions, the medians stand for the runs.
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        if b.get("run_type") == "iteration" and b.get("repetitions", 1) > 1:
            continue
        name = b.get("run_name", b["name"])
        m = re.match(r"BM_(\w+?)(?:/(\w+))?/rows:(\d+)/cols:(\d+)/bf16:(\d)/"
                     r"threads:(\d+)", name)
        if not m:
            results[name.split("/")[0]] = b
            continue
        kind, variant, rows, cols, bf16, threads = m.groups()
        key = (int(rows), int(cols), "bf16" if bf16 == "1" else "f32",
               int(threads))
        name = kind + ("/" + variant if variant else "")
        results.setdefault(key, {})[name] = b
    return data["context"], results


def gbps(b):
    return b["GB/s"] / 1e9 if b and "GB/s" in b else float("nan")


def seconds(b):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return b["real_time"] * scale


def fmt(x, spec=".1f"):
    return "-" if x != x else format(x, spec)


def main(path):
    context, results = load(path)
    shapes = sorted(k for k in results if isinstance(k, tuple))
    print(f"Machine: {context.get('num_cpus')} CPUs at "
          f"{context.get('mhz_per_cpu')} MHz, caches: " +
          ", ".join(f"L{c['level']} {c['size'] // 1024} KiB"
                    for c in context.get("caches", []) if c["type"] != "Instruction"))
    print()
    print("### LayerNorm: normjit vs oneDNN vs memcpy (GB/s, bytes read + written)")
    print()
    print("| rows x cols | dtype | threads | normjit default | normjit tuned | "
          "normjit, bf16 gamma/beta | "
          "oneDNN | naive | tuned / oneDNN | memcpy | tuned % of memcpy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in shapes:
        r = results[key]
        d = gbps(r.get("layer_norm_normjit/normjit"))
        t = gbps(r.get("layer_norm_normjit/normjit_tuned"))
        p = gbps(r.get("layer_norm_normjit/normjit_bf16_params"))
        o = gbps(r.get("layer_norm_onednn"))
        n = gbps(r.get("layer_norm_naive"))
        c = gbps(r.get("memcpy"))
        best = max(x for x in (d, t) if x == x) if (d == d or t == t) else float("nan")
        print(f"| {key[0]}x{key[1]} | {key[2]} | {key[3]} | {fmt(d)} | {fmt(t)} | "
              f"{fmt(p)} | {fmt(o)} | {fmt(n)} | {fmt(best / o, '.2f') if o == o else '-'}x | "
              f"{fmt(c)} | {fmt(100 * best / c, '.0f')}% |")
    print()
    print("### Residual + RMSNorm: one fused kernel vs add then norm (GB/s)")
    print()
    print("| rows x cols | dtype | threads | fused | split in one kernel | "
          "fused / split | add, then norm: two calls | fused / two calls | "
          "rms_norm alone |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in shapes:
        r = results[key]
        f = gbps(r.get("layer_norm_normjit/add_rms_norm_fused"))
        s = gbps(r.get("layer_norm_normjit/add_then_rms_norm"))
        t = gbps(r.get("add_then_rms_norm_two_calls"))
        a = gbps(r.get("layer_norm_normjit/rms_norm"))
        print(f"| {key[0]}x{key[1]} | {key[2]} | {key[3]} | {fmt(f)} | {fmt(s)} | "
              f"{fmt(f / s, '.2f')}x | {fmt(t)} | {fmt(f / t, '.2f')}x | {fmt(a)} |")
    print()
    print("### Decode shapes: time per call vs a memcpy of the same bytes")
    print()
    print("| rows x cols | dtype | threads | normjit default | normjit tuned | "
          "normjit, bf16 gamma/beta | oneDNN | memcpy | tuned / memcpy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in shapes:
        if key[0] > 16:
            continue
        r = results[key]
        def us(name):
            b = r.get(name)
            return seconds(b) * 1e6 if b else float("nan")
        d, t, o, c = (us("layer_norm_normjit/normjit"), us("layer_norm_normjit/normjit_tuned"),
                      us("layer_norm_onednn"), us("memcpy"))
        p = us("layer_norm_normjit/normjit_bf16_params")
        best = min((x for x in (d, t) if x == x), default=float("nan"))
        print(f"| {key[0]}x{key[1]} | {key[2]} | {key[3]} | {fmt(d, '.2f')} us | "
              f"{fmt(t, '.2f')} us | {fmt(p, '.2f')} us | {fmt(o, '.2f')} us | {fmt(c, '.2f')} us | "
              f"{fmt(best / c, '.1f')}x |")
    print()
    for name in ("BM_jit_compile", "BM_jit_cache_hit"):
        b = results.get(name)
        if b:
            print(f"- {name}: {b['real_time']:.3f} {b['time_unit']} per call")


if __name__ == "__main__":
    main(sys.argv[1])
