#!/usr/bin/env python3
#===- gpu_bench.py - normjit's GPU kernels against PyTorch, Triton, a copy -===#
"""GPU benchmark of normjit against PyTorch, Triton and a device-to-device copy.

For each shape (rows x cols) and dtype it times, on one CUDA device:

  layer_norm    LayerNorm with gamma and beta: normjit (default config, and
                the tuned one with --tuned), torch.nn.functional.layer_norm,
                a fused Triton LayerNorm (when `import triton` works);
  rms_norm      RMSNorm with gamma: normjit, F.rms_norm (torch >= 2.4, else
                the composite x * rsqrt(mean(x^2) + eps) * w);
  add_rms_norm  residual + RMSNorm: normjit's fused kernel (reads x, r, gamma;
                writes y and s = x + r) against `s = x + r; y = rms_norm(s)`;
  copy          the same bytes moved by the faster of dst.copy_(src) (a
                memcpy, which the driver may give to a copy engine) and an
                elementwise kernel (int32 x | 0): the ceiling.

GB/s = (bytes read + bytes written) / time, the ideal bytes of the op counted
the same way for every implementation (PyTorch's add + rms_norm is charged
the fused op's bytes, not its extra traffic). Each implementation's output is
checked once against an f32 reference before it is timed.

Needs PyTorch with CUDA (Triton optional) and normjit's C library
(libnormjit.so, loaded with ctypes) only for a real run; --help, --dry-run,
--self-test and --check-lib use the Python standard library alone.

Examples:
  python3 bench/gpu_bench.py --bundle /opt/normjit-bundle --tuned \\
      --time-limit 420 --json gpu.json --csv gpu.csv
  python3 bench/gpu_bench.py --dry-run
  python3 bench/gpu_bench.py --self-test
"""

import argparse
import csv
import ctypes
import faulthandler
import glob
import io
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

DEFAULT_SHAPES = ["4096x768", "8192x1024", "2048x4096", "32768x4096",
                  "16384x8192", "1x4096", "16x4096"]
DEFAULT_DTYPES = ["bf16", "f32"]
OPS = ["layer_norm", "rms_norm", "add_rms_norm"]

DTYPE_SIZE = {"f32": 4, "f16": 2, "bf16": 2}
NJ_DTYPE = {"f32": 0, "f16": 1, "bf16": 2}  # normjit_dtype_t (dtype.h)
NJ_OP = {"layer_norm": 0, "rms_norm": 1, "add_rms_norm": 1}  # normjit_op_t
NJ_OP_NAME = {"layer_norm": "layer_norm", "rms_norm": "rms_norm",
              "add_rms_norm": "rms_norm"}
EPS = {"layer_norm": 1e-5, "rms_norm": 1e-6, "add_rms_norm": 1e-6}
# (atol, rtol): |out - ref| <= atol + rtol * |ref| against the f32 reference.
TOLERANCE = {"f32": (1e-4, 1e-4), "f16": (1e-2, 1e-2), "bf16": (1e-2, 1.6e-2)}

# The targets of the GPU issue.
BIG_ELEMENTS = 8 * 1024 * 1024  # "inputs of 8M elements or more"
COPY_FRACTION_TARGET = 0.85
LN_BF16_SPEEDUP_TARGET = 1.2
ADD_RMS_SPEEDUP_TARGET = 1.5

IMPLS = ["normjit", "normjit_tuned", "torch", "triton", "copy"]
# Phase 2 (--tuned) measures the default again right beside the tuned
# kernel, so that tuned/default compares timings taken together.
DEFAULT_RERUN = "normjit_default_rerun"

MIB = 1024.0 * 1024.0


class TimeUp(Exception):
    """The --time-limit has passed."""


class NormJITError(RuntimeError):
    pass


#===----------------------------------------------------------------------===#
# Plan: shapes, bytes, cases (pure Python)
#===----------------------------------------------------------------------===#

def parse_shape(text):
    """'4096x768' -> (4096, 768)."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2:
        raise ValueError("shape %r is not ROWSxCOLS" % text)
    try:
        rows, cols = int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError("shape %r is not ROWSxCOLS" % text)
    if rows < 1 or cols < 1:
        raise ValueError("shape %r: rows and cols must be >= 1" % text)
    return rows, cols


def parse_list(text, allowed, what):
    items = [t.strip() for t in text.split(",") if t.strip()]
    for item in items:
        if item not in allowed:
            raise ValueError("unknown %s %r (one of: %s)"
                             % (what, item, ", ".join(allowed)))
    if not items:
        raise ValueError("no %s given" % what)
    return items


def bytes_moved(op, rows, cols, dtype):
    """Ideal bytes read + written by one call of the op (every buffer of
    `dtype`): LayerNorm x, gamma, beta -> y; RMSNorm x, gamma -> y; the
    residual form x, r, gamma -> y, s."""
    e = DTYPE_SIZE[dtype]
    m = rows * cols
    if op == "layer_norm":
        return e * (2 * m + 2 * cols)
    if op == "rms_norm":
        return e * (2 * m + cols)
    if op == "add_rms_norm":
        return e * (4 * m + cols)
    raise ValueError("unknown op %r" % op)


def copy_buffer_bytes(op, rows, cols, dtype):
    """Size of the copy that moves the same bytes (a copy of N bytes reads N
    and writes N)."""
    return max(bytes_moved(op, rows, cols, dtype) // 2, 1)


def gbps(nbytes, ms):
    if ms is None or ms <= 0:
        return None
    return nbytes / (ms * 1e-3) / 1e9


def plan_cases(shapes, dtypes, ops):
    """The cases in execution order: dtype-major (bf16 first by default, the
    dtype most targets are about), then shape, then op."""
    cases = []
    for dtype in dtypes:
        for shape in shapes:
            rows, cols = parse_shape(shape)
            for op in ops:
                cases.append({
                    "shape": "%dx%d" % (rows, cols), "rows": rows,
                    "cols": cols, "dtype": dtype, "op": op,
                    "bytes": bytes_moved(op, rows, cols, dtype),
                    "copy_bytes": 2 * copy_buffer_bytes(op, rows, cols, dtype),
                    "impls": {}, "tune": None, "skipped": None,
                })
    return cases


def case_key(case):
    return (case["shape"], case["dtype"], case["op"])


def planned_impls(op, tuned, triton):
    impls = ["normjit"]
    if tuned:
        impls.append("normjit_tuned")
    impls.append("torch")
    if op == "layer_norm" and triton:
        impls.append("triton")
    impls.append("copy")
    return impls


def device_memory_estimate(rows, cols, dtype, ops):
    """Rough peak bytes on the device for one (shape, dtype): inputs, the
    outputs of one op, its f32 reference and the copy buffers."""
    m = rows * cols
    e = DTYPE_SIZE[dtype]
    inputs = 2 * m * e  # x, r
    outputs = 3 * m * e if "add_rms_norm" in ops else 2 * m * e
    reference = 4 * m * 4
    copy = 2 * (4 * m * e) // 2 if "add_rms_norm" in ops else 2 * m * e
    return inputs + outputs + reference + copy


#===----------------------------------------------------------------------===#
# Results: derived numbers, targets, table (pure Python)
#===----------------------------------------------------------------------===#

def impl_ok(case, name):
    """The measurement of `name` when it is valid (timed, no error, output
    not wrong), else None."""
    r = case["impls"].get(name)
    if not r or r.get("error") or r.get("gbps") is None:
        return None
    if r.get("ok") is False:
        return None
    return r


def derive(case):
    """Numbers the table and the targets use. `normjit` below is the tuned
    kernel when it was measured, else the default."""
    d = {"nj_name": None, "nj_gbps": None, "pct_copy": None,
         "vs_torch": None, "vs_triton": None, "tuned_over_default": None,
         "wrong": []}
    for name in IMPLS + [DEFAULT_RERUN]:
        r = case["impls"].get(name)
        if r and r.get("ok") is False and not r.get("error"):
            d["wrong"].append(name)
    best = impl_ok(case, "normjit_tuned") or impl_ok(case, "normjit")
    if best is not None:
        d["nj_name"] = ("normjit_tuned" if best is impl_ok(case, "normjit_tuned")
                        else "normjit")
        d["nj_gbps"] = best["gbps"]
        copy = impl_ok(case, "copy")
        if copy:
            d["pct_copy"] = 100.0 * best["gbps"] / copy["gbps"]
        torch_r = impl_ok(case, "torch")
        if torch_r:
            d["vs_torch"] = best["gbps"] / torch_r["gbps"]
        triton_r = impl_ok(case, "triton")
        if triton_r:
            d["vs_triton"] = best["gbps"] / triton_r["gbps"]
    tuned = impl_ok(case, "normjit_tuned")
    default = impl_ok(case, DEFAULT_RERUN) or impl_ok(case, "normjit")
    if tuned and default:
        d["tuned_over_default"] = tuned["gbps"] / default["gbps"]
    return d


def _target(name, goal, checked, misses, worst, summary_fn):
    if not checked:
        status = "no data"
    elif misses:
        status = "NOT met"
    else:
        status = "met"
    return {"name": name, "goal": goal, "status": status,
            "cases": len(checked), "met": len(checked) - len(misses),
            "worst": worst, "detail": summary_fn(checked, misses, worst)}


def _label(case):
    return "%s %s %s" % (case["shape"], case["dtype"], case["op"])


def evaluate_targets(cases, noise=0.03):
    """The four targets of the GPU issue as met / NOT met / no data.

    A case counts where its reference (the copy, torch, the default kernel)
    was measured; it is missed when normjit's number is below the goal or
    absent (its kernel failed or gave a wrong output). A case never run
    (time limit, filtered out) is not counted."""
    targets = []

    def ran(case):
        return not case.get("skipped") and case["impls"]

    def detail(unit):
        def fmt(checked, misses, worst):
            if not checked:
                return "no measured case"
            text = "%d/%d cases" % (len(checked) - len(misses), len(checked))
            if worst is not None:
                text += "; worst %s %s" % (unit(worst[1]), worst[0])
            if misses:
                text += "; missed: " + ", ".join(
                    "%s (%s)" % (label, unit(v) if v is not None else "no data")
                    for label, v in misses[:6])
                if len(misses) > 6:
                    text += ", ..."
            return text
        return fmt

    def collect(select, value, goal_value):
        checked, misses, worst = [], [], None
        for case in cases:
            if not ran(case) or not select(case):
                continue
            v = value(case)
            checked.append(case)
            if v is None or v < goal_value:
                misses.append((_label(case), v))
            if v is not None and (worst is None or v < worst[1]):
                worst = (_label(case), v)
        return checked, misses, worst

    # 1. >= 85% of the copy ceiling for inputs of 8M elements or more.
    c, m, w = collect(lambda k: k["rows"] * k["cols"] >= BIG_ELEMENTS
                      and impl_ok(k, "copy"),
                      lambda k: derive(k)["pct_copy"],
                      100.0 * COPY_FRACTION_TARGET)
    targets.append(_target(
        "copy_ceiling", ">= %d%% of the copy ceiling, inputs >= 8M elements"
        % round(100 * COPY_FRACTION_TARGET), c, m, w,
        detail(lambda v: "%.0f%%" % v)))
    # 2. >= 1.2x torch layer_norm on bf16.
    c, m, w = collect(lambda k: k["op"] == "layer_norm" and k["dtype"] == "bf16"
                      and impl_ok(k, "torch"),
                      lambda k: derive(k)["vs_torch"], LN_BF16_SPEEDUP_TARGET)
    targets.append(_target(
        "layer_norm_bf16_vs_torch",
        ">= %.1fx torch layer_norm, bf16" % LN_BF16_SPEEDUP_TARGET, c, m, w,
        detail(lambda v: "%.2fx" % v)))
    # 3. >= 1.5x torch add + rms_norm, fused residual form.
    c, m, w = collect(lambda k: k["op"] == "add_rms_norm"
                      and impl_ok(k, "torch"),
                      lambda k: derive(k)["vs_torch"], ADD_RMS_SPEEDUP_TARGET)
    targets.append(_target(
        "add_rms_norm_vs_torch",
        ">= %.1fx torch add + rms_norm (fused residual form)"
        % ADD_RMS_SPEEDUP_TARGET, c, m, w, detail(lambda v: "%.2fx" % v)))
    # 4. tuned >= default on every shape (within the timing noise). A case
    # whose `normjit tune` failed counts as missed; one never tuned (time
    # limit) is not counted.
    def tune_failed(k):
        return bool((k.get("tune") or {}).get("error"))
    c, m, w = collect(lambda k: ("normjit_tuned" in k["impls"]
                                 and (impl_ok(k, DEFAULT_RERUN)
                                      or impl_ok(k, "normjit")))
                      or tune_failed(k),
                      lambda k: derive(k)["tuned_over_default"], 1.0 - noise)
    t = _target("tuned_vs_default",
                "tuned >= default on every shape (noise allowance %.0f%%)"
                % (100 * noise), c, m, w, detail(lambda v: "%.2fx" % v))
    strict = sum(1 for k in c
                 if (derive(k)["tuned_over_default"] or 0.0) >= 1.0)
    if c:
        t["detail"] += "; %d/%d strictly >= 1.00x" % (strict, len(c))
    failed = sum(1 for k in c if tune_failed(k))
    if failed:
        t["detail"] += "; normjit tune failed on %d" % failed
    targets.append(t)
    return targets


def fmt_gbps(v):
    if v is None:
        return "-"
    return "%.0f" % v if v >= 100 else "%.1f" % v


def fmt_ratio(v):
    return "-" if v is None else "%.2fx" % v


def fmt_pct(v):
    return "-" if v is None else "%.0f%%" % v


def fmt_mb(nbytes):
    mb = nbytes / 1e6
    return "%.3g" % mb if mb < 10 else "%.0f" % mb


TABLE_HEADER = ["shape", "dtype", "op", "MB moved", "normjit", "tuned",
                "torch", "triton", "copy", "nj %copy", "nj/torch",
                "nj/triton", "tuned/def", "check"]


def render_table(cases, shapes_order=None, dtypes_order=None):
    """The Markdown table and the footnotes of its failed cells."""
    shapes_order = shapes_order or []
    dtypes_order = dtypes_order or []

    def sort_key(case):
        s = (shapes_order.index(case["shape"]) if case["shape"] in shapes_order
             else len(shapes_order))
        t = (dtypes_order.index(case["dtype"]) if case["dtype"] in dtypes_order
             else len(dtypes_order))
        return (s, case["shape"], t, case["dtype"], OPS.index(case["op"]))

    notes = []

    def note(text):
        """A footnote; identical texts share one number."""
        if text not in notes:
            notes.append(text)
        return "[%d]" % (notes.index(text) + 1)

    lines = ["| " + " | ".join(TABLE_HEADER) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(TABLE_HEADER) - 4)
                            + ["---"]) + "|"]
    for case in sorted(cases, key=sort_key):
        d = derive(case)
        cells = [case["shape"], case["dtype"], case["op"],
                 fmt_mb(case["bytes"])]
        if case.get("skipped") and not case["impls"]:
            cells += ["-"] * (len(TABLE_HEADER) - 5)
            cells.append("skipped " + note(case["skipped"]))
            lines.append("| " + " | ".join(cells) + " |")
            continue
        for name in ["normjit", "normjit_tuned", "torch", "triton", "copy"]:
            r = case["impls"].get(name)
            if r is None:
                cells.append("-")
            elif r.get("error"):
                cells.append("ERR" + note("%s: %s" % (name, r["error"])))
            else:
                text = fmt_gbps(r.get("gbps"))
                if r.get("ok") is False:
                    text += "!"
                if r.get("mode") and r["mode"] != "graph" and \
                        r["mode"] not in ("eager", "cold"):
                    text += "*"
                cells.append(text)
        cells += [fmt_pct(d["pct_copy"]), fmt_ratio(d["vs_torch"]),
                  fmt_ratio(d["vs_triton"]), fmt_ratio(d["tuned_over_default"])]
        check = []
        for name in ["normjit", "normjit_tuned", "torch", "triton"]:
            r = case["impls"].get(name)
            if r and r.get("ok") is False:
                check.append("%s FAIL (err %.3g)" % (name, r.get("max_err")
                                                     or float("nan")))
        if not check:
            checked = [n for n in ["normjit", "normjit_tuned", "torch", "triton"]
                       if case["impls"].get(n, {}).get("ok") is True]
            check = ["ok"] if checked else ["-"]
        if case.get("skipped"):
            check.append("partial " + note(case["skipped"]))
        cells.append("; ".join(check))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), notes


def render_targets(targets):
    lines = []
    for t in targets:
        lines.append("- [%s] %s: %s" % (t["status"], t["goal"], t["detail"]))
    return "\n".join(lines)


def render_report(cases, targets, env_lines, options_line, shapes_order,
                  dtypes_order, configs=True):
    out = io.StringIO()
    out.write("# normjit GPU benchmark\n\n")
    for line in env_lines:
        out.write("- %s\n" % line)
    if options_line:
        out.write("- %s\n" % options_line)
    out.write("\n")
    table, notes = render_table(cases, shapes_order, dtypes_order)
    out.write(table + "\n\n")
    out.write(
        "GB/s = (bytes read + bytes written) / time, the op's ideal bytes for "
        "every column (torch's `x + r; rms_norm` is charged the fused op's "
        "bytes, not the extra traffic of its temporary). copy: "
        "the faster of `dst.copy_(src)` and an SM elementwise copy moving the "
        "same bytes. normjit = default config; "
        "tuned = `normjit tune`'s config; nj %copy, nj/torch, nj/triton use "
        "the tuned kernel when measured, else the default; tuned/def compares "
        "the tuned kernel with the default, timed in turns (median of 3 each). "
        "`!` = output "
        "failed the check (not counted for the targets), `*` = timed eagerly "
        "because graph capture failed or its time was implausible (see "
        "--json).\n")
    if notes:
        out.write("\n")
        for i, text in enumerate(notes, 1):
            out.write("[%d] %s\n" % (i, text.replace("\n", " ")))
    if configs:
        cfg_lines = []
        for case in cases:
            for name in ["normjit", "normjit_tuned"]:
                r = case["impls"].get(name)
                if r and r.get("config"):
                    cfg_lines.append("- %s %s: `%s`" % (_label(case), name,
                                                       r["config"]))
            tune = case.get("tune")
            if tune and tune.get("error"):
                cfg_lines.append("- %s tune failed: %s" % (_label(case),
                                                          tune["error"]))
        if cfg_lines:
            out.write("\n## Configs\n\n" + "\n".join(cfg_lines) + "\n")
    out.write("\n## Targets\n\n" + render_targets(targets) + "\n")
    return out.getvalue()


CSV_FIELDS = ["shape", "rows", "cols", "dtype", "op", "bytes", "copy_bytes"]


def csv_rows(cases):
    header = list(CSV_FIELDS)
    for name in IMPLS + [DEFAULT_RERUN]:
        header += [name + "_gbps", name + "_ms", name + "_mode",
                   name + "_ok", name + "_max_err", name + "_error"]
    header += ["pct_copy", "vs_torch", "vs_triton", "tuned_over_default",
               "normjit_config", "tuned_config", "skipped"]
    rows = [header]
    for case in cases:
        d = derive(case)
        row = [case[f] for f in CSV_FIELDS]
        for name in IMPLS + [DEFAULT_RERUN]:
            r = case["impls"].get(name) or {}
            row += [r.get("gbps"), r.get("ms"), r.get("mode"), r.get("ok"),
                    r.get("max_err"), r.get("error")]
        row += [d["pct_copy"], d["vs_torch"], d["vs_triton"],
                d["tuned_over_default"],
                (case["impls"].get("normjit") or {}).get("config"),
                (case["impls"].get("normjit_tuned") or {}).get("config"),
                case.get("skipped")]
        rows.append(["" if v is None else v for v in row])
    return rows


def write_csv(path, cases):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(csv_rows(cases))


def write_json(path, cases, targets, env, options):
    doc = {"env": env, "options": options, "cases": [],
           "targets": targets}
    for case in cases:
        c = dict(case)
        c["derived"] = derive(case)
        doc["cases"].append(c)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    os.replace(tmp, path)


#===----------------------------------------------------------------------===#
# normjit: library and CLI discovery, the ctypes binding, `normjit tune`
#===----------------------------------------------------------------------===#

class NjSpec(ctypes.Structure):
    """normjit_kernel_spec_t (runtime/include/normjit/runtime/kernel.h)."""
    _fields_ = [("op", ctypes.c_int), ("cols", ctypes.c_int64),
                ("x_dtype", ctypes.c_int), ("y_dtype", ctypes.c_int),
                ("has_residual", ctypes.c_int),
                ("residual_dtype", ctypes.c_int),
                ("store_sum", ctypes.c_int), ("sum_dtype", ctypes.c_int),
                ("has_gamma", ctypes.c_int), ("gamma_dtype", ctypes.c_int),
                ("has_beta", ctypes.c_int), ("beta_dtype", ctypes.c_int),
                ("store_mean", ctypes.c_int), ("store_rstd", ctypes.c_int),
                ("epsilon", ctypes.c_float)]


class NjArgs(ctypes.Structure):
    """normjit_run_args_t (kernel.h); strides in elements, 0 = contiguous."""
    _fields_ = [("rows", ctypes.c_int64),
                ("x", ctypes.c_void_p), ("x_stride", ctypes.c_int64),
                ("residual", ctypes.c_void_p),
                ("residual_stride", ctypes.c_int64),
                ("gamma", ctypes.c_void_p), ("beta", ctypes.c_void_p),
                ("y", ctypes.c_void_p), ("y_stride", ctypes.c_int64),
                ("sum", ctypes.c_void_p), ("sum_stride", ctypes.c_int64),
                ("mean", ctypes.c_void_p), ("rstd", ctypes.c_void_p)]


REQUIRED_SYMBOLS = ["normjit_context_create", "normjit_context_destroy",
                    "normjit_kernel_spec_default", "normjit_kernel_release",
                    "normjit_kernel_config", "normjit_last_error"]
GPU_SYMBOLS = ["normjit_kernel_get_for_device", "normjit_kernel_run_on_stream"]


def library_candidates(lib=None, bundle=None, environ=None, script_dir=None,
                       cwd=None):
    """Where to look for libnormjit.so, in order: --lib; $NORMJIT_LIB;
    <bundle>/lib/libnormjit.so*; build/lib next to this script's repository
    and under the working directory."""
    environ = os.environ if environ is None else environ
    if lib:
        return [lib]
    out = []
    if environ.get("NORMJIT_LIB"):
        out.append(environ["NORMJIT_LIB"])
    if bundle:
        libdir = os.path.join(bundle, "lib")
        out.append(os.path.join(libdir, "libnormjit.so"))
        out += sorted(glob.glob(os.path.join(libdir, "libnormjit.so.*")))
        out += sorted(p for p in glob.glob(os.path.join(libdir, "libnormjit*.so*"))
                      if p not in out)
    for base in [os.path.join(script_dir, os.pardir) if script_dir else None,
                 cwd]:
        if base:
            out.append(os.path.normpath(os.path.join(base, "build", "lib",
                                                     "libnormjit.so")))
    seen, result = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            result.append(p)
    return result


def cli_candidates(cli=None, bundle=None, lib_path=None, script_dir=None):
    if cli:
        return [cli]
    out = []
    if bundle:
        out.append(os.path.join(bundle, "bin", "normjit"))
    if lib_path:
        out.append(os.path.normpath(os.path.join(os.path.dirname(lib_path),
                                                 os.pardir, "bin", "normjit")))
    if script_dir:
        out.append(os.path.normpath(os.path.join(script_dir, os.pardir, "build",
                                                 "bin", "normjit")))
    which = shutil.which("normjit")
    if which:
        out.append(which)
    return out


def first_existing(paths):
    for p in paths:
        if p and os.path.isfile(p):
            return p
    return None


class NormJIT(object):
    """normjit's C ABI through ctypes."""

    def __init__(self, path):
        self.path = path
        mode = getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 2)
        self.lib = ctypes.CDLL(path, mode=mode)
        missing = [s for s in REQUIRED_SYMBOLS if not hasattr(self.lib, s)]
        if missing:
            raise NormJITError("%s lacks %s (not normjit's C ABI)"
                               % (path, ", ".join(missing)))
        self.has_gpu_api = all(hasattr(self.lib, s) for s in GPU_SYMBOLS)
        L = self.lib
        vp, c_int = ctypes.c_void_p, ctypes.c_int
        L.normjit_context_create.argtypes = [ctypes.POINTER(vp)]
        L.normjit_context_create.restype = c_int
        L.normjit_context_destroy.argtypes = [vp]
        L.normjit_context_destroy.restype = None
        L.normjit_kernel_spec_default.argtypes = [c_int, ctypes.c_int64]
        L.normjit_kernel_spec_default.restype = NjSpec
        L.normjit_kernel_release.argtypes = [vp]
        L.normjit_kernel_release.restype = None
        L.normjit_kernel_config.argtypes = [vp]
        L.normjit_kernel_config.restype = ctypes.c_char_p
        L.normjit_last_error.argtypes = []
        L.normjit_last_error.restype = ctypes.c_char_p
        if hasattr(L, "normjit_status_name"):
            L.normjit_status_name.argtypes = [c_int]
            L.normjit_status_name.restype = ctypes.c_char_p
        if hasattr(L, "normjit_kernel_compile_ms"):
            L.normjit_kernel_compile_ms.argtypes = [vp]
            L.normjit_kernel_compile_ms.restype = ctypes.c_double
        if hasattr(L, "normjit_version"):
            L.normjit_version.argtypes = []
            L.normjit_version.restype = ctypes.c_char_p
        if hasattr(L, "normjit_kernel_get"):
            L.normjit_kernel_get.argtypes = [vp, ctypes.POINTER(NjSpec),
                                             ctypes.POINTER(vp)]
            L.normjit_kernel_get.restype = c_int
        if hasattr(L, "normjit_kernel_run"):
            L.normjit_kernel_run.argtypes = [vp, ctypes.POINTER(NjArgs)]
            L.normjit_kernel_run.restype = c_int
        if self.has_gpu_api:
            L.normjit_kernel_get_for_device.argtypes = [
                vp, ctypes.POINTER(NjSpec), ctypes.c_char_p, ctypes.c_char_p,
                ctypes.POINTER(vp)]
            L.normjit_kernel_get_for_device.restype = c_int
            L.normjit_kernel_run_on_stream.argtypes = [
                vp, ctypes.POINTER(NjArgs), vp]
            L.normjit_kernel_run_on_stream.restype = c_int
        self.ctx = vp()
        self.check(L.normjit_context_create(ctypes.byref(self.ctx)),
                   "normjit_context_create")

    def version(self):
        if hasattr(self.lib, "normjit_version"):
            return (self.lib.normjit_version() or b"?").decode()
        return "?"

    def error_text(self, rc, what):
        msg = (self.lib.normjit_last_error() or b"").decode(errors="replace")
        name = str(rc)
        if hasattr(self.lib, "normjit_status_name"):
            name = (self.lib.normjit_status_name(rc) or b"").decode() or name
        return "%s: %s%s" % (what, name, (": " + msg) if msg else "")

    def check(self, rc, what):
        if rc != 0:
            raise NormJITError(self.error_text(rc, what))

    def spec(self, op, cols, dtype):
        s = self.lib.normjit_kernel_spec_default(NJ_OP[op], cols)
        dt = NJ_DTYPE[dtype]
        s.x_dtype = s.y_dtype = dt
        s.has_gamma, s.gamma_dtype = 1, dt
        s.has_beta, s.beta_dtype = (1, dt) if op == "layer_norm" else (0, dt)
        if op == "add_rms_norm":
            s.has_residual, s.residual_dtype = 1, dt
            s.store_sum, s.sum_dtype = 1, dt
        else:
            s.residual_dtype = s.sum_dtype = dt
        s.epsilon = EPS[op]
        return s

    def get(self, spec, device, config=None):
        kernel = ctypes.c_void_p()
        if device == "cpu" and not self.has_gpu_api and config is None:
            rc = self.lib.normjit_kernel_get(self.ctx, ctypes.byref(spec),
                                             ctypes.byref(kernel))
            self.check(rc, "normjit_kernel_get")
            return kernel
        if not self.has_gpu_api:
            raise NormJITError("%s has no normjit_kernel_get_for_device / "
                               "normjit_kernel_run_on_stream (a library "
                               "without the GPU backend's C ABI)" % self.path)
        rc = self.lib.normjit_kernel_get_for_device(
            self.ctx, ctypes.byref(spec), device.encode(),
            config.encode() if config else None, ctypes.byref(kernel))
        self.check(rc, "normjit_kernel_get_for_device(%s%s)"
                   % (device, ", " + config if config else ""))
        return kernel

    def config_of(self, kernel):
        return (self.lib.normjit_kernel_config(kernel) or b"").decode()

    def compile_ms(self, kernel):
        if hasattr(self.lib, "normjit_kernel_compile_ms"):
            return self.lib.normjit_kernel_compile_ms(kernel)
        return None

    def release(self, kernel):
        if kernel:
            self.lib.normjit_kernel_release(kernel)

    def launcher(self, kernel, args):
        """fn(stream) launching `kernel` on `args` (kept alive here)."""
        run = self.lib.normjit_kernel_run_on_stream
        pargs = ctypes.byref(args)
        holder = (kernel, args)
        error_text = self.error_text

        def fn(stream):
            rc = run(holder[0], pargs, stream)
            if rc != 0:
                raise NormJITError(error_text(rc, "normjit_kernel_run_on_stream"))
        return fn

    def close(self):
        if self.ctx:
            self.lib.normjit_context_destroy(self.ctx)
            self.ctx = ctypes.c_void_p()


def check_library_on_cpu(nj):
    """A 3x64 f32 LayerNorm on the CPU through the C ABI against a Python
    reference: catches a struct layout or enum mismatch before any GPU work.
    Returns (ok, message)."""
    rows, cols = 3, 64
    spec = nj.spec("layer_norm", cols, "f32")
    n = rows * cols
    x = (ctypes.c_float * n)(*[math.sin(0.37 * i) * 3.0 + (i % cols) * 0.01
                               + 5.0 for i in range(n)])
    g = (ctypes.c_float * cols)(*[1.0 + 0.01 * i for i in range(cols)])
    b = (ctypes.c_float * cols)(*[0.02 * i - 0.3 for i in range(cols)])
    y = (ctypes.c_float * n)()
    args = NjArgs(rows=rows, x=ctypes.addressof(x), gamma=ctypes.addressof(g),
                  beta=ctypes.addressof(b), y=ctypes.addressof(y))
    kernel = nj.get(spec, "cpu")
    try:
        if nj.has_gpu_api:
            rc = nj.lib.normjit_kernel_run_on_stream(kernel, ctypes.byref(args),
                                                     None)
            what = "normjit_kernel_run_on_stream(cpu)"
        else:
            rc = nj.lib.normjit_kernel_run(kernel, ctypes.byref(args))
            what = "normjit_kernel_run"
        nj.check(rc, what)
    finally:
        nj.release(kernel)
    worst = 0.0
    for r in range(rows):
        row = [x[r * cols + c] for c in range(cols)]
        mean = sum(row) / cols
        var = sum((v - mean) ** 2 for v in row) / cols
        rstd = 1.0 / math.sqrt(var + EPS["layer_norm"])
        for c in range(cols):
            ref = (row[c] - mean) * rstd * g[c] + b[c]
            worst = max(worst, abs(y[r * cols + c] - ref))
    ok = worst <= 1e-4
    return ok, "CPU LayerNorm 3x64 f32 through the C ABI: max abs err %.2g (%s)" \
        % (worst, "ok" if ok else "WRONG: struct layout or enum mismatch?")


def tune_command(cli, device, op, rows, cols, dtype, budget):
    cmd = [cli, "tune", "--device", device, "--op", NJ_OP_NAME[op],
           "--rows", str(rows), "--cols", str(cols), "--dtype", dtype]
    if op == "add_rms_norm":
        cmd.append("--residual")
    cmd += ["--budget", "%g" % budget, "--json"]
    return cmd


def _find_config(obj):
    """The #norm.config text in a `normjit tune --json` object: its "config"
    key, else the first nested "config" string."""
    if isinstance(obj, dict):
        v = obj.get("config")
        if isinstance(v, str) and v.strip():
            return v.strip()
        for v in obj.values():
            found = _find_config(v)
            if found:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find_config(v)
            if found:
                return found
    return None


def parse_tune_output(text):
    """(config, object) from `normjit tune --json`'s stdout: the whole text
    as one JSON object, else its last line that is one, else the span from
    the first '{' to the last '}'. Raises ValueError."""
    text = text.strip()
    candidates = [text]
    candidates += [l.strip() for l in reversed(text.splitlines())
                   if l.strip().startswith("{")]
    i, j = text.find("{"), text.rfind("}")
    if 0 <= i < j:
        candidates.append(text[i:j + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        if isinstance(obj, dict):
            config = _find_config(obj)
            if not config:
                raise ValueError("normjit tune's JSON has no \"config\": %s"
                                 % c[:200])
            return config, obj
    raise ValueError("no JSON object in normjit tune's output: %r"
                     % text[-300:])


def run_tune(cmd, timeout, env=None):
    """Runs `normjit tune`; returns a dict with config (or error), seconds
    and the parsed object."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %.0f s" % timeout,
                "seconds": time.monotonic() - start}
    except OSError as e:
        return {"error": "cannot run %s: %s" % (cmd[0], e),
                "seconds": time.monotonic() - start}
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    result = {"seconds": time.monotonic() - start, "returncode": p.returncode}
    if p.returncode != 0:
        tail = (err.strip() or out.strip()).splitlines()[-3:]
        result["error"] = "exit %d: %s" % (p.returncode, " | ".join(tail))
        return result
    try:
        result["config"], result["result"] = parse_tune_output(out)
    except ValueError as e:
        result["error"] = str(e)
    return result


#===----------------------------------------------------------------------===#
# The GPU run (needs torch)
#===----------------------------------------------------------------------===#

torch = None  # imported by run_benchmark
F = None
triton = None  # imported by load_triton, module globals for @triton.jit
tl = None


def first_line(e, limit=300):
    text = ("%s: %s" % (type(e).__name__, e)).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line[:limit]


def load_triton():
    """A fused Triton LayerNorm forward: one program per row, BLOCK_SIZE the
    next power of two of cols, mean and variance in f32 (two passes over the
    row held in registers). Returns launch(x, w, b, y, eps)."""
    global triton, tl
    import triton  # noqa: F811
    import triton.language as tl  # noqa: F811

    @triton.jit
    def _layer_norm_fwd(X, Y, W, B, stride, N, eps, BLOCK_SIZE: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK_SIZE)
        mask = cols < N
        x = tl.load(X + row * stride + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / N
        xc = tl.where(mask, x - mean, 0.0)
        var = tl.sum(xc * xc, axis=0) / N
        rstd = 1.0 / tl.sqrt(var + eps)
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
        y = xc * rstd * w + b
        tl.store(Y + row * stride + cols, y.to(Y.dtype.element_ty), mask=mask)

    def launch(x, w, b, y, eps):
        rows, cols = x.shape
        block = triton.next_power_of_2(cols)
        if block * x.element_size() > 65536:
            raise RuntimeError("row of %d bytes is too large for the "
                               "one-block Triton kernel" % (cols * x.element_size()))
        warps = min(max(block // 256, 1), 8)
        _layer_norm_fwd[(rows,)](x, y, w, b, x.stride(0), cols, eps,
                                 BLOCK_SIZE=block, num_warps=warps)
    return launch


class CpuEvent(object):
    """torch.cuda.Event's timing interface on the host clock (--device cpu)."""

    def __init__(self):
        self.t = None

    def record(self):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


class Dev(object):
    """The device a run uses: "cuda:N", or "cpu" (normjit's CPU backend and
    CPU torch, a functional check of this script on a machine without a GPU;
    its timings are host-clock, not comparable with a GPU's)."""

    def __init__(self, name):
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def events(self):
        if self.cuda:
            return (torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True))
        return CpuEvent(), CpuEvent()

    def stream(self):
        """The CUstream normjit launches on: torch's current stream."""
        return torch.cuda.current_stream().cuda_stream if self.cuda else None

    def empty_cache(self):
        if self.cuda:
            torch.cuda.empty_cache()


class Timer(object):
    """CUDA-event timing of fn(stream): warm-up, an estimate, then `reps`
    measurements of >= min_ms each, median per launch in ms.

    graph: n launches captured in a CUDA graph and replayed (GPU time, no
    Python/launch overhead; falls back to eager if capture fails); eager: a
    loop of n launches between two events; cold: the L2 flushed (a write of
    twice its size) before every launch, events around each launch."""

    def __init__(self, dev, mode, cold, min_ms, reps, warmup, deadline,
                 l2_bytes, graph_nodes=128, max_launches=20000):
        self.dev = dev
        self.mode = mode if dev.cuda else "eager"
        self.cold, self.min_ms, self.reps = cold, min_ms, reps
        self.warmup, self.deadline = warmup, deadline
        self.graph_nodes, self.max_launches = graph_nodes, max_launches
        self.flush = None
        if cold:
            self.flush = torch.empty(max(2 * l2_bytes, 8 << 20),
                                     dtype=torch.uint8, device=dev.name)

    def _events(self):
        return self.dev.events()

    def measure(self, fn):
        if time.monotonic() > self.deadline:
            raise TimeUp()
        handle = self.dev.stream()
        for _ in range(self.warmup):
            fn(handle)
        self.dev.sync()
        e0, e1 = self._events()
        k = 3
        e0.record()
        for _ in range(k):
            fn(handle)
        e1.record()
        e1.synchronize()
        est = max(e0.elapsed_time(e1) / k, 1e-4)
        if self.cold:
            return self._cold(fn, handle, est), "cold"
        n = int(min(max(math.ceil(self.min_ms / est), 1), self.max_launches))
        if self.mode == "graph":
            try:
                ms = self._graph(fn, n)
            except TimeUp:
                raise
            except Exception as e:  # capture not possible: time eagerly
                self.dev.sync()
                ms = self._eager(fn, handle, n)
                return ms, "eager (graph capture failed: %s)" % first_line(e, 120)
            # Where the GPU, not the launch, bounds the eager time, a graph
            # far faster than it did not run the work (a launch that went to
            # another stream was not captured): keep the eager time.
            if est > 0.05 and ms < 0.5 * est:
                eager = self._eager(fn, handle, n)
                if ms < 0.5 * eager:
                    return eager, ("eager (graph time %.4g ms implausible "
                                   "against eager %.4g ms)" % (ms, eager))
            return ms, "graph"
        return self._eager(fn, handle, n), "eager"

    def _eager(self, fn, handle, n):
        e0, e1 = self._events()
        times = []
        for _ in range(self.reps):
            e0.record()
            for _ in range(n):
                fn(handle)
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) / n)
        return statistics.median(times)

    def _graph(self, fn, n):
        m = max(1, min(n, self.graph_nodes))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                fn(side.cuda_stream)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        try:
            ctx = torch.cuda.graph(g, capture_error_mode="relaxed")
        except TypeError:
            ctx = torch.cuda.graph(g)
        with ctx:
            h = torch.cuda.current_stream().cuda_stream
            for _ in range(m):
                fn(h)
        g.replay()
        torch.cuda.synchronize()
        e0, e1 = self._events()
        e0.record()
        g.replay()
        e1.record()
        e1.synchronize()
        per_replay = max(e0.elapsed_time(e1), 1e-4)
        r = int(min(max(math.ceil(self.min_ms / per_replay), 1), 10000))
        times = []
        for _ in range(self.reps):
            e0.record()
            for _ in range(r):
                g.replay()
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) / (r * m))
        del g
        return statistics.median(times)

    def _cold(self, fn, handle, est):
        samples = int(min(max(math.ceil(self.min_ms / est), 10), 200))
        meds = []
        for _ in range(self.reps):
            pairs = [self._events() for _ in range(samples)]
            for s, e in pairs:
                self.flush.zero_()
                s.record()
                fn(handle)
                e.record()
            self.dev.sync()
            meds.append(statistics.median(s.elapsed_time(e) for s, e in pairs))
        return statistics.median(meds)


def torch_dtype(name):
    return {"f32": torch.float32, "f16": torch.float16,
            "bf16": torch.bfloat16}[name]


def compare(outs_refs, dtype):
    """(ok, max_abs_err) of outputs against f32 references."""
    atol, rtol = TOLERANCE[dtype]
    ok, worst = True, 0.0
    for out, ref in outs_refs:
        diff = (out.float() - ref).abs()
        err = diff.max().item()
        good = bool((diff <= atol + rtol * ref.abs()).all().item())
        if not good or err != err:
            ok = False
        worst = err if err != err else max(worst, err)
        del diff
    return ok, worst


def rms_ref(t, w, eps):
    return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps) * w


class Inputs(object):
    """The buffers of one (shape, dtype), shared by its ops."""

    def __init__(self, rows, cols, dtype, seed, device):
        dt = torch_dtype(dtype)
        gen = torch.Generator(device=device)
        gen.manual_seed(seed + rows * 131 + cols)
        self.rows, self.cols, self.dtype = rows, cols, dtype
        self.x = torch.randn(rows, cols, generator=gen, device=device).to(dt)
        self.r = torch.randn(rows, cols, generator=gen, device=device).to(dt)
        self.w = (1.0 + 0.1 * torch.randn(cols, generator=gen,
                                          device=device)).to(dt)
        self.b = (0.1 * torch.randn(cols, generator=gen, device=device)).to(dt)

    def references(self, op):
        """f32 references: [y] or [y, s]."""
        xf, wf = self.x.float(), self.w.float()
        if op == "layer_norm":
            return [F.layer_norm(xf, (self.cols,), wf, self.b.float(),
                                 EPS[op])]
        if op == "rms_norm":
            return [rms_ref(xf, wf, EPS[op])]
        s = (xf + self.r.float()).to(self.x.dtype)  # s rounded to its dtype
        sf = s.float()
        del s
        return [rms_ref(sf, wf, EPS[op]), sf]


def torch_rms_norm():
    if hasattr(F, "rms_norm"):
        return F.rms_norm, "F.rms_norm"

    def composite(t, shape, w, eps):
        tf = t.float()
        return (tf * torch.rsqrt(tf.pow(2).mean(-1, keepdim=True) + eps)
                ).to(t.dtype) * w
    return composite, "composite x*rsqrt(mean(x^2)+eps)*w"


class Bench(object):
    def __init__(self, opts, nj, timer, dev, triton_launch, log):
        self.opts, self.nj, self.timer = opts, nj, timer
        self.dev = dev
        self.device = dev.name  # "cuda:N" or "cpu"
        self.triton_launch = triton_launch
        self.log = log
        self.rms, self.rms_label = torch_rms_norm()
        self.context_lost = False

    # -- implementations: (fn(stream), run_once() -> outputs) ---------------
    def normjit_impl(self, inp, op, config, record, kernels):
        spec = self.nj.spec(op, inp.cols, inp.dtype)
        kernel = self.nj.get(spec, self.device, config)
        kernels.append(kernel)  # released by run_case
        record["config"] = self.nj.config_of(kernel)
        record["compile_ms"] = self.nj.compile_ms(kernel)
        y = torch.empty_like(inp.x)
        s = torch.empty_like(inp.x) if op == "add_rms_norm" else None
        args = NjArgs(rows=inp.rows, x=inp.x.data_ptr(), gamma=inp.w.data_ptr(),
                      y=y.data_ptr())
        if op == "layer_norm":
            args.beta = inp.b.data_ptr()
        if op == "add_rms_norm":
            args.residual = inp.r.data_ptr()
            args.sum = s.data_ptr()
        fn = self.nj.launcher(kernel, args)

        def once():
            fn(self.dev.stream())
            return [y] if s is None else [y, s]
        return fn, once, (kernel, y, s, args)

    def torch_impl(self, inp, op, record):
        x, r, w, b, cols = inp.x, inp.r, inp.w, inp.b, inp.cols
        eps = EPS[op]
        rms = self.rms
        if op == "layer_norm":
            record["impl"] = "F.layer_norm"

            def once():
                return [F.layer_norm(x, (cols,), w, b, eps)]
        elif op == "rms_norm":
            record["impl"] = self.rms_label

            def once():
                return [rms(x, (cols,), w, eps)]
        else:
            record["impl"] = "s = x + r; " + self.rms_label + "(s)"

            def once():
                s = x + r
                return [rms(s, (cols,), w, eps), s]

        def fn(stream):
            once()
        return fn, once, None

    def triton_impl(self, inp, record):
        y = torch.empty_like(inp.x)
        launch = self.triton_launch
        x, w, b, eps = inp.x, inp.w, inp.b, EPS["layer_norm"]
        record["impl"] = "triton fused LayerNorm (one program per row)"

        def fn(stream):
            launch(x, w, b, y, eps)

        def once():
            launch(x, w, b, y, eps)
            return [y]
        return fn, once, y

    # The ceiling is the faster of two copies of the same bytes: copy_ (a
    # memcpy, which the driver may give to a copy engine, notably inside a
    # CUDA graph) and an elementwise kernel on the SMs (int32 x | 0).
    COPY_VARIANTS = ("copy_", "sm_kernel")

    def copy_impl(self, nbytes, variant):
        words = (nbytes + 3) // 4
        src = torch.empty(words, dtype=torch.int32, device=self.device)
        src.fill_(7)
        dst = torch.empty_like(src)

        if variant == "copy_":
            def fn(stream):
                dst.copy_(src)
        else:
            def fn(stream):
                torch.bitwise_or(src, 0, out=dst)
        return fn, None, (src, dst)

    # -- one measurement -----------------------------------------------------
    def check_build(self, case, record, build, refs):
        """build(record), then its output (if it has one) checked once
        against refs: (fn, what must live while fn is timed)."""
        fn, once, keep = build(record)
        if once is not None:
            outs = once()
            self.dev.sync()
            record["ok"], record["max_err"] = compare(
                list(zip(outs, refs)), case["dtype"])
            del outs
        return fn, keep

    def measure(self, case, name, build, refs, nbytes):
        record = {}
        case["impls"][name] = record
        keep = None
        try:
            fn, keep = self.check_build(case, record, build, refs)
            ms, mode = self.timer.measure(fn)
            record.update(ms=ms, mode=mode, gbps=gbps(nbytes, ms))
        except TimeUp:
            del case["impls"][name]
            raise
        except Exception as e:  # one failing case never stops the run
            record["error"] = first_line(e)
            if self.opts.verbose:
                traceback.print_exc()
            self.after_error()
        finally:
            keep = None
        status = ("ERR " + record["error"] if record.get("error") else
                  "%s GB/s%s" % (fmt_gbps(record.get("gbps")),
                                 "" if record.get("ok") is not False
                                 else " (WRONG, err %.3g)" % record["max_err"]))
        self.log("  %-22s %s" % (name, status))
        return record

    def measure_copy(self, case):
        """The copy ceiling: each variant of COPY_VARIANTS timed, the fastest
        kept (all of them under "variants")."""
        nbytes = case["copy_bytes"] // 2
        variants = {}
        for variant in self.COPY_VARIANTS:
            sub = {"impls": {}, "dtype": case["dtype"]}
            self.measure(sub, "copy " + variant,
                         lambda rec, v=variant: self.copy_impl(nbytes, v), [],
                         case["copy_bytes"])
            variants[variant] = sub["impls"]["copy " + variant]
        good = [(r["gbps"], v) for v, r in variants.items() if "gbps" in r]
        if not good:
            case["impls"]["copy"] = {"error": "; ".join(
                "%s: %s" % (v, r.get("error")) for v, r in variants.items())}
            return
        best = max(good)[1]
        record = dict(variants[best])
        record.update(impl=best, copy_buffer_bytes=nbytes, variants=dict(
            (v, r.get("gbps", r.get("error"))) for v, r in variants.items()))
        case["impls"]["copy"] = record

    def measure_pair(self, case, builds, refs, rounds=3):
        """Each kernel of builds checked, then timed `rounds` times in turns
        (A B A B ...); the median of its rounds is its time."""
        fns, keep = {}, []
        for name, build in builds.items():
            record = {}
            case["impls"][name] = record
            try:
                fn, buffers = self.check_build(case, record, build, refs)
                keep.append(buffers)  # its outputs live while it is timed
                fns[name] = fn
            except TimeUp:
                raise
            except Exception as e:
                record["error"] = first_line(e)
                self.after_error()
        # A kernel whose timing fails keeps its error and drops out; the
        # other goes on. Stopped part way (time limit), a kernel timed at
        # least once keeps the median of its rounds so far; one never timed
        # has no record (not counted), as measure() does.
        times = dict((name, []) for name in fns)
        try:
            for _ in range(rounds):
                for name in list(fns):
                    try:
                        ms, mode = self.timer.measure(fns[name])
                    except TimeUp:
                        raise
                    except Exception as e:
                        case["impls"][name]["error"] = first_line(e)
                        self.log("  %-22s ERR %s" % (name, first_line(e)))
                        del fns[name]
                        times[name] = []  # no time beside an error
                        self.after_error()
                        continue
                    times[name].append(ms)
                    case["impls"][name]["mode"] = mode
        finally:
            for name, ms_list in times.items():
                record = case["impls"][name]
                if not ms_list:
                    if not record.get("error"):
                        del case["impls"][name]
                    continue
                ms = statistics.median(ms_list)
                record.update(ms=ms, rounds=ms_list,
                              gbps=gbps(case["bytes"], ms))
                self.log("  %-22s %s GB/s (median of %d in turns)"
                         % (name, fmt_gbps(record["gbps"]), len(ms_list)))
            del keep

    def after_error(self):
        try:
            self.dev.sync()
        except Exception as e:
            self.context_lost = True
            self.log("  CUDA context lost (%s): stopping" % first_line(e))
            raise
        try:
            self.dev.empty_cache()
        except Exception:
            pass

    def run_case(self, inp, case, impls, tuned_config=None):
        op = case["op"]
        refs = inp.references(op)
        kernels = []
        # The default beside the tuned kernel: timed in turns (see
        # measure_pair), so that drift between two timings is not a ratio.
        pair = ((DEFAULT_RERUN, "normjit_tuned") if tuned_config is not None
                else ())
        builds = {}
        try:
            for name in impls:
                if name in ("normjit", DEFAULT_RERUN):
                    def build(rec):
                        return self.normjit_impl(inp, op, None, rec, kernels)
                elif name == "normjit_tuned":
                    def build(rec):
                        return self.normjit_impl(inp, op, tuned_config, rec,
                                                 kernels)
                elif name == "torch":
                    def build(rec):
                        return self.torch_impl(inp, op, rec)
                elif name == "triton":
                    def build(rec):
                        return self.triton_impl(inp, rec)
                elif name == "copy":
                    self.measure_copy(case)
                    continue
                else:
                    continue
                if name in pair:
                    builds[name] = build
                    continue
                self.measure(case, name, build, refs, case["bytes"])
            if builds:
                self.measure_pair(case, builds, refs)
        finally:
            del refs
            self.dev.sync()
            for k in kernels:
                self.nj.release(k)


def env_info(nj, device_index, triton_status, lib_path, cli_path):
    info = {}
    if device_index is None:
        info["device"] = "cpu (%s, %d torch threads)" % (
            platform.processor() or platform.machine(), torch.get_num_threads())
    else:
        try:
            p = torch.cuda.get_device_properties(device_index)
            info["device"] = p.name
            info["capability"] = "%d.%d" % (p.major, p.minor)
            info["sms"] = p.multi_processor_count
            info["memory_gib"] = round(p.total_memory / 2.0 ** 30, 1)
            info["l2_bytes"] = getattr(p, "L2_cache_size", None)
        except Exception as e:
            info["device"] = "? (%s)" % first_line(e)
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                            "--format=csv,noheader", "-i", str(device_index or 0)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=15)
        info["driver"] = q.stdout.decode().strip() or None
    except Exception:
        info["driver"] = None
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        v = ctypes.c_int()
        if cuda.cuDriverGetVersion(ctypes.byref(v)) == 0:
            info["cuda_driver_api"] = "%d.%d" % (v.value // 1000,
                                                 (v.value % 1000) // 10)
    except Exception:
        pass
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["triton"] = triton_status
    info["normjit"] = nj.version() if nj else None
    info["normjit_lib"] = lib_path
    info["normjit_cli"] = cli_path
    info["python"] = sys.version.split()[0]
    info["hostname"] = os.uname()[1] if hasattr(os, "uname") else None
    return info


def env_lines(info):
    dev = "device: %s" % info.get("device")
    if info.get("capability"):
        dev += " (sm_%s, %s SMs, %s GiB" % (info["capability"].replace(".", ""),
                                            info.get("sms"),
                                            info.get("memory_gib"))
        if info.get("l2_bytes"):
            dev += ", L2 %.0f MiB" % (info["l2_bytes"] / MIB)
        dev += ")"
    dev += ", driver %s" % (info.get("driver") or "?")
    if info.get("cuda_driver_api"):
        dev += " (CUDA driver API %s)" % info["cuda_driver_api"]
    return [dev,
            "torch %s (CUDA %s), triton %s, python %s"
            % (info.get("torch"), info.get("torch_cuda"), info.get("triton"),
               info.get("python")),
            "normjit %s: %s; CLI: %s" % (info.get("normjit"),
                                          info.get("normjit_lib"),
                                          info.get("normjit_cli") or "none")]


def run_benchmark(opts, shapes, dtypes, ops):
    global torch, F
    start = time.monotonic()
    deadline = start + opts.time_limit
    # Leave time to print and write the results.
    reserve = min(15.0, 0.05 * opts.time_limit)

    def log(msg):
        print("[%6.1fs] %s" % (time.monotonic() - start, msg), file=sys.stderr,
              flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)
    # A crash in native code still leaves a Python traceback, and the
    # progress lines above it say which case it was.
    faulthandler.enable()

    # The tuning cache: a fresh directory unless the user named one, so that
    # no stale entry decides a "default" kernel.
    tmp_cache = None
    if opts.cache_dir:
        os.environ["NORMJIT_CACHE_DIR"] = opts.cache_dir
    else:
        tmp_cache = tempfile.mkdtemp(prefix="normjit-gpu-bench-cache-")
        os.environ["NORMJIT_CACHE_DIR"] = tmp_cache

    script_dir = os.path.dirname(os.path.abspath(__file__))
    cases = plan_cases(shapes, dtypes, ops)
    by_key = dict((case_key(c), c) for c in cases)
    targets, info = [], {}
    options = dict(vars(opts))
    options["cache_dir_used"] = os.environ.get("NORMJIT_CACHE_DIR")

    nj, lib_path, cli_path, load_errors = None, None, None, []
    # libnormjit first (RTLD_LOCAL), before torch and triton bring their own
    # LLVM and C++ runtimes into the process.
    for cand in library_candidates(opts.lib, opts.bundle, script_dir=script_dir,
                                   cwd=os.getcwd()):
        if not os.path.isfile(cand):
            load_errors.append("%s: not found" % cand)
            continue
        try:
            nj = NormJIT(cand)
            if not nj.has_gpu_api:
                load_errors.append("%s: no GPU C ABI" % cand)
                nj.close()
                nj = None
                continue
            lib_path = cand
            break
        except Exception as e:
            load_errors.append("%s: %s" % (cand, first_line(e)))
            nj = None
    if nj is None:
        log("normjit library: none usable; tried:\n    "
            + "\n    ".join(load_errors))
    else:
        # (No CPU kernel here: each GPU output is checked against torch, and
        # --check-lib runs the CPU check on its own.)
        log("normjit library: %s (version %s)" % (lib_path, nj.version()))
    cli_path = first_existing(cli_candidates(opts.normjit_cli, opts.bundle,
                                             lib_path, script_dir))
    if opts.tuned and not cli_path:
        log("no normjit CLI found (--normjit-cli / --bundle): tuned configs "
            "will be missing")

    import torch as _torch
    torch = _torch
    import torch.nn.functional as _F
    F = _F
    device_index = None
    if opts.device == "cpu":
        dev = Dev("cpu")
        log("--device cpu: normjit's CPU backend against CPU torch, timed on "
            "the host clock; a check of this script, not a GPU benchmark")
    else:
        if not torch.cuda.is_available():
            print("error: torch.cuda.is_available() is false (torch %s, CUDA "
                  "%s)" % (torch.__version__, torch.version.cuda),
                  file=sys.stderr)
            return 2
        device_index = int(opts.device.split(":", 1)[1]) \
            if ":" in opts.device else 0
        torch.cuda.set_device(device_index)
        dev = Dev("cuda:%d" % device_index)

    triton_launch, triton_status = None, "disabled (--no-triton)"
    if not dev.cuda:
        triton_status = "not used (--device cpu)"
    elif not opts.no_triton and "layer_norm" in ops:
        try:
            triton_launch = load_triton()
            triton_status = getattr(triton, "__version__", "?")
        except Exception as e:
            triton_status = "not available (%s)" % first_line(e, 120)
    info = env_info(nj, device_index, triton_status, lib_path, cli_path)
    info["cache_dir"] = os.environ.get("NORMJIT_CACHE_DIR")
    mode = opts.timing if dev.cuda else "eager"
    info["timing"] = ("%s, median of %d reps of >= %g ms, %s cache"
                      % ("cold: per-launch events after a cache flush"
                         if opts.cold else
                         ("CUDA graph of the launches, replayed between events"
                          if mode == "graph" else
                          "eager loop of launches between events"),
                         opts.reps, opts.min_ms,
                         "cold" if opts.cold else "warm"))
    if not dev.cuda:
        info["timing"] += " (host clock)"
    for line in env_lines(info):
        log(line)
    l2 = info.get("l2_bytes") or (64 << 20)
    timer = Timer(dev, opts.timing, opts.cold, opts.min_ms, opts.reps,
                  opts.warmup, deadline - reserve, l2)
    bench = Bench(opts, nj, timer, dev, triton_launch, log)
    device = dev.name

    def checkpoint():
        """The --json file so far: something survives even a crash."""
        if opts.json:
            try:
                write_json(opts.json, cases, evaluate_targets(cases, opts.noise),
                           info, options)
            except Exception as e:
                log("cannot write %s: %s" % (opts.json, first_line(e)))

    interrupted = None
    try:
        # Phase 1: defaults and peers, every case.
        groups = []
        for dtype in dtypes:
            for shape in shapes:
                rows, cols = parse_shape(shape)
                groups.append((rows, cols, dtype))
        for rows, cols, dtype in groups:
            if bench.context_lost:
                break
            shape = "%dx%d" % (rows, cols)
            inp = None
            try:
                if time.monotonic() > deadline - reserve:
                    raise TimeUp()
                log("%s %s" % (shape, dtype))
                inp = Inputs(rows, cols, dtype, opts.seed, device)
                for op in ops:
                    case = by_key[(shape, dtype, op)]
                    log(" %s (%s MB moved)" % (op, fmt_mb(case["bytes"])))
                    impls = planned_impls(op, False, triton_launch is not None)
                    if nj is None:
                        impls.remove("normjit")
                        case["impls"]["normjit"] = {
                            "error": "no usable libnormjit: "
                            + "; ".join(load_errors[-3:])}
                    try:
                        bench.run_case(inp, case, impls)
                    except TimeUp:
                        raise
                    except Exception as e:  # e.g. its reference: next op
                        if bench.context_lost:
                            raise
                        case["skipped"] = first_line(e)
                        log("  %s failed: %s" % (op, first_line(e)))
                        if opts.verbose:
                            traceback.print_exc()
                        bench.after_error()
            except TimeUp:
                raise
            except Exception as e:
                for op in ops:
                    c = by_key[(shape, dtype, op)]
                    c["skipped"] = c.get("skipped") or first_line(e)
                log("  %s %s failed: %s" % (shape, dtype, first_line(e)))
                if opts.verbose:
                    traceback.print_exc()
                if not bench.context_lost:
                    bench.after_error()
            finally:
                inp = None
                try:
                    dev.empty_cache()
                except Exception:
                    pass
                checkpoint()

        # Phase 2: tune, then the tuned kernel beside the default.
        if opts.tuned and nj is not None and not bench.context_lost:
            tune_failures = []
            tune_env = dict(os.environ)
            for rows, cols, dtype in groups:
                shape = "%dx%d" % (rows, cols)
                configs = {}
                for op in ops:
                    case = by_key[(shape, dtype, op)]
                    left = deadline - reserve - time.monotonic()
                    if left < opts.tune_budget + 5:
                        raise TimeUp()
                    if not cli_path:
                        case["tune"] = {"error": "no normjit CLI"}
                        continue
                    if len(tune_failures) >= 2 and tune_failures[-1] == \
                            tune_failures[-2]:
                        case["tune"] = {"error": "not tried: normjit tune "
                                        "failed twice the same way"}
                        continue
                    cmd = tune_command(cli_path, device, op, rows, cols, dtype,
                                       opts.tune_budget)
                    log("tune %s %s %s" % (shape, dtype, op))
                    res = run_tune(cmd, min(left, 5 * opts.tune_budget + 30),
                                   tune_env)
                    res["command"] = " ".join(cmd)
                    case["tune"] = res
                    if res.get("error"):
                        tune_failures.append(res["error"])
                        log("  tune failed: %s" % res["error"])
                    else:
                        configs[op] = res["config"]
                        log("  %s (%.1f s)" % (res["config"], res["seconds"]))
                if not configs:
                    continue
                inp, current = None, None
                try:
                    inp = Inputs(rows, cols, dtype, opts.seed, device)
                    for op, config in configs.items():
                        case = by_key[(shape, dtype, op)]
                        log(" %s %s %s: default vs tuned" % (shape, dtype, op))
                        current = op
                        bench.run_case(inp, case,
                                       [DEFAULT_RERUN, "normjit_tuned"],
                                       tuned_config=config)
                    current = None
                except TimeUp:
                    raise
                except Exception as e:
                    log("  %s %s failed: %s" % (shape, dtype, first_line(e)))
                    # The op it failed in keeps the error; those after it
                    # say they were not measured, and why.
                    for op in configs:
                        impls = by_key[(shape, dtype, op)]["impls"]
                        if "normjit_tuned" in impls and op != current:
                            continue
                        impls.setdefault("normjit_tuned", {})
                        impls["normjit_tuned"].setdefault(
                            "error", first_line(e) if op == current or
                            current is None else "not measured: %s failed "
                            "before it (%s)" % (current, first_line(e)))
                    if bench.context_lost:
                        break
                    bench.after_error()
                finally:
                    inp = None
                    try:
                        dev.empty_cache()
                    except Exception:
                        pass
                    checkpoint()
    except TimeUp:
        interrupted = "time limit of %g s reached" % opts.time_limit
    except KeyboardInterrupt as e:
        interrupted = "interrupted (%s)" % (e or "Ctrl-C")
    except Exception as e:
        interrupted = "stopped by an error: %s" % first_line(e)
        traceback.print_exc()
    if interrupted:
        log(interrupted)
        for case in cases:
            if case.get("skipped"):
                continue
            if not case["impls"]:
                case["skipped"] = interrupted
            elif "copy" not in case["impls"]:  # phase 1 stopped inside it
                case["skipped"] = interrupted
    if bench.context_lost:
        for case in cases:
            if not case["impls"] and not case.get("skipped"):
                case["skipped"] = "CUDA context lost by an earlier case"

    targets = evaluate_targets(cases, opts.noise)
    opt_line = "timing: %s; tuned: %s%s; total %.0f s%s" % (
        info.get("timing"),
        "yes (budget %g s per spec)" % opts.tune_budget if opts.tuned else "no",
        "; NORMJIT_CACHE_DIR=%s" % info.get("cache_dir"),
        time.monotonic() - start,
        "; " + interrupted if interrupted else "")
    report = render_report(cases, targets, env_lines(info), opt_line, shapes,
                           dtypes, configs=opts.show_configs)
    sys.stdout.write(report)
    sys.stdout.flush()
    info["seconds"] = time.monotonic() - start
    info["interrupted"] = interrupted
    if opts.json:
        write_json(opts.json, cases, targets, info, options)
        log("wrote %s" % opts.json)
    if opts.csv:
        write_csv(opts.csv, cases)
        log("wrote %s" % opts.csv)
    if opts.markdown:
        with open(opts.markdown, "w") as f:
            f.write(render_report(cases, targets, env_lines(info), opt_line,
                                  shapes, dtypes, configs=True))
        log("wrote %s" % opts.markdown)
    if nj is not None:
        try:
            nj.close()
        except Exception:
            pass
    if tmp_cache and not opts.keep_cache:
        shutil.rmtree(tmp_cache, ignore_errors=True)
    return 0


#===----------------------------------------------------------------------===#
# --dry-run, --check-lib (no torch)
#===----------------------------------------------------------------------===#

def dry_run(opts, shapes, dtypes, ops, out=sys.stdout):
    script_dir = os.path.dirname(os.path.abspath(__file__))
    cands = library_candidates(opts.lib, opts.bundle, script_dir=script_dir,
                               cwd=os.getcwd())
    lib = first_existing(cands)
    cli = first_existing(cli_candidates(opts.normjit_cli, opts.bundle, lib,
                                        script_dir))
    w = out.write
    w("# normjit GPU benchmark: plan (--dry-run, nothing is run)\n\n")
    w("- library (the first found; --check-lib loads and tests it): %s\n"
      % (lib or "NOT FOUND (tried: %s)" % ", ".join(cands)))
    w("- CLI (for --tuned): %s\n" % (cli or "not found"))
    w("- device %s; timing %s; reps %d of >= %g ms; time limit %g s\n"
      % (opts.device, "cold" if opts.cold else opts.timing, opts.reps,
         opts.min_ms, opts.time_limit))
    w("- NORMJIT_CACHE_DIR: %s\n\n" % (opts.cache_dir or
                                       "a fresh temporary directory"))
    triton_planned = not opts.no_triton
    cases = plan_cases(shapes, dtypes, ops)
    w("| # | shape | dtype | op | MB moved | copy buffer MB | implementations |\n")
    w("|---:|---|---|---|---:|---:|---|\n")
    measurements = 0
    for i, c in enumerate(cases, 1):
        impls = planned_impls(c["op"], opts.tuned, triton_planned)
        measurements += len(impls) + (1 if opts.tuned else 0)
        w("| %d | %s | %s | %s | %s | %s | %s |\n"
          % (i, c["shape"], c["dtype"], c["op"], fmt_mb(c["bytes"]),
             fmt_mb(c["copy_bytes"] // 2),
             ", ".join(i_ + ("?" if i_ == "triton" else "") for i_ in impls)))
    peak = max(device_memory_estimate(parse_shape(s)[0], parse_shape(s)[1], d,
                                      ops) for s in shapes for d in dtypes)
    per = opts.reps * opts.min_ms / 1000.0 + 0.15
    est = measurements * per
    w("\n%d cases, %d measurements (triton? = when `import triton` works); "
      "peak device memory about %.1f GiB.\n" % (len(cases), measurements,
                                               peak / 2.0 ** 30))
    w("Rough time: %.0f s of measurements + kernel compilation" % est)
    if opts.tuned:
        n = len(cases)
        w(" + %d tunes x (%g s budget + ~3 s) = %.0f s" %
          (n, opts.tune_budget, n * (opts.tune_budget + 3)))
        est += n * (opts.tune_budget + 3)
    w("; about %.0f s in all (time limit %g s).\n" % (est, opts.time_limit))
    if opts.tuned:
        c = cases[0]
        w("\nTune command per case, e.g.:\n  %s\n"
          % " ".join(tune_command(cli or "normjit", opts.device, c["op"],
                                  c["rows"], c["cols"], c["dtype"],
                                  opts.tune_budget)))
    w("\nTargets: >= %d%% of the copy ceiling for >= 8M elements; >= %.1fx "
      "torch layer_norm (bf16); >= %.1fx torch add + rms_norm (residual "
      "form); tuned >= default on every shape.\n"
      % (round(100 * COPY_FRACTION_TARGET), LN_BF16_SPEEDUP_TARGET,
         ADD_RMS_SPEEDUP_TARGET))
    return 0


def check_lib(opts):
    script_dir = os.path.dirname(os.path.abspath(__file__))
    cands = library_candidates(opts.lib, opts.bundle, script_dir=script_dir,
                               cwd=os.getcwd())
    status = 1
    for cand in cands:
        if not os.path.isfile(cand):
            print("%s: not found" % cand)
            continue
        try:
            nj = NormJIT(cand)
        except Exception as e:
            print("%s: %s" % (cand, first_line(e)))
            continue
        print("%s: normjit %s, GPU C ABI: %s" % (cand, nj.version(),
                                                 "yes" if nj.has_gpu_api
                                                 else "no"))
        try:
            ok, msg = check_library_on_cpu(nj)
            print(msg)
            status = 0 if ok else 1
        except Exception as e:
            print("CPU check failed: %s" % first_line(e))
        nj.close()
        break
    return status


#===----------------------------------------------------------------------===#
# --self-test (pure Python)
#===----------------------------------------------------------------------===#

def _fake_case(shape, dtype, op, **gb):
    rows, cols = parse_shape(shape)
    case = plan_cases([shape], [dtype], [op])[0]
    for name, v in gb.items():
        if isinstance(v, dict):
            case["impls"][name] = v
        else:
            case["impls"][name] = {"gbps": v, "ms": 1.0, "mode": "graph",
                                   "ok": True if name != "copy" else None}
    return case


def self_test():
    checks = []

    def check(cond, what):
        checks.append(what)
        if not cond:
            raise AssertionError(what)

    # Shapes, bytes.
    check(parse_shape("4096x768") == (4096, 768), "parse_shape")
    for bad in ["4096", "0x5", "ax3", "1x2x3"]:
        try:
            parse_shape(bad)
            check(False, "parse_shape rejects %r" % bad)
        except ValueError:
            checks.append("parse_shape rejects %r" % bad)
    check(parse_list("bf16, f32", DTYPE_SIZE, "dtype") == ["bf16", "f32"],
          "parse_list")
    try:
        parse_list("f64", DTYPE_SIZE, "dtype")
        check(False, "parse_list rejects f64")
    except ValueError:
        checks.append("parse_list rejects f64")
    check(bytes_moved("layer_norm", 4096, 768, "bf16")
          == 2 * (2 * 4096 * 768 + 2 * 768), "bytes layer_norm")
    check(bytes_moved("rms_norm", 1, 4096, "f32") == 4 * (2 * 4096 + 4096),
          "bytes rms_norm")
    check(bytes_moved("add_rms_norm", 16, 4096, "bf16")
          == 2 * (4 * 16 * 4096 + 4096), "bytes add_rms_norm")
    check(copy_buffer_bytes("layer_norm", 2, 8, "f32") * 2
          == bytes_moved("layer_norm", 2, 8, "f32"), "copy moves the same bytes")
    check(abs(gbps(2e9, 1000.0) - 2.0) < 1e-12, "gbps")
    check(gbps(1, 0) is None and gbps(1, None) is None, "gbps of no time")
    cases = plan_cases(DEFAULT_SHAPES, DEFAULT_DTYPES, OPS)
    check(len(cases) == 7 * 2 * 3, "42 default cases")
    check(cases[0]["dtype"] == "bf16" and cases[-1]["dtype"] == "f32",
          "bf16 cases first")
    check(planned_impls("layer_norm", True, True)
          == ["normjit", "normjit_tuned", "torch", "triton", "copy"],
          "layer_norm impls")
    check("triton" not in planned_impls("rms_norm", True, True),
          "no triton for rms_norm")

    # ctypes layouts of kernel.h's structs (x86-64 / aarch64 LP64).
    check(ctypes.sizeof(NjSpec) == 72 and NjSpec.cols.offset == 8
          and NjSpec.epsilon.offset == 64, "normjit_kernel_spec_t layout")
    check(ctypes.sizeof(NjArgs) == 104 and NjArgs.gamma.offset == 40
          and NjArgs.rstd.offset == 96, "normjit_run_args_t layout")

    # Derived numbers.
    c = _fake_case("2048x4096", "bf16", "layer_norm", normjit=2000.0,
                   normjit_tuned=2500.0, torch=1600.0, triton=2000.0,
                   copy=2800.0)
    c["impls"][DEFAULT_RERUN] = {"gbps": 2400.0, "ok": True}
    d = derive(c)
    check(d["nj_name"] == "normjit_tuned" and d["nj_gbps"] == 2500.0,
          "derive picks tuned")
    check(abs(d["pct_copy"] - 100 * 2500 / 2800.0) < 1e-9, "derive pct_copy")
    check(abs(d["vs_torch"] - 2500 / 1600.0) < 1e-9, "derive vs_torch")
    check(abs(d["vs_triton"] - 1.25) < 1e-9, "derive vs_triton")
    check(abs(d["tuned_over_default"] - 2500 / 2400.0) < 1e-9,
          "tuned/default uses the rerun default")
    c2 = _fake_case("4096x768", "f32", "rms_norm", normjit=900.0, torch=300.0,
                    copy={"error": "boom"})
    d2 = derive(c2)
    check(d2["nj_name"] == "normjit" and d2["pct_copy"] is None
          and abs(d2["vs_torch"] - 3.0) < 1e-9, "derive without copy")
    c3 = _fake_case("1x4096", "bf16", "layer_norm",
                    normjit={"gbps": 50.0, "ok": False, "max_err": 0.5},
                    torch=10.0, copy=60.0)
    d3 = derive(c3)
    check(d3["nj_gbps"] is None and d3["wrong"] == ["normjit"],
          "a wrong output does not count")

    # Targets.
    good = [
        _fake_case("32768x4096", "bf16", "layer_norm", normjit=2900.0,
                   torch=2000.0, copy=3000.0),
        _fake_case("32768x4096", "bf16", "add_rms_norm", normjit=2800.0,
                   torch=1500.0, copy=3000.0),
        _fake_case("4096x768", "bf16", "layer_norm", normjit=1000.0,
                   torch=800.0, copy=3000.0),  # small: no copy target
    ]
    t = dict((x["name"], x) for x in evaluate_targets(good))
    check(t["copy_ceiling"]["status"] == "met"
          and t["copy_ceiling"]["cases"] == 2, "copy target met on 2 big cases")
    check(t["layer_norm_bf16_vs_torch"]["status"] == "met"
          and t["layer_norm_bf16_vs_torch"]["cases"] == 2,
          "layer_norm target met (1.45x, 1.25x)")
    check(t["add_rms_norm_vs_torch"]["status"] == "met", "add target met")
    check(t["tuned_vs_default"]["status"] == "no data", "no tuned: no data")
    bad = good + [
        _fake_case("16384x8192", "f32", "rms_norm", normjit=2000.0,
                   torch=1000.0, copy=3000.0),  # 67% of copy
        _fake_case("1x4096", "bf16", "layer_norm", normjit=10.0, torch=9.0,
                   copy=20.0),  # 1.11x
        _fake_case("8192x1024", "f32", "add_rms_norm", normjit=2600.0,
                   normjit_tuned=2400.0, torch=2000.0, copy=3000.0),
    ]
    t = dict((x["name"], x) for x in evaluate_targets(bad))
    check(t["copy_ceiling"]["status"] == "NOT met"
          and t["copy_ceiling"]["met"] == 2 and t["copy_ceiling"]["cases"] == 4
          and "67%" in t["copy_ceiling"]["detail"], "copy target missed")
    check(t["layer_norm_bf16_vs_torch"]["status"] == "NOT met"
          and "1.11x" in t["layer_norm_bf16_vs_torch"]["detail"],
          "layer_norm target missed at 1.11x")
    check(t["add_rms_norm_vs_torch"]["status"] == "NOT met"
          and "1.20x" in t["add_rms_norm_vs_torch"]["detail"],
          "add target missed at 1.20x (tuned 2400 / torch 2000)")
    check(t["tuned_vs_default"]["status"] == "NOT met"
          and "0.92x" in t["tuned_vs_default"]["detail"], "tuned slower")
    noisy = [_fake_case("2048x4096", "f32", "rms_norm", normjit=1000.0,
                        normjit_tuned=980.0, torch=500.0, copy=1100.0)]
    t = dict((x["name"], x) for x in evaluate_targets(noisy, noise=0.03))
    check(t["tuned_vs_default"]["status"] == "met"
          and "0/1 strictly" in t["tuned_vs_default"]["detail"],
          "0.98x is within the 3% noise allowance")
    tf = _fake_case("16x4096", "f32", "rms_norm", normjit=10.0, torch=5.0,
                    copy=20.0)
    tf["tune"] = {"error": "exit 2: unknown option --device"}
    t = dict((x["name"], x) for x in evaluate_targets(noisy + [tf]))
    check(t["tuned_vs_default"]["status"] == "NOT met"
          and "tune failed on 1" in t["tuned_vs_default"]["detail"],
          "a failed tune misses the tuned target")
    skipped = plan_cases(["32768x4096"], ["bf16"], ["layer_norm"])
    skipped[0]["skipped"] = "time limit"
    t = dict((x["name"], x) for x in evaluate_targets(skipped))
    check(t["copy_ceiling"]["status"] == "no data", "skipped case not counted")
    peer_failed = [_fake_case("32768x4096", "bf16", "add_rms_norm",
                              normjit=5.0, torch={"error": "oom"},
                              copy={"error": "oom"})]
    t = dict((x["name"], x) for x in evaluate_targets(peer_failed))
    check(t["copy_ceiling"]["status"] == "no data"
          and t["add_rms_norm_vs_torch"]["status"] == "no data",
          "a failed reference does not count")
    failed = [_fake_case("32768x4096", "bf16", "layer_norm",
                         normjit={"error": "compile error"}, torch=1.0,
                         copy=2.0)]
    t = dict((x["name"], x) for x in evaluate_targets(failed))
    check(t["copy_ceiling"]["status"] == "NOT met"
          and "no data" in t["copy_ceiling"]["detail"],
          "a failed normjit misses the target")

    # Table.
    table, notes = render_table(bad + failed + skipped + [c, c3],
                                DEFAULT_SHAPES, DEFAULT_DTYPES)
    lines = table.splitlines()
    ncols = len(TABLE_HEADER)
    check(all(l.count("|") == ncols + 1 for l in lines),
          "every table line has %d cells" % ncols)
    check(len(lines) == 2 + len(bad) + 4, "one line per case")
    check(any("ERR[" in l for l in lines) and
          any("compile error" in n for n in notes), "error cell + footnote")
    t2, n2 = render_table(plan_cases(["1x8", "2x8"], ["f32"], OPS),
                          None, None)
    check(len(n2) == 0, "no footnotes without failures")
    sk = plan_cases(["1x8", "2x8"], ["f32"], OPS)
    for k in sk:
        k["skipped"] = "time limit"
    t2, n2 = render_table(sk, None, None)
    check(n2 == ["time limit"] and t2.count("skipped [1]") == 6,
          "identical footnotes share a number")
    check(any("skipped [" in l for l in lines), "skipped case")
    check(any("50.0!" in l and "FAIL" in l for l in lines), "wrong output")
    i4096 = [i for i, l in enumerate(lines) if l.startswith("| 4096x768 ")]
    i1 = [i for i, l in enumerate(lines) if l.startswith("| 1x4096 ")]
    check(i4096 and i1 and max(i4096) < min(i1), "rows in shape order")
    row = [l for l in lines if "2048x4096 | bf16 | layer_norm" in l][0]
    check("2500" in row and "89%" in row and "1.56x" in row and "1.04x" in row,
          "table numbers: " + row)
    rep = render_report(bad, evaluate_targets(bad), ["device: test"], "x",
                        DEFAULT_SHAPES, DEFAULT_DTYPES)
    check("## Targets" in rep and "[NOT met]" in rep and "device: test" in rep,
          "report")
    check(fmt_gbps(None) == "-" and fmt_gbps(1234.4) == "1234"
          and fmt_gbps(12.34) == "12.3", "fmt_gbps")

    # CSV, JSON.
    tmp = tempfile.mkdtemp(prefix="gpu-bench-selftest-")
    try:
        p = os.path.join(tmp, "r.csv")
        write_csv(p, bad)
        with open(p) as f:
            rows = list(csv.reader(f))
        check(len(rows) == 1 + len(bad) and all(len(r) == len(rows[0])
                                                for r in rows), "csv shape")
        check(rows[0][:3] == ["shape", "rows", "cols"], "csv header")
        p = os.path.join(tmp, "r.json")
        write_json(p, bad, evaluate_targets(bad), {"device": "x"}, {"a": 1})
        with open(p) as f:
            doc = json.load(f)
        check(len(doc["cases"]) == len(bad) and len(doc["targets"]) == 4
              and "derived" in doc["cases"][0], "json")

        # Library discovery.
        bundle = os.path.join(tmp, "bundle")
        os.makedirs(os.path.join(bundle, "lib"))
        os.makedirs(os.path.join(bundle, "bin"))
        for name in ["libnormjit.so.0", "libnormjit-bundle.so"]:
            open(os.path.join(bundle, "lib", name), "w").close()
        open(os.path.join(bundle, "bin", "normjit"), "w").close()
        cands = library_candidates(None, bundle, environ={}, script_dir=None,
                                   cwd=None)
        check([os.path.basename(x) for x in cands] ==
              ["libnormjit.so", "libnormjit.so.0", "libnormjit-bundle.so"],
              "bundle library candidates: %s" % cands)
        check(first_existing(cands).endswith("libnormjit.so.0"),
              "first existing library")
        check(library_candidates("/x.so", bundle, environ={"NORMJIT_LIB": "y"})
              == ["/x.so"], "--lib wins")
        check(library_candidates(None, None, environ={"NORMJIT_LIB": "/e.so"},
                                 script_dir=None, cwd="/w")
              == ["/e.so", "/w/build/lib/libnormjit.so"], "env then build/lib")
        check(first_existing(cli_candidates(None, bundle, None, None))
              == os.path.join(bundle, "bin", "normjit"), "bundle CLI")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # `normjit tune --json` output.
    cfg = "#norm.config<gpu, threads_per_row = 128, rows_per_block = 1>"
    check(parse_tune_output(json.dumps({"config": cfg, "gbps": 1.0}))[0] == cfg,
          "tune json")
    noisy_out = "tuning...\n[1/1] done\n" + json.dumps(
        {"spec": {"op": "rms_norm"}, "config": cfg}) + "\n"
    check(parse_tune_output(noisy_out)[0] == cfg, "tune json after progress")
    multi = "{\n  \"best\": {\"config\": \"%s\"}\n}\n" % cfg
    check(parse_tune_output(multi)[0] == cfg, "nested, multi-line tune json")
    for bad_out in ["", "error", "{\"gbps\": 3}"]:
        try:
            parse_tune_output(bad_out)
            check(False, "tune output %r rejected" % bad_out)
        except ValueError:
            checks.append("tune output %r rejected" % bad_out)
    cmd = tune_command("nj", "cuda:0", "add_rms_norm", 16, 4096, "bf16", 2.0)
    check(cmd == ["nj", "tune", "--device", "cuda:0", "--op", "rms_norm",
                  "--rows", "16", "--cols", "4096", "--dtype", "bf16",
                  "--residual", "--budget", "2", "--json"], "tune command")
    res = run_tune([sys.executable, "-c",
                    "print('progress'); print('{\"config\": \"%s\"}')" % cfg],
                   timeout=60)
    check(res.get("config") == cfg, "run_tune parses a child's output")
    res = run_tune([sys.executable, "-c",
                    "import sys; sys.stderr.write('unknown option --device\\n');"
                    " sys.exit(2)"], timeout=60)
    check("unknown option --device" in res.get("error", ""),
          "run_tune reports a failing child")
    res = run_tune(["/nonexistent/normjit"], timeout=5)
    check("cannot run" in res.get("error", ""), "run_tune without a CLI")

    # --dry-run output (no torch).
    buf = io.StringIO()
    ns = argparse.Namespace(lib=None, bundle=None, normjit_cli=None,
                            device="cuda:0", cold=False, timing="graph",
                            reps=5, min_ms=20.0, time_limit=300.0,
                            cache_dir=None, no_triton=False, tuned=True,
                            tune_budget=2.0)
    dry_run(ns, DEFAULT_SHAPES, DEFAULT_DTYPES, OPS, out=buf)
    check(buf.getvalue().count("| layer_norm |") == 14 and
          "normjit_tuned" in buf.getvalue(), "dry run lists the cases")
    check("torch" not in sys.modules, "torch never imported")
    print("self-test: %d checks passed" % len(checks))
    return 0


#===----------------------------------------------------------------------===#
# main
#===----------------------------------------------------------------------===#

def make_parser():
    p = argparse.ArgumentParser(
        prog="gpu_bench.py",
        description="Benchmark normjit's GPU LayerNorm/RMSNorm kernels "
        "against PyTorch, Triton and a device-to-device copy; prints one "
        "Markdown table (GB/s, % of the copy ceiling, speedups) and the "
        "targets of the GPU issue.",
        epilog="Library: --lib, else $NORMJIT_LIB, else <bundle>/lib/"
        "libnormjit.so*, else build/lib/libnormjit.so. CLI (for --tuned): "
        "--normjit-cli, else <bundle>/bin/normjit, else next to the library.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to run")
    g.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                   help="comma-separated ROWSxCOLS (default: %(default)s)")
    g.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES),
                   help="comma-separated of f32, bf16, f16 (default: "
                   "%(default)s)")
    g.add_argument("--ops", default=",".join(OPS),
                   help="comma-separated of %s (default: all)" % ", ".join(OPS))
    g.add_argument("--tuned", action="store_true",
                   help="also run `normjit tune` per case and time the tuned "
                   "config beside the default")
    g.add_argument("--tune-budget", type=float, default=2.0, metavar="S",
                   help="seconds per tuned spec (default: %(default)s)")
    g.add_argument("--no-triton", action="store_true",
                   help="skip the Triton LayerNorm")
    g.add_argument("--device", default="cuda:0",
                   help="cuda:N (default: %(default)s), or cpu: the whole flow "
                   "on normjit's CPU backend and CPU torch, to check this "
                   "script without a GPU (its numbers mean nothing)")
    g = p.add_argument_group("normjit")
    g.add_argument("--bundle", metavar="DIR",
                   help="normjit bundle (lib/libnormjit.so*, bin/normjit)")
    g.add_argument("--lib", metavar="PATH", help="libnormjit.so to load")
    g.add_argument("--normjit-cli", metavar="PATH",
                   help="the normjit executable (for --tuned)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="NORMJIT_CACHE_DIR (default: a fresh temporary "
                   "directory)")
    g.add_argument("--keep-cache", action="store_true",
                   help="keep the temporary cache directory")
    g = p.add_argument_group("timing")
    g.add_argument("--timing", choices=["graph", "eager"], default="graph",
                   help="graph: launches captured in a CUDA graph (GPU time, "
                   "no launch overhead; eager if capture fails); eager: a "
                   "Python loop of launches (default: %(default)s)")
    g.add_argument("--cold", action="store_true",
                   help="flush the L2 (write 2x its size) before every launch")
    g.add_argument("--min-ms", type=float, default=20.0,
                   help="each repetition runs >= this long (default: "
                   "%(default)s)")
    g.add_argument("--reps", type=int, default=5,
                   help="repetitions, the median is kept (default: "
                   "%(default)s)")
    g.add_argument("--warmup", type=int, default=5,
                   help="warm-up launches (default: %(default)s)")
    g.add_argument("--time-limit", type=float, default=300.0, metavar="S",
                   help="stop starting new work after S seconds and print "
                   "what was measured (default: %(default)s)")
    g.add_argument("--noise", type=float, default=0.03,
                   help="tuned may be this fraction slower than the default "
                   "and still count as 'as fast' (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="FILE", help="write all results as JSON")
    g.add_argument("--csv", metavar="FILE", help="write one CSV row per case")
    g.add_argument("--markdown", metavar="FILE",
                   help="also write the report, with every kernel's config, "
                   "to FILE")
    g.add_argument("--show-configs", action="store_true",
                   help="print every kernel's #norm.config and each failed "
                   "tune under the table (always in --markdown/--json/--csv)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="print tracebacks of failing cases")
    g = p.add_argument_group("checks without a GPU")
    g.add_argument("--dry-run", action="store_true",
                   help="print the planned cases; imports no torch")
    g.add_argument("--self-test", action="store_true",
                   help="test the table, ratio and target logic (pure Python)")
    g.add_argument("--check-lib", action="store_true",
                   help="load libnormjit and run a tiny CPU LayerNorm through "
                   "the C ABI (no torch)")
    return p


def main(argv=None):
    parser = make_parser()
    opts = parser.parse_args(argv)
    if opts.self_test:
        try:
            return self_test()
        except AssertionError as e:
            print("self-test FAILED: %s" % e)
            return 1
    try:
        shapes = ["%dx%d" % parse_shape(s) for s in opts.shapes.split(",")
                  if s.strip()]
        if not shapes:
            raise ValueError("no shapes given")
        dtypes = parse_list(opts.dtypes, list(DTYPE_SIZE), "dtype")
        ops = parse_list(opts.ops, OPS, "op")
    except ValueError as e:
        parser.error(str(e))
    if opts.reps < 1 or opts.min_ms <= 0 or opts.time_limit <= 0:
        parser.error("--reps, --min-ms and --time-limit must be positive")
    if opts.check_lib:
        return check_lib(opts)
    if opts.dry_run:
        return dry_run(opts, shapes, dtypes, ops)
    return run_benchmark(opts, shapes, dtypes, ops)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `--dry-run | head`
        sys.stderr.close()
        sys.exit(1)
