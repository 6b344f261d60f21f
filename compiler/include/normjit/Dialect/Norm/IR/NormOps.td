//===- NormOps.td - ops of the norm dialect ----------------*- tablegen -*-===//
//
// Part of normjit. norm.layer_norm, norm.rms_norm and norm.add, on buffers in
// destination-passing style.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_IR_NORMOPS_TD
#define NORMJIT_DIALECT_NORM_IR_NORMOPS_TD

include "normjit/Dialect/Norm/IR/NormDialect.td"
include "normjit/Dialect/Norm/IR/NormAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Element types a kernel reads and writes; arithmetic is always f32.
defvar Norm_ElementTypes = [F32, F16, BF16];

def Norm_Rows : MemRefRankOf<Norm_ElementTypes, [2]>;
def Norm_Columns : MemRefRankOf<Norm_ElementTypes, [1]>;
def Norm_RowStats : MemRefRankOf<[F32], [1]>;

class Norm_NormOp<string mnemonic, string opSummary, string formula>
    : Norm_Op<mnemonic, [AttrSizedOperandSegments]> {
  let summary = opSummary;
  let description = [{
    Normalizes each row of `x` (rows x columns, row-major, with a row stride)
    and writes `y`. Per row, with `C` columns and all arithmetic in f32:

    - `s = x + residual` when `residual` is given, else `s = x`. When `sum`
      is given, `s` is stored there and then rounded to `sum`'s element type
      before it is normalized (as an unfused `norm.add` into `sum` would);
      otherwise `s` stays in f32.
  }] # formula # [{
    - `gamma` and `beta` (length `C`) are optional: absent means 1 and 0.

    Buffers: `x`, `residual`, `y` and `sum` are 2-D memrefs with the same
    shape, a static column count, unit stride along a row and any row stride
    (`strided<[?, 1], offset: ?>`), so a kernel can work on a slice of a
    larger tensor. Element types are f32, f16 or bf16, each chosen
    independently. `gamma`/`beta` are contiguous 1-D memrefs of length `C`;
    `mean`/`rstd` are contiguous 1-D f32 memrefs with one entry per row.

    The op behaves as if it read all its inputs before writing any output, so
    an output may be the very same buffer as an input (in place), except
    that `mean` and `rstd` may not be `gamma` or `beta` (every row reads
    those); two outputs may not be the same buffer, and buffers that
    partially overlap are not allowed.

    `config` is the tuning decision (`#norm.config`); absent, the compiler
    picks its default heuristic.
  }];

  let arguments = (ins
    Arg<Norm_Rows, "input rows", [MemRead]>:$x,
    Arg<Optional<Norm_Rows>, "residual added to x", [MemRead]>:$residual,
    Arg<Optional<Norm_Columns>, "per-column scale", [MemRead]>:$gamma,
    Arg<Optional<Norm_Columns>, "per-column shift", [MemRead]>:$beta,
    Arg<Norm_Rows, "normalized output", [MemWrite]>:$y,
    Arg<Optional<Norm_Rows>, "x + residual output", [MemWrite]>:$sum,
    Arg<Optional<Norm_RowStats>, "per-row mean output", [MemWrite]>:$mean,
    Arg<Optional<Norm_RowStats>, "per-row 1/sqrt(var + eps) output",
        [MemWrite]>:$rstd,
    F32Attr:$epsilon,
    OptionalAttr<Norm_ConfigAttr>:$config
  );

  let assemblyFormat = [{
    `x` `(` $x `:` type($x) `)`
    (`residual` `(` $residual^ `:` type($residual) `)`)?
    (`gamma` `(` $gamma^ `:` type($gamma) `)`)?
    (`beta` `(` $beta^ `:` type($beta) `)`)?
    `->` `y` `(` $y `:` type($y) `)`
    (`sum` `(` $sum^ `:` type($sum) `)`)?
    (`mean` `(` $mean^ `:` type($mean) `)`)?
    (`rstd` `(` $rstd^ `:` type($rstd) `)`)?
    `eps` `=` $epsilon
    (`config` `=` $config^)?
    attr-dict
  }];

  let hasVerifier = 1;

  let extraClassDeclaration = [{
    /// Number of columns of every row (static).
    int64_t getNumColumns() {
      return ::llvm::cast<::mlir::MemRefType>(getX().getType()).getDimSize(1);
    }
  }];
}

def Norm_LayerNormOp : Norm_NormOp<"layer_norm",
    "layer normalization over each row, optionally fused with a residual add",
    [{
    - `mean = sum(s) / C`, `var = sum((s - mean)^2) / C` (biased),
      `rstd = 1 / sqrt(var + epsilon)`,
      `y = (s - mean) * rstd * gamma + beta`.
    - `mean` and `rstd` are stored per row when given (what a backward pass
      needs).

    Example:

    ```mlir
    norm.layer_norm x(%x : memref<?x768xbf16>)
        residual(%r : memref<?x768xbf16>)
        gamma(%g : memref<768xf32>) beta(%b : memref<768xf32>)
        -> y(%y : memref<?x768xbf16>) sum(%s : memref<?x768xbf16>)
        eps = 1.0e-05 config = <cpu, vector_width = 16>
    ```
  }]>;

def Norm_RMSNormOp : Norm_NormOp<"rms_norm",
    "RMS normalization over each row, optionally fused with a residual add",
    [{
    - `rstd = 1 / sqrt(sum(s^2) / C + epsilon)`, `y = s * rstd * gamma + beta`
      (`beta` optional, usually absent).
    - `rstd` is stored per row when given; there is no `mean` output.

    Example:

    ```mlir
    norm.rms_norm x(%x : memref<?x4096xf16>) gamma(%g : memref<4096xf16>)
        -> y(%y : memref<?x4096xf16>) rstd(%rs : memref<?xf32>)
        eps = 9.99999997e-07
    ```
  }]>;

def Norm_AddOp : Norm_Op<"add", []> {
  let summary = "elementwise residual add of two row buffers";
  let description = [{
    `sum = lhs + rhs` elementwise, computed in f32 and rounded to `sum`'s
    element type: the residual add of a pre-norm transformer block before it
    is fused into the norm that follows (`norm-fuse-residual-add`) or after
    it is split out again (`norm-split-residual-add`). Operands follow the
    buffer rules of the norm ops: same shape, static column count, unit
    stride along a row, f32/f16/bf16 each. `sum` may be the same buffer as
    an input (an in-place update of the residual stream).

    Example:

    ```mlir
    norm.add %x, %r -> %s : memref<?x1024xbf16>, memref<?x1024xbf16>
        -> memref<?x1024xf32>
    ```
  }];
  let arguments = (ins
    Arg<Norm_Rows, "left operand", [MemRead]>:$lhs,
    Arg<Norm_Rows, "right operand", [MemRead]>:$rhs,
    Arg<Norm_Rows, "output", [MemWrite]>:$sum
  );
  let assemblyFormat = [{
    $lhs `,` $rhs `->` $sum attr-dict `:` type($lhs) `,` type($rhs) `->`
    type($sum)
  }];
  let hasVerifier = 1;
}

#endif // NORMJIT_DIALECT_NORM_IR_NORMOPS_TD
