//===- AOTInternal.h - helpers the AOT sources share ------------*- C++ -*-===//
//
// Part of normjit. Names of ops and dtypes as spec files and manifests spell
// them, exact float text, and the first line that marks a manifest: private
// to the AOT library.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_LIB_AOT_AOTINTERNAL_H
#define NORMJIT_LIB_AOT_AOTINTERNAL_H

#include "normjit/runtime/kernel.h"

#include "llvm/ADT/StringRef.h"

#include <string>

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

} // namespace normjit::aot::detail

#endif // NORMJIT_LIB_AOT_AOTINTERNAL_H
