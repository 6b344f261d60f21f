//===- AOTInternal.h - helpers the AOT sources share ------------*- C++ -*-===//
//
// Part of normjit. Names of ops and dtypes as spec files and manifests spell
// them, exact float text, comments, and the first line that marks a
// manifest: private to the AOT library (shared by its CPU and GPU halves).
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_LIB_AOT_AOTINTERNAL_H
#define NORMJIT_LIB_AOT_AOTINTERNAL_H

#include "normjit/runtime/kernel.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <string>

namespace normjit::aot {
struct AotKernel;
} // namespace normjit::aot

namespace normjit::aot::detail {

/// The first line of every manifest; writeAotOutput replaces a directory
/// only if it holds a file that starts with it.
constexpr llvm::StringLiteral kManifestHeader = "# normjit aot manifest";

/// The suffix of manifest file names.
constexpr llvm::StringLiteral kManifestSuffix = ".manifest.toml";

/// "layer_norm" or "rms_norm".
llvm::StringRef getOpName(normjit_op_t op);

/// The shortest decimal text that reads back as exactly `value` (finite),
/// always with a '.' or an exponent, so that TOML reads it as a float.
std::string formatFloat(float value);

/// `text` as a TOML basic string, quotes included.
std::string quoteToml(llvm::StringRef text);

/// Rewrites an error's text as "<prefix>: <text>", keeping its status.
llvm::Error prefixError(llvm::Error error, const llvm::Twine &prefix);

/// "kernel 'NAME'", with " (FILE:LINE)" when a spec file defines it.
std::string describeKernel(const AotKernel &kernel);

/// "f32", "f16", "bf16" ("?" for anything else).
const char *dtypeName(normjit_dtype_t dtype);

/// "layer_norm, cols 4096, x bf16, y bf16, gamma bf16, eps 1e-05".
std::string describeSpec(const normjit_kernel_spec_t &spec);

/// Wraps `text` into comment lines of at most 80 columns, the first one
/// starting with `prefix`, the others with `next`.
std::string wrapComment(llvm::StringRef text, llvm::StringRef prefix,
                        llvm::StringRef next = " *");

/// `spec` with flags 0 or 1 and unused dtypes f32, so that equal kernels
/// give equal libraries (and a manifest read back gives the same one).
normjit_kernel_spec_t normalizeSpec(normjit_kernel_spec_t spec);

/// The spec keys of a [[kernel]] table of a manifest (op to eps), one a
/// line.
std::string getManifestSpec(const normjit_kernel_spec_t &spec);

/// normjit's version, as manifests and headers record it.
std::string getVersionString();

} // namespace normjit::aot::detail

#endif // NORMJIT_LIB_AOT_AOTINTERNAL_H
