//===- Npy.h - reading and writing NumPy .npy files -------------*- C++ -*-===//
//
// Part of normjit. Reads and writes the .npy format for the element types
// kernels use, so that tools, tests and AOT hosts exchange arrays with numpy.
//
// bf16 has no numpy dtype: by this project's convention a bf16 array is
// stored as '<u2' holding the raw bfloat16 bit patterns. numpy users convert
// with `(a.astype(np.uint32) << 16).view(np.float32)` or
// `a.view(ml_dtypes.bfloat16)`.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_RUNTIME_NPY_H
#define NORMJIT_RUNTIME_NPY_H

#include "normjit/runtime/dtype.h"
#include "normjit/runtime/status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace normjit::runtime {

/// A row-major array read from or written to a .npy file.
struct NpyArray {
  /// Element type: '<f4' is NORMJIT_F32, '<f2' NORMJIT_F16 and '<u2'
  /// NORMJIT_BF16 (raw bfloat16 bits).
  normjit_dtype_t dtype = NORMJIT_F32;
  /// The dimensions as in the file; empty for a rank-0 (scalar) array.
  std::vector<int64_t> shape;
  /// The elements, little-endian and row-major: the product of `shape` times
  /// the dtype's size bytes.
  std::vector<uint8_t> data;

  /// The product of `shape` (1 for rank 0); -1 if a dimension is negative or
  /// the product does not fit in int64_t.
  int64_t numElements() const;
};

/// Reads the .npy file at `path` (format version 1.0, 2.0 or 3.0) into `out`.
/// Returns NORMJIT_IO_ERROR when the file cannot be opened or read and
/// NORMJIT_INVALID_ARGUMENT when it is not a well-formed .npy file of a
/// supported dtype (little-endian f4, f2 or u2, C order) whose data is
/// exactly as long as its shape needs. `out` is left unchanged on failure.
normjit_status_t readNpy(const std::string &path, NpyArray &out);

/// Writes `array` to `path` as a .npy file (version 1.0, laid out as
/// numpy.save does). The file is written to a temporary in the same directory
/// and renamed over `path`, so `path` is either replaced whole or left as it
/// was. Returns NORMJIT_INVALID_ARGUMENT when `array.data` does not match its
/// shape and dtype, and NORMJIT_IO_ERROR when the file cannot be written.
normjit_status_t writeNpy(const std::string &path, const NpyArray &array);

/// A .npy file written beside its destination but not yet put in place:
/// several outputs are staged first and committed only when all of them
/// could be written, so that a failure leaves every destination as it was.
/// Dropped without commit(), it removes its temporary.
class StagedNpy {
public:
  StagedNpy() = default;
  StagedNpy(StagedNpy &&other) noexcept;
  StagedNpy &operator=(StagedNpy &&other) noexcept;
  StagedNpy(const StagedNpy &) = delete;
  StagedNpy &operator=(const StagedNpy &) = delete;
  ~StagedNpy();

  /// Renames the temporary over the destination. A destination that is not
  /// a regular file (a device, a FIFO) is written only now, in place, from
  /// the array given to stageNpy, which must still be alive.
  normjit_status_t commit();

  /// Commits all `count` of `files` or none: each destination that is a
  /// regular file is exchanged with its temporary (or, where the file system
  /// cannot exchange, moved aside first), then devices and FIFOs are written;
  /// when one fails, the files already put in place are put back as they
  /// were (new ones removed) and its error is returned. Bytes already
  /// written to a device or FIFO cannot be taken back: those go last.
  /// `failed`, when given, is set to the index of the file that failed.
  static normjit_status_t commitAll(StagedNpy *const *files, size_t count,
                                    size_t *failed = nullptr);

private:
  friend normjit_status_t stageNpy(const std::string &path,
                                   const NpyArray &array, StagedNpy &out);
  void discard();
  std::string path, target, temporary, header;
  const NpyArray *inPlace = nullptr;
};

/// Writes `array` as writeNpy does, to a temporary beside `path`, for
/// `out.commit()` to put in place. Checks and errors as writeNpy's.
normjit_status_t stageNpy(const std::string &path, const NpyArray &array,
                          StagedNpy &out);

} // namespace normjit::runtime

#endif // NORMJIT_RUNTIME_NPY_H
