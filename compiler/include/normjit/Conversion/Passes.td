//===- Passes.td - conversions out of the norm dialect -----*- tablegen -*-===//
//
// Part of normjit. Lowering of norm ops to loops and vector code.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_CONVERSION_PASSES_TD
#define NORMJIT_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertNormToVectorPass
    : Pass<"convert-norm-to-vector", "::mlir::func::FuncOp"> {
  let summary = "Lower norm ops to scf loops and vector code for the CPU";
  let description = [{
    Each norm op becomes a loop over its rows; each row is swept in vectors
    of `vector_width` f32 lanes with `accumulators` independent partial sums
    (a loop over groups of `accumulators` vectors, the leftover full
    vectors, then one masked tail vector, so any column count works).
    Element types are extended to f32 on load and rounded on store.

    LayerNorm statistics are taken on d = s - s0 (s0: the median of the
    row's first three values). With `algorithm = two_pass`: one pass
    summing d and d^2 (which also stores `sum`); with `algorithm =
    welford`: one pass of per-lane Welford updates merged with Chan's
    formula. When the mean lies more than two standard deviations from s0
    (or M2 is NaN with a finite mean), a centred pass over the
    cache-resident row, about s0 + mean rounded to f32 (the new shift),
    corrects the mean and M2 (the corrected two-pass algorithm). Then the
    output pass, (s - centre) * rstd - offset with
    centre = s0 + mean rounded to f32 and offset its rounding error times
    rstd.
    RMSNorm: a sum-of-squares pass and an output pass. With a residual
    and no `sum`, later passes add x and the residual again; but where y
    is f32, the rows are not bf16, streaming stores are off and a row of
    x, the residual, gamma and beta overflows 32 KiB, the first pass
    stores s, exact in f32, into y's row and the later passes read it from
    there (the output pass overwrites it). `streaming_stores`
    makes the full-vector stores of `y` non-temporal, with the alignment of
    the vector (64 bytes at most), in rows of `y` whose start has it; an
    `scf.if` sends the other rows to a copy of the output pass with
    ordinary stores (x86 has no unaligned non-temporal vector store).
    `prefetch_rows = d` adds `memref.prefetch`es (read, locality 2) of
    `x`, and of the residual, to the output pass: the same columns of the
    row d rows ahead (d groups ahead when rows go in groups), clamped to
    the last row of the buffer, one per 64-byte line a step covers (two for
    a vector of 32 f32, one every four steps for vectors of 4 f32).
    `row_group = n` normalizes n rows together: an `scf.for` computes the
    statistics of each row of the group onto the stack, then the output
    pass writes them; for a pair, every step writes both rows from one
    load of gamma and beta; for 3 or more, an `scf.for` over tiles of 1024
    columns (whole groups of vectors) holds an `scf.for` over the group's
    rows, each sweeping the tile, and the columns after the tiles follow
    row by row; there the prefetches take the rows d groups ahead in
    their memory order (the step writing the group's s-th element, in the
    order of the steps, prefetches row s / columns and column s % columns
    of them). Absent, rows go in pairs when gamma, beta and a row together
    exceed 32 KiB.

    With `dot-bf16` (set for targets with AVX512-BF16), rows of bf16
    values (x without a residual, or s = x + r stored to a bf16 sum;
    vectors of 8 lanes or more; not Welford) take their sums from
    `x86vector.avx512.dot` (vdpbf16ps) on the bf16 vectors (as loaded, or
    as rounded for the store): the squares from a dot of the row with itself,
    LayerNorm's sums from a dot with ones, with s0 = 0 (the far-shift
    test and centred pass above then correct a mean far from 0). The
    instruction flushes denormal products and partial sums; a sum of
    squares below n * 2^-102 is therefore taken again in plain f32 (the
    centred pass for LayerNorm, a second sum-of-squares pass for RMSNorm).
    With `dot-bf16` the f32 -> bf16 roundings of vectors of 8 lanes or more
    (y, the stored sum) are `llvm.call_intrinsic` of vcvtne2ps2bf16, two
    halves into one vector (LLVM selects a `truncf` of 32 lanes as two
    vcvtneps2bf16 and a lane insert). Without `dot-bf16` there is no f32 ->
    bf16 instruction either: full
    vectors of a sweep whose buffers are all bf16 (read in the paired lane
    order: the even columns, then the odd ones) are rounded in the integer
    unit as arith-expand rounds `truncf` (to nearest even, NaN to 0x7fc0)
    and stored as words of the even column's bf16 and the odd one's, with
    no shuffle back to the columns' order. f32 gamma and beta beside bf16
    rows and a bf16 y are then copied onto the stack in the paired order
    (when the copies fit in 8 KiB), so that such mixed-precision output
    sweeps take that order too.

    Knobs absent from an op's `#norm.config` take the pass options. Ops
    with a GPU config are rejected.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
    "::mlir::x86vector::X86VectorDialect",
    "::mlir::LLVM::LLVMDialect"
  ];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector when the config does not say">,
    Option<"accumulators", "accumulators", "int64_t", /*default=*/"4",
           "independent partial sums when the config does not say">,
    Option<"welford", "welford", "bool", /*default=*/"false",
           "use one-pass Welford statistics when the config does not say">,
    Option<"dotBf16", "dot-bf16", "bool", /*default=*/"false",
           "the target has AVX512-BF16: sum bf16 rows (and their squares) "
           "with x86vector.avx512.dot">
  ];
}

def ConvertNormToGPUPass
    : Pass<"convert-norm-to-gpu", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Lower norm ops inside gpu.func kernels to SIMT code";
  let description = [{
    Each norm op with a `#norm.config<gpu, ...>` inside a `gpu.func` becomes
    the body of that kernel: `threads_per_row` consecutive threads of a
    block of `threads_per_row * rows_per_block` threads share a row
    (`gpu.thread_id x`); block `b` handles rows `b * rows_per_block` and up
    (with `persistent = true`, a grid-stride loop over row groups). Each
    thread visits the row in vectors of `vector_width` elements
    (`vector.load`/`vector.store` with the alignment of a whole vector,
    less where the memref's static offset or row stride gives less; the
    base pointer and dynamic offsets and strides are the caller's to keep
    aligned, as the JIT checks before it launches), thread `t`'s
    vectors interleaved with its neighbours' so that a warp's accesses are
    contiguous. Partial sums are reduced with `gpu.shuffle xor` within a
    warp and, for rows of several warps, through shared memory with one
    `gpu.barrier` per reduction.

    `row_storage = registers`: the row is read once into SSA values (fully
    unrolled: `elements_per_thread` per thread), then two-pass statistics
    (the first pass shifted by the median of the row's first three
    elements, the second centred on the first pass's mean) and the output
    pass run
    on registers; gamma and beta are loaded once per thread before the row
    loop of a persistent kernel. `shared`: a loop over the row with
    `elements_per_thread` elements per thread and step, keeping `s` in a
    shared-memory row that only its own thread reads back (no barrier).
    `global`: the same centred two-pass statistics, their second pass and
    the output pass reading the row again (usually from L2).

    `min_blocks_per_sm = N` (N > 0) sets `nvvm.minctasm = N` on the kernel
    (PTX `.minnctapersm`): ptxas caps registers so that N blocks fit a
    multiprocessor.

    Rows past the end are clamped, not skipped, so that every thread takes
    part in every shuffle and barrier; their stores are guarded. Element
    types are extended to f32 on load and rounded on store; `sum` is
    rounded to its type before the statistics, as on the CPU. The enclosing
    `gpu.func` gets `known_block_size`; its workgroup attributions hold the
    shared rows and reduction slots. A kernel holds one norm op. The pass
    runs on each `gpu.module` and looks at the ops inside it only (norm ops
    elsewhere are the CPU lowering's, and are left as they are); there, ops
    with a CPU config, outside a `gpu.func` kernel or outside its entry
    block (under control flow that may depend on the thread), a second norm
    op in a kernel, and `norm.add` are rejected.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

#endif // NORMJIT_CONVERSION_PASSES_TD
