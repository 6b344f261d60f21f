#===- AOTGpuExamples.cmake - the GPU AOT example, built against an install -===#
# Installs the project into a scratch prefix, compiles the kernels of
# examples/aot/gpu_kernels.toml with the build's `normjit aot` for sm_80 and
# sm_90 (PTX, and cubins when ptxas is at hand), checks the files and the
# manifest, builds the C host examples/aot/gpu_host.c with the generated C
# source against the install (C99, warnings are errors), and checks with
# readelf, ldd and nm that it links nothing of LLVM, MLIR, libnormjit.so or
# the CUDA toolkit. The test examples/aot-gpu-run then runs the host: on a
# machine without a CUDA driver it exits 77, which CTest counts as skipped.
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
run(WHAT "normjit aot --device cuda"
  COMMAND ${BUILD_DIR}/bin/normjit aot
    --specs ${SOURCE_DIR}/examples/aot/gpu_kernels.toml
    --out ${SCRATCH}/gpu-kernels
  OUTPUT generated)
message(STATUS "${generated}")

# PTX for both chips; cubins exactly when `normjit aot` says it made them.
set(dir ${SCRATCH}/gpu-kernels)
set(expected aot_gpu_kernels.h aot_gpu_kernels.c aot_gpu_kernels.manifest.toml
  aot_gpu_kernels.sm_80.ptx aot_gpu_kernels.sm_90.ptx)
if(generated MATCHES "cubins: made with ptxas")
  list(APPEND expected aot_gpu_kernels.sm_80.cubin aot_gpu_kernels.sm_90.cubin)
  set(cubins true)
else()
  set(cubins false)
endif()
foreach(file ${expected})
  if(NOT EXISTS ${dir}/${file})
    message(FATAL_ERROR "normjit aot did not write ${file}")
  endif()
endforeach()
file(READ ${dir}/aot_gpu_kernels.sm_90.ptx ptx)
if(NOT ptx MATCHES "\\.target sm_90" OR
   NOT ptx MATCHES "\\.entry gpu_layer_norm_bf16\\(" OR
   NOT ptx MATCHES "\\.entry gpu_layer_norm_bf16_unaligned\\(" OR
   NOT ptx MATCHES "\\.entry gpu_rms_norm_residual_f16\\(")
  message(FATAL_ERROR "aot_gpu_kernels.sm_90.ptx lacks the sm_90 target or "
    "an entry")
endif()
file(READ ${dir}/aot_gpu_kernels.manifest.toml manifest)
if(NOT manifest MATCHES "device = \"cuda\"\ntargets = \\[\"sm_80\", \"sm_90\"\\]"
   OR NOT manifest MATCHES "cubins = ${cubins}"
   OR NOT manifest MATCHES "config = \"#norm.config<gpu, threads_per_row = 32, rows_per_block = 4>\"")
  message(FATAL_ERROR "unexpected manifest:\n${manifest}")
endif()

run(WHAT "configuring examples/aot"
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/aot -B ${SCRATCH}/build
    -G Ninja -DCMAKE_PREFIX_PATH=${SCRATCH}/install
    -DNORMJIT_AOT_GPU_DIR=${dir} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_COMPILE_WARNING_AS_ERROR=ON)
run(WHAT "building examples/aot (GPU)"
  COMMAND ${CMAKE_COMMAND} --build ${SCRATCH}/build)

# Nothing of LLVM, MLIR, the JIT library or the CUDA toolkit (the runtime
# dlopens the driver), neither needed nor inside.
set(exe ${SCRATCH}/build/aot-gpu-c)
run(WHAT "readelf -d aot-gpu-c" COMMAND readelf -d ${exe} OUTPUT dynamic)
run(WHAT "ldd aot-gpu-c" COMMAND ldd ${exe} OUTPUT libraries)
foreach(text dynamic libraries)
  if(${text} MATCHES "libLLVM|libMLIR|libnormjit|libclang|libcuda|libcudart|libnvrtc")
    message(FATAL_ERROR "aot-gpu-c links LLVM, MLIR, libnormjit.so or a CUDA "
      "library:\n${${text}}")
  endif()
endforeach()
run(WHAT "nm aot-gpu-c" COMMAND nm -C ${exe} OUTPUT symbols)
if(symbols MATCHES "llvm::|mlir::")
  message(FATAL_ERROR "aot-gpu-c holds LLVM or MLIR code")
endif()
message(STATUS "the GPU AOT host builds against the runtime alone")
