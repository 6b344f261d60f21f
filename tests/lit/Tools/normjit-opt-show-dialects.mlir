// RUN: normjit-opt --show-dialects | FileCheck %s
// normjit-opt registers only the dialects normjit IR uses: those it is
// written in and those its lowerings produce (so lowered IR reads back).

// CHECK: Available Dialects: arith,builtin,cf,func,gpu,llvm,math,memref,norm,scf,vector,x86vector{{$}}
