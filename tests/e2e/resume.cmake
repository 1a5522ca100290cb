# A run stopped by a real SIGTERM after STOP jobs, then resumed on the same rank count.
# Checks: the stopped run exits 4, leaves no output file and says how to resume, keeps STOP
# durable results; the resumed run exits 0 and writes OUT (compared by test_e2e_tiny).
file(REMOVE_RECURSE ${OUT} ${OUT}.work)
execute_process(COMMAND ${CMAKE_COMMAND} -E env TASKREACH_STOP_AFTER_JOBS=${STOP}
                        ${MPIEXEC} -n 2 -x TASKREACH_STOP_AFTER_JOBS ${EXE} run ${JOB} --output ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 4)
  message(FATAL_ERROR "stopped run: expected exit 4, got ${rc}\n${out}\n${err}")
endif()
if(EXISTS ${OUT})
  message(FATAL_ERROR "stopped run left an output file")
endif()
if(NOT err MATCHES "resume with: taskreach run .* --resume")
  message(FATAL_ERROR "stopped run did not say how to resume:\n${err}")
endif()
file(GLOB kept ${OUT}.work/jobs/*.res)
list(LENGTH kept n)
if(NOT n EQUAL ${STOP})
  message(FATAL_ERROR "expected ${STOP} durable results, found ${n}")
endif()
execute_process(COMMAND ${MPIEXEC} -n 2 ${EXE} run ${JOB} --output ${OUT} --resume
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "resumed run failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "stopped after ${STOP} jobs (exit 4), resumed")
