//===- Kernel.cpp - spec and argument validation, the CPU launcher --------===//
//
// Part of normjit. Every check of user input that the JIT, the C ABI, the
// CLI and AOT hosts share, and the row-splitting launcher.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/kernel.h"
#include "normjit/runtime/Error.h"
#include "normjit/runtime/ThreadPool.h"
#include "normjit/runtime/Validate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <utility>

using normjit::runtime::setError;

namespace {
bool isDType(normjit_dtype_t dtype) { return normjit_dtype_size(dtype) != 0; }

/// A row stride as given, 0 meaning `cols` (contiguous rows).
int64_t strideOr(int64_t stride, int64_t cols) {
  return stride == 0 ? cols : stride;
}

normjit_status_t invalid(const std::string &message) {
  return setError(NORMJIT_INVALID_ARGUMENT, message);
}

/// Whether `rows` rows of `cols` elements of `elementBytes`, `stride`
/// elements apart, starting at `pointer`, lie in the address space: a
/// stride or row count whose byte offsets overflow would make the kernel
/// read and write somewhere else.
normjit_status_t checkExtent(const char *name, const void *pointer,
                             int64_t rows, int64_t stride, int64_t cols,
                             size_t elementBytes) {
  if (rows <= 0)
    return NORMJIT_OK;
  int64_t span = 0, bytes = 0;
  uintptr_t end = 0;
  if (__builtin_mul_overflow(rows - 1, stride, &span) ||
      __builtin_add_overflow(span, cols, &span) ||
      __builtin_mul_overflow(span, static_cast<int64_t>(elementBytes),
                             &bytes) ||
      __builtin_add_overflow(reinterpret_cast<uintptr_t>(pointer),
                             static_cast<uintptr_t>(bytes), &end))
    return invalid(std::string(name) + ": " + std::to_string(rows) +
                   " rows of stride " + std::to_string(stride) +
                   " reach past the end of the address space");
  return NORMJIT_OK;
}

normjit_status_t checkRows(const char *name, const void *pointer,
                           int64_t stride, int64_t cols, normjit_dtype_t dtype,
                           bool required, int64_t rows = 1) {
  if (!required) {
    if (pointer)
      return invalid(std::string(name) +
                     " is given but the kernel spec does not use it");
    return NORMJIT_OK;
  }
  if (!pointer)
    return invalid(std::string(name) + " must not be null");
  if (stride != 0 && stride < cols)
    return invalid(std::string(name) + "_stride (" + std::to_string(stride) +
                   ") is less than cols (" + std::to_string(cols) + ")");
  if (stride < 0)
    return invalid(std::string(name) + "_stride must not be negative");
  if (reinterpret_cast<uintptr_t>(pointer) % normjit_dtype_size(dtype) != 0)
    return invalid(std::string(name) + " is not aligned to its " +
                   normjit_dtype_name(dtype) + " elements");
  return checkExtent(name, pointer, rows, stride == 0 ? cols : stride, cols,
                     normjit_dtype_size(dtype));
}
} // namespace

namespace {
/// normjit_dtype_size, inline for the checks every call makes.
inline int64_t elementBytes(normjit_dtype_t dtype) {
  return dtype == NORMJIT_F32                                 ? 4
         : dtype == NORMJIT_F16 || dtype == NORMJIT_BF16 ? 2
                                                              : 0;
}

/// Whether normjit_kernel_spec_validate accepts `spec`, by the same rules
/// without building its messages. (Each call checks its spec and arguments:
/// done field by field with messages ready to build, that was 33 ns of a
/// 71 ns call of one 16-column row on the Zen 5, three times the kernel.)
bool isValidSpec(const normjit_kernel_spec_t &spec) {
  auto dtypeOk = [](bool used, normjit_dtype_t dtype) {
    return !used || elementBytes(dtype) != 0;
  };
  return (spec.op == NORMJIT_LAYER_NORM || spec.op == NORMJIT_RMS_NORM) &&
         spec.cols >= 1 && spec.cols <= (int64_t(1) << 30) &&
         dtypeOk(true, spec.x_dtype) && dtypeOk(true, spec.y_dtype) &&
         dtypeOk(spec.has_residual, spec.residual_dtype) &&
         dtypeOk(spec.store_sum, spec.sum_dtype) &&
         dtypeOk(spec.has_gamma, spec.gamma_dtype) &&
         dtypeOk(spec.has_beta, spec.beta_dtype) &&
         // Positive and finite (NaN fails both).
         spec.epsilon > 0.0f &&
         spec.epsilon <= std::numeric_limits<float>::max() &&
         (!spec.store_sum || spec.has_residual) &&
         !(spec.store_mean && spec.op == NORMJIT_RMS_NORM);
}

/// Whether checkRows accepts a buffer, without building its messages.
/// Sets `end` to one past the buffer's last byte (its start when it is
/// null or has no rows).
bool isValidRows(const void *pointer, int64_t stride, int64_t cols,
                 int64_t bytes, bool required, int64_t rows, uintptr_t &end) {
  end = reinterpret_cast<uintptr_t>(pointer);
  if (!required)
    return !pointer;
  if (!pointer || (stride != 0 && stride < cols) ||
      reinterpret_cast<uintptr_t>(pointer) % static_cast<uintptr_t>(bytes))
    return false;
  if (rows <= 0)
    return true;
  int64_t span = 0;
  return !__builtin_mul_overflow(rows - 1, stride == 0 ? cols : stride,
                                 &span) &&
         !__builtin_add_overflow(span, cols, &span) &&
         !__builtin_mul_overflow(span, bytes, &span) &&
         !__builtin_add_overflow(reinterpret_cast<uintptr_t>(pointer),
                                 static_cast<uintptr_t>(span), &end);
}

/// Two buffers of a call that must not be the same one: an output over
/// gamma or beta (`overParameter`), or mean or rstd over a row buffer.
struct SharedBuffer {
  const char *output, *other;
  bool overParameter;
};

/// The first output of `args` that is the very buffer of gamma or beta
/// (every row reads them), or mean or rstd over a row buffer (a row's
/// statistics would land in rows not yet read); null when none is. Both
/// the quick check and the field-by-field one ask it.
std::optional<SharedBuffer> findForbiddenSharing(const normjit_run_args_t &args) {
  struct Named {
    const char *name;
    const void *data;
  };
  const Named params[] = {{"gamma", args.gamma}, {"beta", args.beta}};
  const Named outputs[] = {
      {"y", args.y}, {"sum", args.sum}, {"mean", args.mean}, {"rstd", args.rstd}};
  for (const Named &out : outputs)
    for (const Named &param : params)
      if (out.data && out.data == param.data)
        return SharedBuffer{out.name, param.name, true};
  const Named rowBuffers[] = {
      {"x", args.x}, {"residual", args.residual}, {"y", args.y}, {"sum", args.sum}};
  for (const Named &stat : {outputs[2], outputs[3]})
    for (const Named &rowBuffer : rowBuffers)
      if (stat.data && stat.data == rowBuffer.data)
        return SharedBuffer{stat.name, rowBuffer.name, false};
  return std::nullopt;
}

/// The bytes of a row buffer: `rows` rows of `width` bytes, `stride` bytes
/// apart from `start` (stride >= width > 0, and the whole extent inside
/// the address space: the checks before make sure of both).
struct RowBytes {
  uint64_t start = 0;
  uint64_t stride = 0;
  uint64_t width = 0;
  uint64_t rows = 0;
  uint64_t last = 0; ///< one past the last byte of the last row
};

/// Whether a row of `family` shares a byte with [begin, end).
bool rowsMeet(const RowBytes &family, uint64_t begin, uint64_t end) {
  if (end <= family.start || begin >= family.last)
    return false;
  // The first row that ends after `begin`.
  uint64_t first = begin < family.start + family.width
                       ? 0
                       : (begin - family.start - family.width) / family.stride +
                             1;
  return first < family.rows && family.start + first * family.stride < end;
}

/// Whether two row buffers share a byte (an element of one is an element
/// of the other); exact for interleaved rows, which share none.
bool rowBytesMeet(const RowBytes &a, const RowBytes &b) {
  if (a.last <= b.start || b.last <= a.start)
    return false;
  if (a.rows == 1)
    return rowsMeet(b, a.start, a.last);
  if (b.rows == 1)
    return rowsMeet(a, b.start, b.last);
  if (a.stride == b.stride) {
    // Row i of a meets row j of b where t = i - j puts b's row within
    // (-b.width, a.width) of a's: at most two t around (b - a) / stride.
    int64_t d = static_cast<int64_t>(b.start - a.start);
    int64_t s = static_cast<int64_t>(a.stride);
    int64_t t0 = d >= 0 ? d / s : -((-d + s - 1) / s);
    for (int64_t t : {t0 - 1, t0, t0 + 1}) {
      if (t > static_cast<int64_t>(a.rows) - 1 ||
          t < -(static_cast<int64_t>(b.rows) - 1))
        continue;
      int64_t offset = d - t * s; // b's row start minus a's
      if (offset < static_cast<int64_t>(a.width) &&
          offset > -static_cast<int64_t>(b.width))
        return true;
    }
    return false;
  }
  // Other strides: walk the rows of both in address order, each step
  // skipping to the next row of one that can meet the current row of the
  // other (only buffers whose extents cross get here).
  uint64_t i = 0, j = 0;
  while (i < a.rows && j < b.rows) {
    uint64_t aBegin = a.start + i * a.stride, aEnd = aBegin + a.width;
    uint64_t bBegin = b.start + j * b.stride, bEnd = bBegin + b.width;
    if (aBegin < bEnd && bBegin < aEnd)
      return true;
    if (aEnd <= bBegin)
      i = bBegin < a.start + a.width
              ? i + 1
              : std::max(i + 1, (bBegin - a.start - a.width) / a.stride + 1);
    else
      j = aBegin < b.start + b.width
              ? j + 1
              : std::max(j + 1, (aBegin - b.start - b.width) / b.stride + 1);
  }
  return false;
}

/// The buffers of a call in the order findPartialOverlap takes their
/// extents: the outputs, then the inputs.
constexpr const char *kBufferNames[8] = {"y", "sum",      "mean",  "rstd",
                                         "x", "residual", "gamma", "beta"};

/// findPartialOverlap on the extents of the buffers in kBufferNames'
/// order: `lo` each one's first byte, `hi` one past its last (lo == hi
/// for a null buffer or no rows).
std::optional<std::pair<const char *, const char *>>
findPartialOverlapIn(const normjit_kernel_spec_t &spec,
                     const normjit_run_args_t &args, const uintptr_t lo[8],
                     const uintptr_t hi[8]) {
  // Every call asks this, so the common case (no two extents cross) costs
  // a few comparisons; the rows themselves are looked at only for
  // extents that cross.
  for (int out = 0; out < 4; ++out) {
    if (lo[out] == hi[out])
      continue; // no such output
    for (int other = out + 1; other < 8; ++other) {
      // Empty extents, extents apart, and one start (in place, or refused
      // before) go on.
      if (lo[out] >= hi[other] || lo[other] >= hi[out] ||
          lo[out] == lo[other])
        continue;
      uint64_t rows = static_cast<uint64_t>(args.rows);
      uint64_t cols = static_cast<uint64_t>(spec.cols);
      auto bytesOf = [&](int index) {
        RowBytes buffer;
        buffer.start = lo[index];
        buffer.last = hi[index];
        buffer.rows = 1;
        buffer.width = buffer.stride = hi[index] - lo[index];
        const int64_t strides[8] = {args.y_stride, args.sum_stride, 0, 0,
                                    args.x_stride, args.residual_stride, 0,
                                    0};
        const normjit_dtype_t dtypes[8] = {spec.y_dtype, spec.sum_dtype,
                                           NORMJIT_F32,  NORMJIT_F32,
                                           spec.x_dtype, spec.residual_dtype,
                                           NORMJIT_F32,  NORMJIT_F32};
        if (index == 0 || index == 1 || index == 4 || index == 5) {
          uint64_t bytes = static_cast<uint64_t>(elementBytes(dtypes[index]));
          buffer.rows = rows;
          buffer.width = cols * bytes;
          buffer.stride =
              static_cast<uint64_t>(strideOr(strides[index], spec.cols)) *
              bytes;
        }
        return buffer;
      };
      if (rowBytesMeet(bytesOf(out), bytesOf(other)))
        return std::make_pair(kBufferNames[out], kBufferNames[other]);
    }
  }
  return std::nullopt;
}

/// The first bytes of a call's buffers, in kBufferNames' order.
struct BufferStarts {
  uintptr_t values[8];
  operator const uintptr_t *() const { return values; }
};
BufferStarts lo(const normjit_run_args_t &args) {
  auto at = [](const void *data) { return reinterpret_cast<uintptr_t>(data); };
  return {{at(args.y), at(args.sum), at(args.mean), at(args.rstd), at(args.x),
           at(args.residual), at(args.gamma), at(args.beta)}};
}

/// The first output of a call whose bytes partly overlap another buffer's
/// (an input or another output), and that buffer; null when none does.
/// The very same buffer in place (y or sum over x or the residual, checked
/// before to overlay element for element) is no overlap here; other pairs
/// of one pointer were refused before. Rows that interleave (x and y rows
/// alternating in one allocation) share no byte and pass. For arguments
/// that pass every other check (extents inside the address space).
std::optional<std::pair<const char *, const char *>>
findPartialOverlap(const normjit_kernel_spec_t &spec,
                   const normjit_run_args_t &args) {
  uintptr_t hi[8];
  int64_t cols = spec.cols, rows = args.rows;
  auto rowBuffer = [&](int index, const void *data, int64_t stride,
                       normjit_dtype_t dtype, int64_t width, int64_t count) {
    isValidRows(data, stride, width, elementBytes(dtype), data != nullptr,
                count, hi[index]);
  };
  rowBuffer(0, args.y, args.y_stride, spec.y_dtype, cols, rows);
  rowBuffer(1, args.sum, args.sum_stride, spec.sum_dtype, cols, rows);
  rowBuffer(2, args.mean, 0, NORMJIT_F32, 1, rows);
  rowBuffer(3, args.rstd, 0, NORMJIT_F32, 1, rows);
  rowBuffer(4, args.x, args.x_stride, spec.x_dtype, cols, rows);
  rowBuffer(5, args.residual, args.residual_stride, spec.residual_dtype, cols,
            rows);
  rowBuffer(6, args.gamma, 0, spec.gamma_dtype, cols, 1);
  rowBuffer(7, args.beta, 0, spec.beta_dtype, cols, 1);
  if (rows <= 0)
    return std::nullopt;
  return findPartialOverlapIn(spec, args, lo(args), hi);
}

/// Whether normjit_run_args_validate accepts `args` for the valid `spec`,
/// by the same rules without building its messages.
bool isValidRunArgs(const normjit_kernel_spec_t &spec,
                    const normjit_run_args_t &args) {
  int64_t cols = spec.cols, rows = args.rows;
  // Each buffer's extent, in kBufferNames' order, for the overlap check.
  uintptr_t hi[8];
  if (rows < 0 ||
      !isValidRows(args.x, args.x_stride, cols, elementBytes(spec.x_dtype),
                   true, rows, hi[4]) ||
      !isValidRows(args.residual, args.residual_stride, cols,
                   elementBytes(spec.residual_dtype), spec.has_residual != 0,
                   rows, hi[5]) ||
      !isValidRows(args.y, args.y_stride, cols, elementBytes(spec.y_dtype),
                   true, rows, hi[0]) ||
      !isValidRows(args.sum, args.sum_stride, cols,
                   elementBytes(spec.sum_dtype), spec.store_sum != 0, rows,
                   hi[1]) ||
      !isValidRows(args.gamma, 0, cols, elementBytes(spec.gamma_dtype),
                   spec.has_gamma != 0, 1, hi[6]) ||
      !isValidRows(args.beta, 0, cols, elementBytes(spec.beta_dtype),
                   spec.has_beta != 0, 1, hi[7]) ||
      !isValidRows(args.mean, 0, 1, 4, spec.store_mean != 0, rows, hi[2]) ||
      !isValidRows(args.rstd, 0, 1, 4, spec.store_rstd != 0, rows, hi[3]))
    return false;
  if ((args.sum && args.sum == args.y) ||
      (args.mean && args.mean == args.rstd))
    return false;
  if (findForbiddenSharing(args))
    return false;
  // An output over an input must overlay it element for element.
  auto overlays = [&](const void *out, int64_t outStride,
                      normjit_dtype_t outDtype, const void *in,
                      int64_t inStride, normjit_dtype_t inDtype) {
    return !out || out != in ||
           (elementBytes(outDtype) == elementBytes(inDtype) &&
            strideOr(outStride, cols) == strideOr(inStride, cols));
  };
  return overlays(args.y, args.y_stride, spec.y_dtype, args.x, args.x_stride,
                  spec.x_dtype) &&
         overlays(args.y, args.y_stride, spec.y_dtype, args.residual,
                  args.residual_stride, spec.residual_dtype) &&
         overlays(args.sum, args.sum_stride, spec.sum_dtype, args.x,
                  args.x_stride, spec.x_dtype) &&
         overlays(args.sum, args.sum_stride, spec.sum_dtype, args.residual,
                  args.residual_stride, spec.residual_dtype) &&
         (rows == 0 || !findPartialOverlapIn(spec, args, lo(args), hi));
}
} // namespace

extern "C" normjit_kernel_spec_t normjit_kernel_spec_default(normjit_op_t op,
                                                             int64_t cols) {
  normjit_kernel_spec_t spec{};
  spec.op = op;
  spec.cols = cols;
  spec.x_dtype = spec.y_dtype = spec.residual_dtype = spec.sum_dtype =
      spec.gamma_dtype = spec.beta_dtype = NORMJIT_F32;
  // The CLI's, spec files' and sweeps' defaults too (the tuning cache's key
  // holds epsilon: a C host's default spec finds what `normjit tune`
  // stored): LayerNorm 1e-5 (PyTorch's), RMSNorm 1e-6 (LLaMA's).
  spec.epsilon = op == NORMJIT_RMS_NORM ? 1e-6f : 1e-5f;
  return spec;
}

extern "C" normjit_status_t
normjit_kernel_spec_validate(const normjit_kernel_spec_t *spec) {
  if (spec && isValidSpec(*spec))
    return NORMJIT_OK;
  return normjit::runtime::validateSpecByField(spec);
}

normjit_status_t
normjit::runtime::validateSpecByField(const normjit_kernel_spec_t *spec) {
  if (!spec)
    return invalid("kernel spec must not be null");
  if (spec->op != NORMJIT_LAYER_NORM && spec->op != NORMJIT_RMS_NORM)
    return invalid("unknown op " + std::to_string(static_cast<int>(spec->op)) +
                   "; expected layer_norm or rms_norm");
  if (spec->cols < 1)
    return invalid("cols must be at least 1, got " +
                   std::to_string(spec->cols));
  if (spec->cols > (int64_t(1) << 30))
    return setError(NORMJIT_UNSUPPORTED,
                    "cols = " + std::to_string(spec->cols) +
                        " is more than normjit supports (2^30)");
  struct {
    const char *name;
    normjit_dtype_t dtype;
    bool used;
  } dtypes[] = {{"x", spec->x_dtype, true},
                {"y", spec->y_dtype, true},
                {"residual", spec->residual_dtype, spec->has_residual != 0},
                {"sum", spec->sum_dtype, spec->store_sum != 0},
                {"gamma", spec->gamma_dtype, spec->has_gamma != 0},
                {"beta", spec->beta_dtype, spec->has_beta != 0}};
  for (const auto &entry : dtypes)
    if (entry.used && !isDType(entry.dtype)) // not a normjit_dtype_t at all
      return invalid(std::string("unknown dtype ") +
                     std::to_string(static_cast<int>(entry.dtype)) + " for " +
                     entry.name + "; expected f32, f16 or bf16");
  if (!(spec->epsilon > 0.0f) || !std::isfinite(spec->epsilon)) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.9g", spec->epsilon);
    return invalid("epsilon must be positive and finite, got " +
                   std::string(text));
  }
  if (spec->store_sum && !spec->has_residual)
    return invalid("store_sum needs a residual: without one the sum would "
                   "only copy x");
  if (spec->store_mean && spec->op == NORMJIT_RMS_NORM)
    return invalid("rms_norm computes no mean; store_mean must be 0");
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_run_args_validate(const normjit_kernel_spec_t *spec,
                          const normjit_run_args_t *args) {
  if (spec && args && isValidSpec(*spec) && isValidRunArgs(*spec, *args))
    return NORMJIT_OK;
  return normjit::runtime::validateRunArgsByField(spec, args);
}

normjit_status_t
normjit::runtime::validateRunArgsByField(const normjit_kernel_spec_t *spec,
                                         const normjit_run_args_t *args) {
  NORMJIT_RETURN_IF_ERROR(validateSpecByField(spec));
  if (!args)
    return invalid("run arguments must not be null");
  if (args->rows < 0)
    return invalid("rows must not be negative, got " +
                   std::to_string(args->rows));
  int64_t cols = spec->cols;
  int64_t rows = args->rows;
  NORMJIT_RETURN_IF_ERROR(checkRows("x", args->x, args->x_stride, cols,
                                    spec->x_dtype, true, rows));
  NORMJIT_RETURN_IF_ERROR(checkRows("residual", args->residual,
                                    args->residual_stride, cols,
                                    spec->residual_dtype,
                                    spec->has_residual != 0, rows));
  NORMJIT_RETURN_IF_ERROR(checkRows("y", args->y, args->y_stride, cols,
                                    spec->y_dtype, true, rows));
  NORMJIT_RETURN_IF_ERROR(checkRows("sum", args->sum, args->sum_stride, cols,
                                    spec->sum_dtype, spec->store_sum != 0,
                                    rows));
  NORMJIT_RETURN_IF_ERROR(checkRows("gamma", args->gamma, 0, cols,
                                    spec->gamma_dtype, spec->has_gamma != 0));
  NORMJIT_RETURN_IF_ERROR(checkRows("beta", args->beta, 0, cols,
                                    spec->beta_dtype, spec->has_beta != 0));
  // mean and rstd: one f32 per row.
  NORMJIT_RETURN_IF_ERROR(checkRows("mean", args->mean, 0, 1, NORMJIT_F32,
                                    spec->store_mean != 0, rows));
  NORMJIT_RETURN_IF_ERROR(checkRows("rstd", args->rstd, 0, 1, NORMJIT_F32,
                                    spec->store_rstd != 0, rows));
  if (args->sum && args->sum == args->y)
    return invalid("y and sum must be different buffers");
  // In place: an output over an input must overlay it element for element,
  // or its rows would overwrite input that other rows (other threads) have
  // not read yet.
  struct Rows {
    const char *name;
    const void *data;
    int64_t stride;
    normjit_dtype_t dtype;
  };
  const Rows inputs[] = {
      {"x", args->x, strideOr(args->x_stride, cols), spec->x_dtype},
      {"residual", args->residual, strideOr(args->residual_stride, cols),
       spec->residual_dtype}};
  const Rows outputs[] = {
      {"y", args->y, strideOr(args->y_stride, cols), spec->y_dtype},
      {"sum", args->sum, strideOr(args->sum_stride, cols), spec->sum_dtype}};
  for (const Rows &out : outputs)
    for (const Rows &in : inputs) {
      if (!out.data || out.data != in.data)
        continue;
      if (normjit_dtype_size(out.dtype) != normjit_dtype_size(in.dtype))
        return invalid(std::string(out.name) + " is the same buffer as " +
                       in.name + ", but its elements (" +
                       normjit_dtype_name(out.dtype) + ") are not the size of " +
                       in.name + "'s (" + normjit_dtype_name(in.dtype) +
                       "): in place needs elements of one size");
      if (out.stride != in.stride)
        return invalid(std::string(out.name) + " is the same buffer as " +
                       in.name + ", but its row stride (" +
                       std::to_string(out.stride) + ") is not " + in.name +
                       "'s (" + std::to_string(in.stride) +
                       "): in place needs the same row stride");
    }
  if (args->mean && args->mean == args->rstd)
    return invalid("mean and rstd must be different buffers");
  if (std::optional<SharedBuffer> shared = findForbiddenSharing(*args))
    return invalid(std::string(shared->output) + " and " + shared->other +
                   " must be different buffers: " +
                   (shared->overParameter
                        ? "every row reads " + std::string(shared->other)
                        : std::string(shared->output) +
                              " holds one value per row"));
  if (auto overlap = findPartialOverlap(*spec, *args))
    return invalid(std::string(overlap->first) + " partly overlaps " +
                   overlap->second +
                   ": an output may only be an input's very buffer (in "
                   "place, element for element), or share no byte with it");
  return NORMJIT_OK;
}

namespace {

/// A descriptor of rows [begin, begin + count) of a row buffer.
normjit_memref2d_t rowsDesc(const void *base, int64_t stride,
                            normjit_dtype_t dtype, int64_t cols, int64_t begin,
                            int64_t count) {
  normjit_memref2d_t desc{};
  if (!base)
    return desc;
  auto *bytes =
      static_cast<char *>(const_cast<void *>(base)) +
      begin * stride * elementBytes(dtype);
  desc.allocated = desc.aligned = bytes;
  desc.sizes[0] = count;
  desc.sizes[1] = cols;
  desc.strides[0] = stride;
  desc.strides[1] = 1;
  return desc;
}

normjit_memref1d_t vectorDesc(const void *base, int64_t length) {
  normjit_memref1d_t desc{};
  if (!base)
    return desc;
  desc.allocated = desc.aligned = const_cast<void *>(base);
  desc.sizes[0] = length;
  desc.strides[0] = 1;
  return desc;
}
} // namespace

namespace {
/// Row elements read or written (x, y, the residual, the stored sum) that
/// a task split off a call of few rows must carry at least: two tasks of
/// 24-32K elements ran 1.1-1.5x faster than one of twice that on two
/// threads (Zen 4), two of 8-16K no faster or slower (0.9-1.0x).
constexpr int64_t kMinSplitElements = 20 << 10;
} // namespace

extern "C" int64_t
normjit_cpu_launch_task_rows(const normjit_kernel_spec_t *spec, int64_t rows,
                             const normjit_cpu_launch_t *launch) {
  if (!spec || !launch || rows < 1 || launch->rows_per_task < 1 ||
      spec->cols < 1)
    return rows < 1 ? 0 : rows;
  if (launch->threads == 1)
    return rows;
  // Fewer tasks than threads: split further while every task keeps enough
  // work to pay for its dispatch (a batch of 16 rows the config leaves in
  // one task of 32-64 KiB, on two cores).
  int64_t streams =
      2 + (spec->has_residual ? 1 : 0) + (spec->store_sum ? 1 : 0);
  int64_t perRow = spec->cols * streams;
  // One task of too little work to split (decode rows): said at once.
  if (rows <= launch->rows_per_task && rows <= kMinSplitElements &&
      rows * perRow < 2 * kMinSplitElements)
    return rows;
  int64_t tasks = (rows - 1) / launch->rows_per_task + 1;
  int64_t byWork = rows > INT64_MAX / perRow
                       ? rows
                       : rows * perRow / kMinSplitElements;
  if (byWork > tasks) {
    int64_t threads = normjit::runtime::ThreadPool::global().size();
    if (launch->threads > 0)
      threads = std::min<int64_t>(threads, launch->threads);
    tasks = std::max(tasks, std::min({threads, rows, byWork}));
  }
  // Tasks of equal size (all but the last): 16 rows at 10 per task are
  // two tasks of 8, not 10 and 6.
  return (rows - 1) / tasks + 1;
}

extern "C" normjit_status_t
normjit_cpu_launch(normjit_cpu_kernel_fn fn, const normjit_kernel_spec_t *spec,
                   const normjit_run_args_t *args,
                   const normjit_cpu_launch_t *launch) {
  if (!fn)
    return invalid("kernel function must not be null");
  NORMJIT_RETURN_IF_ERROR(normjit_run_args_validate(spec, args));
  if (!launch || launch->rows_per_task < 1 || launch->threads < 0)
    return invalid("launch parameters need rows_per_task >= 1 and "
                   "threads >= 0");
  if (args->rows == 0)
    return NORMJIT_OK;
  const normjit_kernel_spec_t s = *spec;
  const normjit_run_args_t a = *args;
  int64_t cols = s.cols;
  int64_t xStride = strideOr(a.x_stride, cols);
  int64_t rStride = strideOr(a.residual_stride, cols);
  int64_t yStride = strideOr(a.y_stride, cols);
  int64_t sStride = strideOr(a.sum_stride, cols);
  auto task = [&](int64_t begin, int64_t end) {
    int64_t count = end - begin;
    normjit_memref2d_t x =
        rowsDesc(a.x, xStride, s.x_dtype, cols, begin, count);
    normjit_memref2d_t residual =
        rowsDesc(a.residual, rStride, s.residual_dtype, cols, begin, count);
    normjit_memref2d_t y =
        rowsDesc(a.y, yStride, s.y_dtype, cols, begin, count);
    normjit_memref2d_t sum =
        rowsDesc(a.sum, sStride, s.sum_dtype, cols, begin, count);
    normjit_memref1d_t gamma = vectorDesc(a.gamma, cols);
    normjit_memref1d_t beta = vectorDesc(a.beta, cols);
    normjit_memref1d_t mean =
        vectorDesc(a.mean ? a.mean + begin : nullptr, count);
    normjit_memref1d_t rstd =
        vectorDesc(a.rstd ? a.rstd + begin : nullptr, count);
    fn(&x, &residual, &gamma, &beta, &y, &sum, &mean, &rstd);
  };
  int64_t grain = normjit_cpu_launch_task_rows(&s, a.rows, launch);
  // One task (decode shapes, one thread): call straight through, with no
  // std::function and no pool.
  // The caller's own streaming stores are fenced before it returns (the
  // workers fence theirs before the pool's join).
  if (grain >= a.rows) {
    task(0, a.rows);
    normjit::runtime::fenceNonTemporalStores();
    return NORMJIT_OK;
  }
  auto &pool = normjit::runtime::ThreadPool::global();
  pool.parallelFor(a.rows, grain, static_cast<unsigned>(launch->threads),
                   task);
  normjit::runtime::fenceNonTemporalStores();
  return NORMJIT_OK;
}
