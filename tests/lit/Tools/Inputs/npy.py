#!/usr/bin/env python3
# ===- npy.py - .npy files and a float64 norm reference for lit tests -----===#
# Writes, inspects and checks .npy files with the standard library only
# (numpy is not needed): `gen` writes pseudo-random arrays, `show` prints a
# file's dtype and shape, `check` compares normjit's outputs with a float64
# LayerNorm/RMSNorm reference computed from the same input files.
#
# dtypes: '<f4' f32, '<f2' f16, '<u2' bf16 bit patterns (normjit's
# convention), '<f8' f64 (only to test that normjit rejects it).
# ===----------------------------------------------------------------------===#

import argparse
import ast
import math
import struct
import sys

SIZES = {"<f4": 4, "<f2": 2, "<u2": 2, "<f8": 8}
NAMES = {"f32": "<f4", "f16": "<f2", "bf16": "<u2", "f64": "<f8"}
# (mantissa bits, smallest normal exponent) of each dtype, for ulps.
FORMATS = {"<f4": (23, -126), "<f2": (10, -14), "<u2": (7, -126),
           "<f8": (52, -1022)}


def to_f32(value):
    """Rounds a float to the nearest f32 (ties to even)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def f32_bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]


def to_bf16_bits(value):
    """The bf16 bits nearest to `value` (through f32, ties to even)."""
    bits = f32_bits(to_f32(value))
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF


def from_bf16_bits(bits):
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def round_to(dtype, value):
    """`value` rounded to `dtype` as the kernel rounds: through f32."""
    value = to_f32(value)
    if dtype == "<f2":
        return struct.unpack("<e", struct.pack("<e", value))[0]
    if dtype == "<u2":
        return from_bf16_bits(to_bf16_bits(value))
    return value


def ulp(dtype, value):
    """The spacing of `dtype` values at `value`."""
    mantissa_bits, min_exponent = FORMATS[dtype]
    exponent = min_exponent
    if value != 0 and math.isfinite(value):
        exponent = max(math.frexp(abs(value))[1] - 1, min_exponent)
    return 2.0 ** (exponent - mantissa_bits)


def encode(dtype, values):
    if dtype == "<u2":
        return struct.pack("<%dH" % len(values),
                           *[to_bf16_bits(v) for v in values])
    code = {"<f4": "f", "<f2": "e", "<f8": "d"}[dtype]
    return struct.pack("<%d%s" % (len(values), code), *values)


def decode(dtype, data):
    count = len(data) // SIZES[dtype]
    if dtype == "<u2":
        return [from_bf16_bits(b) for b in struct.unpack("<%dH" % count, data)]
    code = {"<f4": "f", "<f2": "e", "<f8": "d"}[dtype]
    return list(struct.unpack("<%d%s" % (count, code), data))


def write_npy(path, dtype, shape, values, truncate=0):
    """Writes a version 1.0 .npy file laid out as numpy.save does."""
    shape_text = "(%s)" % "".join("%d, " % d for d in shape)
    if len(shape) != 1:
        shape_text = shape_text.replace(", )", ")")
    else:
        shape_text = shape_text.replace(", )", ",)")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (
        dtype, shape_text)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    blob = (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) +
            header.encode("latin1") + encode(dtype, values))
    with open(path, "wb") as f:
        f.write(blob[:len(blob) - truncate])


def read_npy(path):
    """Returns (dtype, shape, values as Python floats)."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:6] != b"\x93NUMPY":
        sys.exit("%s: not a .npy file" % path)
    if blob[6] == 1:
        (length,), start = struct.unpack("<H", blob[8:10]), 10
    else:
        (length,), start = struct.unpack("<I", blob[8:12]), 12
    header = ast.literal_eval(blob[start:start + length].decode("latin1"))
    dtype, shape = header["descr"], tuple(header["shape"])
    values = decode(dtype, blob[start + length:])
    if len(values) != math.prod(shape):
        sys.exit("%s: %d values for shape %s" % (path, len(values), shape))
    return dtype, shape, values


def generate(count, seed, scale, offset):
    """Deterministic values in offset + scale * [-1, 1)."""
    state = seed * 2654435761 + 12345
    values = []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        values.append(offset + scale * ((state >> 11) / 2.0**52 - 1.0))
    return values


def reference(op, x, residual, gamma, beta, eps, rows, cols, sum_dtype):
    """y, sum, mean and rstd in float64, with the sum rounded like the
    kernel's (f32, then `sum_dtype`)."""
    y, sums, means, rstds = [], [], [], []
    for i in range(rows):
        s = x[i * cols:(i + 1) * cols]
        if residual is not None:
            r = residual[i * cols:(i + 1) * cols]
            s = [round_to(sum_dtype, a + b) for a, b in zip(s, r)]
        sums += s
        if op == "layer_norm":
            mean = math.fsum(s) / cols
            var = math.fsum((v - mean) ** 2 for v in s) / cols
        else:
            mean = 0.0
            var = math.fsum(v * v for v in s) / cols
        rstd = 1.0 / math.sqrt(var + eps)
        means.append(mean)
        rstds.append(rstd)
        for j, v in enumerate(s):
            out = (v - mean) * rstd
            if gamma is not None:
                out *= gamma[j]
            if beta is not None:
                out += beta[j]
            y.append(out)
    return y, sums, means, rstds


def compare(name, dtype, got, want, args):
    """Prints OK or the first mismatches; returns whether all match."""
    worst, bad = 0.0, []
    for i, (g, w) in enumerate(zip(got, want)):
        if args.ulps is not None:
            limit = args.ulps * ulp(dtype, w)
        else:
            limit = args.tol * max(1.0, abs(w))
        err = abs(g - w)
        if not err <= limit:
            bad.append("  [%d] got %r want %r (error %g > %g)" %
                       (i, g, w, err, limit))
        worst = max(worst, err / limit if limit else 0.0)
    if len(got) != len(want):
        bad.append("  %d values, want %d" % (len(got), len(want)))
    if bad:
        print("MISMATCH %s: %d of %d values" % (name, len(bad), len(want)))
        print("\n".join(bad[:10]))
        return False
    print("OK %s: %d values" % (name, len(want)))
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("gen", help="write a pseudo-random array")
    gen.add_argument("path")
    gen.add_argument("--dtype", required=True, choices=sorted(NAMES))
    gen.add_argument("--shape", required=True, help="e.g. 4,8 or 8")
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--scale", type=float, default=1.0)
    gen.add_argument("--offset", type=float, default=0.0)
    gen.add_argument("--truncate", type=int, default=0,
                     help="drop this many bytes from the end of the file")

    show = sub.add_parser("show", help="print dtype and shape")
    show.add_argument("path")

    check = sub.add_parser("check", help="compare outputs with a reference")
    check.add_argument("--op", required=True,
                       choices=["layer_norm", "rms_norm"])
    for name in ["x", "residual", "gamma", "beta", "y", "sum", "mean",
                 "rstd"]:
        check.add_argument("--" + name)
    check.add_argument("--eps", type=float)
    check.add_argument("--tol", type=float, default=1e-5,
                       help="|got - want| <= tol * max(1, |want|)")
    check.add_argument("--ulps", type=float,
                       help="|got - want| <= ulps * ulp(want) in y's dtype")
    args = parser.parse_args()

    if args.command == "gen":
        shape = [int(d) for d in args.shape.split(",") if d]
        values = generate(math.prod(shape), args.seed, args.scale,
                          args.offset)
        write_npy(args.path, NAMES[args.dtype], shape, values, args.truncate)
        return 0
    if args.command == "show":
        dtype, shape, _ = read_npy(args.path)
        print("dtype %s shape %s" % (dtype, shape))
        return 0

    xd, xshape, x = read_npy(args.x)
    # Rows of the last dimension: (..., cols), as normjit run reads x.
    cols = xshape[-1]
    rows = math.prod(xshape[:-1])
    inputs = {}
    for name in ["residual", "gamma", "beta"]:
        path = getattr(args, name)
        inputs[name] = read_npy(path)[2] if path else None
    sum_dtype = read_npy(args.sum)[0] if args.sum else "<f4"
    eps = args.eps
    if eps is None:
        eps = 1e-5 if args.op == "layer_norm" else 1e-6
    want = reference(args.op, x, inputs["residual"], inputs["gamma"],
                     inputs["beta"], to_f32(eps), rows, cols, sum_dtype)
    ok = True
    yd, yshape, y = read_npy(args.y)
    if yshape != xshape:
        print("MISMATCH y shape %s, want %s" % (yshape, xshape))
        return 1
    ok &= compare("y", yd, y, want[0], args)
    if args.sum:
        sd, _, s = read_npy(args.sum)
        # The kernel rounds exactly like the reference: the sum must match.
        exact = argparse.Namespace(ulps=0, tol=0)
        ok &= compare("sum", sd, s, want[1], exact)
    stats = argparse.Namespace(ulps=None, tol=max(args.tol, 1e-5))
    for name, index in [("mean", 2), ("rstd", 3)]:
        path = getattr(args, name)
        if not path:
            continue
        _, shape, values = read_npy(path)
        if shape != xshape[:-1]:
            print("MISMATCH %s shape %s, want %s" % (name, shape, xshape[:-1]))
            return 1
        ok &= compare(name, "<f4", values, want[index], stats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
