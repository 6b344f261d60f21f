#===- ExamplesBuild.cmake - build the host examples against an install -----===#
# Installs the project into a scratch prefix, then configures, builds and
# runs each example in examples/ with find_package(normjit) against it, as a
# user's host project would.
#===----------------------------------------------------------------------===#
file(REMOVE_RECURSE ${SCRATCH})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR}
    --prefix ${SCRATCH}/install
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "installing normjit failed")
endif()
foreach(example ${EXAMPLES})
  set(dir ${SCRATCH}/${example})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/${example} -B ${dir}
      -G Ninja -DCMAKE_PREFIX_PATH=${SCRATCH}/install -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
    RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "configuring example ${example} failed")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${dir} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "building example ${example} failed")
  endif()
  execute_process(COMMAND ${dir}/${example} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "example ${example} failed")
  endif()
endforeach()
message(STATUS "examples built against the installed package and ran")
