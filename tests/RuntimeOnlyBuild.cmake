#===- RuntimeOnlyBuild.cmake - build the runtime without MLIR/LLVM ---------===#
# Configures the project with NORMJIT_BUILD_COMPILER=OFF in a scratch tree,
# builds the runtime and its tests, runs them, and checks that nothing of
# LLVM or MLIR ends up in the runtime library.
#===----------------------------------------------------------------------===#
file(REMOVE_RECURSE ${BINARY_DIR})
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -G Ninja
    -DNORMJIT_BUILD_COMPILER=OFF -DNORMJIT_BUILD_BENCHMARKS=OFF
    -DCMAKE_BUILD_TYPE=Release -DMLIR_DIR=/nonexistent -DLLVM_DIR=/nonexistent
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring without the compiler failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} -j 2
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the runtime without MLIR/LLVM failed")
endif()
execute_process(COMMAND ${CMAKE_CTEST_COMMAND} --test-dir ${BINARY_DIR}
    -E builds-without-mlir --output-on-failure
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "runtime tests failed in the runtime-only build")
endif()
file(GLOB libs ${BINARY_DIR}/lib/libNormJITRuntime*)
foreach(lib ${libs})
  execute_process(COMMAND nm -C ${lib} OUTPUT_VARIABLE symbols)
  if(symbols MATCHES "llvm::|mlir::")
    message(FATAL_ERROR "${lib} refers to LLVM or MLIR symbols")
  endif()
endforeach()
message(STATUS "runtime builds, passes and links without MLIR/LLVM")
