#===- cmake/NormJITMLIRLibs.cmake - the MLIR/LLVM libraries normjit links -===#
# Defines NormJITMLIRLibs, the one target that every normjit target using MLIR
# or LLVM links (never `MLIR` by name):
#   NORMJIT_STATIC_LLVM=OFF (default): the shared libMLIR.so, which brings
#     libLLVM.so: fast links for development.
#   NORMJIT_STATIC_LLVM=ON: the static MLIR and LLVM component libraries
#     (lib{MLIR,LLVM}*.a), LLVM with the X86 and NVPTX targets only, for the
#     relocatable bundle (scripts/bundle.sh, preset `bundle`).
# Included from the top-level CMakeLists.txt after find_package(MLIR).
#===----------------------------------------------------------------------===#

add_library(NormJITMLIRLibs INTERFACE)
if(NOT NORMJIT_STATIC_LLVM)
  target_link_libraries(NormJITMLIRLibs INTERFACE MLIR)
  return()
endif()

# add_mlir_library/add_llvm_executable link their LLVM components as static
# libraries instead of libLLVM.so.
set(LLVM_LINK_LLVM_DYLIB OFF)

# The LLVM components: the CPU JIT (ORC, X86 code generation, LLVM's
# optimizer), PTX generation (NVPTX) and what MLIR's translations use. Their
# own dependencies come from LLVMExports.cmake.
set(NORMJIT_LLVM_COMPONENTS
  Core Support TargetParser BinaryFormat Analysis TransformUtils
  IRReader IRPrinter AsmParser BitReader BitWriter Linker Passes ipo
  InstCombine AggressiveInstCombine ScalarOpts Vectorize Coroutines
  ObjCARCOpts Instrumentation CodeGen MC MCParser Object Target
  FrontendOpenMP FrontendOffloading
  OrcJIT OrcShared OrcTargetProcess JITLink ExecutionEngine RuntimeDyld
  PerfJITEvents
  X86CodeGen X86AsmParser X86Desc X86Info
  NVPTXCodeGen NVPTXDesc NVPTXInfo)
llvm_map_components_to_libnames(NORMJIT_LLVM_STATIC_LIBS
  ${NORMJIT_LLVM_COMPONENTS})
add_library(NormJITLLVMStaticLibs INTERFACE)
target_link_libraries(NormJITLLVMStaticLibs INTERFACE
  ${NORMJIT_LLVM_STATIC_LIBS})

# The MLIR libraries: the CPU pipeline and JIT, normjit-opt, and the GPU
# pipeline (gpu -> nvvm -> LLVM IR -> PTX). Each imported target brings the
# MLIR libraries it depends on. Only the archive members that are referenced
# end up in a binary, so a library listed here costs nothing unless used.
set(NORMJIT_MLIR_STATIC_LIBS
  # Core, parser, passes.
  MLIRIR MLIRSupport MLIRParser MLIRAsmParser MLIRPass MLIRAnalysis
  MLIRTransforms MLIRTransformUtils MLIRRewrite MLIRDialect
  MLIRSideEffectInterfaces MLIRViewLikeInterface MLIRBytecodeOpInterface
  MLIROptLib
  # Dialects and their transforms.
  MLIRFuncDialect MLIRArithDialect MLIRArithTransforms MLIRMathDialect
  MLIRMathTransforms MLIRMemRefDialect MLIRMemRefTransforms MLIRSCFDialect
  MLIRSCFTransforms MLIRVectorDialect MLIRVectorTransforms
  MLIRControlFlowDialect MLIRUBDialect MLIRLLVMDialect MLIRIndexDialect
  MLIRGPUDialect MLIRGPUTransforms MLIRGPUUtils MLIRNVVMDialect
  MLIRNVGPUDialect MLIRX86VectorDialect MLIRX86VectorTransforms
  # Conversions to the LLVM dialect (CPU and GPU).
  MLIRLLVMCommonConversion MLIRConvertToLLVMInterface MLIRConvertToLLVMPass
  MLIRSCFToControlFlow MLIRVectorToLLVM MLIRVectorToLLVMPass MLIRVectorToSCF
  MLIRMathToLLVM MLIRArithToLLVM MLIRMemRefToLLVM MLIRControlFlowToLLVM
  MLIRFuncToLLVM MLIRUBToLLVM MLIRIndexToLLVM MLIRReconcileUnrealizedCasts
  MLIRGPUToNVVMTransforms MLIRNVVMToLLVM MLIRNVGPUToNVVM
  # Translation to LLVM IR, NVVM target, execution engine.
  MLIRTargetLLVMIRExport MLIRBuiltinToLLVMIRTranslation
  MLIRLLVMToLLVMIRTranslation MLIRNVVMToLLVMIRTranslation
  MLIRGPUToLLVMIRTranslation MLIROpenMPToLLVMIRTranslation
  MLIRToLLVMIRTranslationRegistration MLIRTargetLLVM MLIRNVVMTarget
  MLIRExecutionEngine MLIRExecutionEngineUtils)

# Debian builds the static MLIR libraries with LLVM_LINK_LLVM_DYLIB, so their
# interfaces name the shared `LLVM` (and a few, MLIRExecutionEngine among
# them, the shared `MLIR` in place of their MLIR dependencies). Point them at
# the static LLVM components instead; the MLIR dependencies hidden behind
# `MLIR` are in the list above.
foreach(lib ${MLIR_EXPORTED_TARGETS})
  if(NOT TARGET ${lib})
    continue()
  endif()
  get_target_property(type ${lib} TYPE)
  if(NOT type STREQUAL "STATIC_LIBRARY")
    continue()
  endif()
  get_target_property(deps ${lib} INTERFACE_LINK_LIBRARIES)
  if(NOT deps)
    continue()
  endif()
  list(TRANSFORM deps REPLACE "^LLVM$" NormJITLLVMStaticLibs)
  list(REMOVE_ITEM deps MLIR)
  set_target_properties(${lib} PROPERTIES INTERFACE_LINK_LIBRARIES "${deps}")
endforeach()

# LLVMSupport's interface names libz3.so (23 MB, for an SMT solver API that
# normjit never calls) and the shared zlib and zstd: take the static zlib and
# zstd instead, and no z3, so a binary needs nothing beyond the C and C++
# runtimes. Their archives are not built for shared libraries that export
# their symbols: --exclude-libs keeps those symbols local (as the bundle's
# version script does anyway), so libnormjit.so links too.
get_target_property(deps LLVMSupport INTERFACE_LINK_LIBRARIES)
list(FILTER deps EXCLUDE REGEX "libz3")
find_library(NORMJIT_ZLIB_STATIC NAMES libz.a)
find_library(NORMJIT_ZSTD_STATIC NAMES libzstd.a)
if(NORMJIT_ZLIB_STATIC AND NORMJIT_ZSTD_STATIC)
  add_library(NormJITStaticCompression INTERFACE)
  target_link_libraries(NormJITStaticCompression INTERFACE
    ${NORMJIT_ZLIB_STATIC} ${NORMJIT_ZSTD_STATIC})
  target_link_options(NormJITStaticCompression INTERFACE
    "LINKER:--exclude-libs,libz.a:libzstd.a")
  list(TRANSFORM deps REPLACE "^(ZLIB::ZLIB|zstd::libzstd_shared)$"
    NormJITStaticCompression)
  list(REMOVE_DUPLICATES deps)
endif()
set_target_properties(LLVMSupport PROPERTIES INTERFACE_LINK_LIBRARIES "${deps}")

target_link_libraries(NormJITMLIRLibs INTERFACE
  ${NORMJIT_MLIR_STATIC_LIBS} NormJITLLVMStaticLibs)
