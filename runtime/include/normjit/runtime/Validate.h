//===- Validate.h - the checks of specs and run arguments, by field -*- C++ -*-//
//
// Part of normjit. The field-by-field checks behind normjit_kernel_spec_validate
// and normjit_run_args_validate, for the runtime's tests.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_RUNTIME_VALIDATE_H
#define NORMJIT_RUNTIME_VALIDATE_H

#include "normjit/runtime/kernel.h"

namespace normjit::runtime {

/// normjit_kernel_spec_validate and normjit_run_args_validate take these
/// only when a quick check of every rule at once fails, to find the first
/// rule broken and say why; the quick checks must accept exactly what these
/// accept (a test holds them to the same verdicts).
normjit_status_t validateSpecByField(const normjit_kernel_spec_t *spec);
normjit_status_t validateRunArgsByField(const normjit_kernel_spec_t *spec,
                                        const normjit_run_args_t *args);

} // namespace normjit::runtime

#endif // NORMJIT_RUNTIME_VALIDATE_H
