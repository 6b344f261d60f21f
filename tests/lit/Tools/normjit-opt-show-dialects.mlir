// RUN: normjit-opt --show-dialects | FileCheck %s
// normjit-opt registers only the dialects normjit IR uses.

// CHECK: Available Dialects: arith,builtin,cf,func,gpu,memref,norm{{$}}
