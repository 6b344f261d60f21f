//===- NormAttrs.td - attributes of the norm dialect -------*- tablegen -*-===//
//
// Part of normjit. #norm.config: the tuning decision carried in the IR.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_IR_NORMATTRS_TD
#define NORMJIT_DIALECT_NORM_IR_NORMATTRS_TD

include "normjit/Dialect/Norm/IR/NormDialect.td"
include "normjit/Dialect/Norm/IR/NormEnums.td"

def Norm_ConfigAttr : Norm_Attr<"Config", "config"> {
  let summary = "tuning knobs of one norm kernel";
  let description = [{
    The tuning decision for one kernel. The first entry names the backend;
    the rest are `key = value` pairs, each optional. Knobs of the other
    backend are rejected. Where a kernel is asked for by spec (the JIT, the
    CLI's `--config`, the C API, `normjit aot`), absent knobs are the
    default heuristic's for that spec, the GPU's fitted to the knobs given
    (fewer threads per row for a given `rows_per_block`, elements per
    thread that hold the row, ...). In IR, the conversion passes fill them
    from what they know: `convert-norm-to-vector` from its options, and
    `convert-norm-to-gpu` with vector width 1, a warp per row, one row per
    block, the row in registers (elements per thread: the row's share), no
    persistent grid.

    Common knobs:
    - `vector_width` (power of two): elements per vector operation. CPU:
      1 to 64. GPU: 1 to 8, and at most 128 bits for the widest element
      type of the op it is attached to.
    - `fuse_residual` (`true`/`false`): the tuner's fusion decision for a
      residual form: one fused kernel, or `norm.add` followed by the norm.

    CPU knobs:
    - `accumulators` (1 to 16): independent partial sums per reduction.
    - `rows_per_task` (1 to 65536): the most rows one thread-pool task
      handles; a call's rows are split into as many tasks of equal size,
      and a call left with fewer tasks than threads into more while each
      keeps about 20K row elements read or written.
    - `threads` (1 to 1024): worker threads; absent (or 0, which parses
      as absent) means all cores.
    - `algorithm` (`two_pass` or `welford`): LayerNorm statistics from
      shifted sums of the values and their squares, corrected by a centred
      second pass over the cache-resident row when the shift lies far from
      the mean, or from one-pass Welford updates (with the same
      correction).
    - `streaming_stores` (`true`/`false`): non-temporal stores of `y`, for
      outputs larger than the cache. Single rows and pairs (`row_group`
      1 or 2) take them for the whole cache lines (64 bytes) of a row,
      with ordinary stores before its first line and after its last,
      wherever `y` starts (a multiple of its element size; a pair's rows
      as far from a line); larger groups, and bf16
      rows whose output reads f32 copies of `gamma` and `beta` in the
      paired order, only where their rows start aligned. Other rows take
      ordinary stores.
    - `prefetch_rows` (0 to 16): software prefetches, while a row's output
      is written, of `x` (and the residual) of the row this many rows
      ahead (with rows in pairs, pairs ahead), within the task's rows; 0
      issues none. For inputs beyond the cache, where the output pass
      would otherwise leave the memory idle.
    - `row_group` (1 to 64): rows normalized together: the statistics of
      each row of the group, then the group's output. With 2, each step of
      the output sweep writes both rows, which share the loads of `gamma`
      and `beta`; with 3 or more, the output is swept in tiles of 1024
      columns, every row of the group in turn, so that only a tile of
      `gamma` and `beta` stays in L1 while the rows stream through it
      (with `prefetch_rows`, the rows of the groups ahead are prefetched
      in their memory order, a line per line written). Groups of up to 16
      rows of up to 512 columns finish their statistics in lanes, one row
      a lane: each row's sums, then the means, variances and reciprocal
      square roots of the whole group in one vector computation (not with
      `algorithm = welford`, nor for bf16 rows summed with AVX512-BF16).
      Absent (or 0, which parses as absent): groups of 16 in lanes for
      16-bit rows of up to 128 columns, of 8 up to 256, of 16 for f32
      LayerNorm rows of up to 32 columns and RMSNorm ones of up to 16
      (single rows where lanes do not apply); pairs when `gamma`, `beta`
      and a row together exceed 32 KiB; single rows otherwise.

    GPU knobs:
    - `threads_per_row` (power of two, 1 to 1024): a sub-warp, a warp,
      several warps or a whole block cooperating on one row.
    - `rows_per_block` (1 to 1024): rows one thread block handles at once;
      `threads_per_row * rows_per_block` is at most 1024.
    - `elements_per_thread` (1 to 1024): a multiple of `vector_width`. With
      `registers`: the elements each thread holds of a row. With `shared`
      or `global`: the elements each thread visits per step of its loop
      over the row.
    - `row_storage`: where a row stays between the statistics pass and the
      output pass. `registers` (the row is read once and kept in registers;
      needs `threads_per_row * elements_per_thread >= columns`), `shared`
      (kept in shared memory: `rows_per_block * columns * 4` bytes, at most
      47 KiB), or `global` (not kept: the output pass reads the row again,
      usually from L2; any column count).
    - `persistent` (`true`/`false`): a persistent grid looping over rows
      instead of one block per group of rows.
    - `min_blocks_per_sm` (0 to 32): asks the PTX assembler to fit this
      many blocks on a multiprocessor (PTX `.minnctapersm`, CUDA's
      `__launch_bounds__` minimum), capping each thread's registers at
      about 65536 / (blocks * block size): more warps to hide memory
      latency, paid for in spills when the kernel needs more registers.
      `blocks * threads_per_row * rows_per_block` is at most 2048 (checked
      on the op, with the knobs as they are filled in), and a kernel
      compiled for a chip whose multiprocessors run fewer (sm_86 and sm_87:
      16 blocks, 1536 threads; sm_89 and sm_120: 24 blocks, 1536 threads)
      is refused past those, which ptxas would ignore. Where it is given
      without `rows_per_block`, the rows per block are halved until the
      blocks fit 2048 threads. 0 (the default) leaves the registers to the
      assembler.

    Example:

    ```mlir
    #norm.config<cpu, vector_width = 16, accumulators = 4, algorithm = two_pass>
    #norm.config<gpu, threads_per_row = 128, elements_per_thread = 8,
                 vector_width = 8, row_storage = registers>
    ```
  }];
  let parameters = (ins
    "::normjit::norm::Backend":$backend,
    "std::optional<int64_t>":$vectorWidth,
    "std::optional<bool>":$fuseResidual,
    "std::optional<int64_t>":$accumulators,
    "std::optional<int64_t>":$rowsPerTask,
    "std::optional<int64_t>":$threads,
    "std::optional<::normjit::norm::Algorithm>":$algorithm,
    "std::optional<bool>":$streamingStores,
    "std::optional<int64_t>":$prefetchRows,
    "std::optional<int64_t>":$rowGroup,
    "std::optional<int64_t>":$threadsPerRow,
    "std::optional<int64_t>":$rowsPerBlock,
    "std::optional<int64_t>":$elementsPerThread,
    "std::optional<::normjit::norm::RowStorage>":$rowStorage,
    "std::optional<bool>":$persistent,
    "std::optional<int64_t>":$minBlocksPerSm
  );
  let builders = [
    AttrBuilder<(ins "::normjit::norm::Backend":$backend), [{
      return $_get($_ctxt, backend, std::nullopt, std::nullopt, std::nullopt,
                   std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                   std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                   std::nullopt, std::nullopt, std::nullopt, std::nullopt);
    }]>
  ];
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isCPU() const { return getBackend() == ::normjit::norm::Backend::CPU; }
    bool isGPU() const { return getBackend() == ::normjit::norm::Backend::GPU; }
  }];
}

#endif // NORMJIT_DIALECT_NORM_IR_NORMATTRS_TD
