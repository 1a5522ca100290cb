# ctest: the torch-only GPU check still builds from LibTorch alone and passes its CPU checks.
# Exit 3 ("no CUDA": Debian's LibTorch is CPU-only) or 0 (a GPU was there and agreed) pass.
#   cmake -DSRC=<tests/gpu> -DBIN=<build dir> -DTORCH_DIR=<LibTorch cmake dir> -P ctest_check.cmake
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${BIN} -DCMAKE_BUILD_TYPE=Release -DTorch_DIR=${TORCH_DIR}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gpu check: configure failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BIN} -j 2 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0 OR out MATCHES "warning:")
  message(FATAL_ERROR "gpu check: the build failed or warned (${rc}):\n${out}")
endif()
execute_process(COMMAND ${BIN}/gpu_check --quick RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT (rc EQUAL 3 OR rc EQUAL 0))
  message(FATAL_ERROR "gpu check: exit ${rc}, expected 3 (no CUDA) or 0")
endif()
