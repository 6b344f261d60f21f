#===- AOTExamples.cmake - the AOT example, built against an install -------===#
# Installs the project into a scratch prefix, compiles the kernels of
# examples/aot/kernels.toml with the build's `normjit aot`, builds the C and
# C++ hosts of examples/aot against the install and the generated library
# (warnings are errors: the generated header is C99 and C++17 clean), checks
# with readelf, ldd and nm that neither links anything of LLVM or MLIR nor
# libnormjit.so, and runs them: as they are, with CPU features switched off
# (the dispatch falls back to the generic x86-64 target), and with none of
# the targets' features (a clear error).
#===----------------------------------------------------------------------===#
file(REMOVE_RECURSE ${SCRATCH})

function(run)
  cmake_parse_arguments(RUN "" "WHAT;OUTPUT" "COMMAND" ${ARGN})
  execute_process(COMMAND ${RUN_COMMAND} RESULT_VARIABLE rc
    OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "${RUN_WHAT} failed (${rc}):\n${out}${err}")
  endif()
  if(RUN_OUTPUT)
    set(${RUN_OUTPUT} "${out}${err}" PARENT_SCOPE)
  endif()
endfunction()

run(WHAT "installing normjit"
  COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${SCRATCH}/install)
run(WHAT "normjit aot"
  COMMAND ${BUILD_DIR}/bin/normjit aot
    --specs ${SOURCE_DIR}/examples/aot/kernels.toml --no-cache
    --out ${SCRATCH}/kernels
  OUTPUT generated)
message(STATUS "${generated}")
run(WHAT "configuring examples/aot"
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/aot -B ${SCRATCH}/build
    -G Ninja -DCMAKE_PREFIX_PATH=${SCRATCH}/install
    -DNORMJIT_AOT_DIR=${SCRATCH}/kernels -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_COMPILE_WARNING_AS_ERROR=ON)
run(WHAT "building examples/aot" COMMAND ${CMAKE_COMMAND} --build ${SCRATCH}/build)

foreach(host aot-c aot-cpp)
  set(exe ${SCRATCH}/build/${host})
  # Nothing of LLVM, MLIR or the JIT library, neither needed nor inside.
  run(WHAT "readelf -d ${host}" COMMAND readelf -d ${exe} OUTPUT dynamic)
  run(WHAT "ldd ${host}" COMMAND ldd ${exe} OUTPUT libraries)
  foreach(text dynamic libraries)
    if(${text} MATCHES "libLLVM|libMLIR|libnormjit|libclang")
      message(FATAL_ERROR "${host} links LLVM, MLIR or libnormjit.so:\n"
        "${${text}}")
    endif()
  endforeach()
  run(WHAT "nm ${host}" COMMAND nm -C ${exe} OUTPUT symbols)
  if(symbols MATCHES "llvm::|mlir::")
    message(FATAL_ERROR "${host} holds LLVM or MLIR code")
  endif()

  run(WHAT "${host}" COMMAND ${exe} OUTPUT out)
  message(STATUS "${host}:\n${out}")
  # No AVX-512 and no AVX2: both kernels fall back to generic x86-64.
  run(WHAT "${host} without avx512f and avx2"
    COMMAND ${CMAKE_COMMAND} -E env NORMJIT_DISABLE_CPU_FEATURES=avx512f,avx2
      ${exe}
    OUTPUT out)
  string(REGEX MATCHALL "on x86-64: ok" generic "${out}")
  list(LENGTH generic count)
  if(NOT count EQUAL 2)
    message(FATAL_ERROR "${host} did not fall back to x86-64:\n${out}")
  endif()
  # Without SSE2 no target runs: a clear error and exit code 1. (The first
  # feature x86-64-v4 misses is sse2 on an AVX-512 host, avx512bw or
  # another on others.)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env NORMJIT_DISABLE_CPU_FEATURES=sse2 ${exe}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 1 OR NOT err MATCHES
      "layer_norm_bf16 failed: unsupported: AOT kernel 'layer_norm_bf16' has no variant for this CPU \\(x86-64-v4 needs [a-z0-9_]+, x86-64-v3 needs sse2, x86-64 needs sse2\\)")
    message(FATAL_ERROR "${host} without sse2 gave ${rc}:\n${out}${err}")
  endif()
endforeach()

# A host project in C alone (no C++ enabled, so linked by the C compiler)
# links the runtime too: its target brings the C++ standard library.
file(WRITE ${SCRATCH}/c-only/CMakeLists.txt "
cmake_minimum_required(VERSION 3.25)
project(normjit_c_only LANGUAGES C)
find_package(normjit 0.4 REQUIRED)
add_library(aot_kernels STATIC IMPORTED)
set_target_properties(aot_kernels PROPERTIES
  IMPORTED_LOCATION \"${SCRATCH}/kernels/libaot_kernels.a\"
  INTERFACE_INCLUDE_DIRECTORIES \"${SCRATCH}/kernels\"
  INTERFACE_LINK_LIBRARIES normjit::runtime)
add_executable(aot-c-only \"${SOURCE_DIR}/examples/aot/main.c\")
target_link_libraries(aot-c-only PRIVATE aot_kernels m)
")
run(WHAT "configuring a C-only host"
  COMMAND ${CMAKE_COMMAND} -S ${SCRATCH}/c-only -B ${SCRATCH}/c-only/build
    -G Ninja -DCMAKE_PREFIX_PATH=${SCRATCH}/install -DCMAKE_BUILD_TYPE=Release)
run(WHAT "building a C-only host"
  COMMAND ${CMAKE_COMMAND} --build ${SCRATCH}/c-only/build)
run(WHAT "the C-only host" COMMAND ${SCRATCH}/c-only/build/aot-c-only
  OUTPUT out)
message(STATUS "aot-c-only:\n${out}")
message(STATUS "the AOT hosts link the runtime alone, run and pass")
