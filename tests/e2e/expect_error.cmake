# Rejecting a bad job file: run EXE on JOB alone (an MPI singleton) and under 2 ranks.
# Checks: non-zero exit; alone, stderr is exactly one line matching EXPECT; on 2 ranks the
# error is printed once (mpiexec adds its own notice about the exit code); no output file,
# nor a temporary, is left behind.
file(REMOVE ${OUT})
execute_process(COMMAND ${EXE} run ${JOB} --output ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit for ${JOB}, got 0\n${out}")
endif()
string(STRIP "${err}" err)
if(err MATCHES "\n")
  message(FATAL_ERROR "expected one line on stderr, got:\n${err}")
endif()
if(NOT err MATCHES "^taskreach: error: .*${EXPECT}")
  message(FATAL_ERROR "stderr does not match '${EXPECT}':\n${err}")
endif()

execute_process(COMMAND ${MPIEXEC} -n 2 ${EXE} run ${JOB} --output ${OUT}
                RESULT_VARIABLE rc2 OUTPUT_VARIABLE out2 ERROR_VARIABLE err2)
if(rc2 EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit on 2 ranks for ${JOB}, got 0\n${out2}")
endif()
string(REPLACE ";" "," err2 "${err2}")  # CMake lists split on ";"
string(REGEX MATCHALL "taskreach: error: [^\n]*" lines "${err2}")
list(LENGTH lines n)
if(NOT n EQUAL 1 OR NOT lines MATCHES "${EXPECT}")
  message(FATAL_ERROR "expected the error once on 2 ranks, got ${n}:\n${err2}")
endif()

file(GLOB leftovers ${OUT}*)
if(leftovers)
  message(FATAL_ERROR "output left behind: ${leftovers}")
endif()
message(STATUS "rejected as expected (exit ${rc}, ${rc2} on 2 ranks): ${err}")
