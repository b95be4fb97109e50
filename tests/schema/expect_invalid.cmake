# Runs validate_json.py on an instance that must be invalid, and passes only if the
# validator rejects it for the expected reason:
#   exit status EXPECT_RC (default 1), exactly EXPECT_COUNT problem lines (default 1), and
#   one of them is at EXPECT_PATH, failed EXPECT_KEYWORD and contains EXPECT_REASON.
# A validator that accepts everything, crashes, or rejects the example for another reason
# fails the test. Usage (what tests/schema/CMakeLists.txt registers):
#   cmake -DPYTHON=/usr/bin/python3 -DVALIDATOR=.../validate_json.py -DSCHEMA=alert
#         -DINSTANCE=FILE [-DSTDIN=FILE] [-DLABEL=FILE:LINE] -DEXPECT_PATH=$.id
#         -DEXPECT_KEYWORD=required -DEXPECT_REASON='id' [-DEXPECT_COUNT=1] [-DEXPECT_RC=1]
#         [-DEXTRA_ARG=--jsonl] -P expect_invalid.cmake
# With STDIN the instance text is piped in (INSTANCE empty: no FILE argument); LABEL is the
# FILE[:LINE] prefix the validator prints (default: INSTANCE).
cmake_minimum_required(VERSION 3.25)

foreach(var PYTHON VALIDATOR SCHEMA)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "expect_invalid.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED EXPECT_RC)
  set(EXPECT_RC 1)
endif()
if(NOT DEFINED EXPECT_COUNT)
  set(EXPECT_COUNT 1)
endif()
if(NOT DEFINED LABEL)
  set(LABEL "${INSTANCE}")
endif()

set(cmd "${PYTHON}" "${VALIDATOR}" "${SCHEMA}")
if(DEFINED EXTRA_ARG AND NOT EXTRA_ARG STREQUAL "")
  list(APPEND cmd "${EXTRA_ARG}")
endif()
if(DEFINED INSTANCE AND NOT INSTANCE STREQUAL "")
  list(APPEND cmd "${INSTANCE}")
endif()
if(DEFINED STDIN AND NOT STDIN STREQUAL "")
  execute_process(COMMAND ${cmd} INPUT_FILE "${STDIN}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
else()
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
endif()

string(REPLACE ";" "," report "${cmd}")
set(report "command: ${report}\nexit status: ${rc}\nstdout:\n${out}stderr:\n${err}")
if(NOT rc STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "expected exit status ${EXPECT_RC}\n${report}")
endif()
if(EXPECT_RC STREQUAL "2")
  return()  # a usage error: the message is on stderr, nothing to match on stdout
endif()

# One problem per line; semicolons would split CMake list items, so neutralise them.
string(REPLACE ";" "," text "${out}")
string(REGEX REPLACE "\n$" "" text "${text}")
string(REPLACE "\n" ";" lines "${text}")
list(LENGTH lines count)
if(text STREQUAL "")
  set(count 0)
endif()
if(NOT count EQUAL EXPECT_COUNT)
  message(FATAL_ERROR "expected ${EXPECT_COUNT} problem line(s), got ${count}: the example "
                      "should be wrong in exactly the way its name says\n${report}")
endif()
if(NOT DEFINED EXPECT_PATH)
  return()
endif()

set(found FALSE)
foreach(line IN LISTS lines)
  string(FIND "${line}" "${LABEL}: ${EXPECT_PATH}: " at_path)
  string(FIND "${line}" "[${EXPECT_KEYWORD}]" at_keyword REVERSE)
  string(FIND "${line}" "${EXPECT_REASON}" at_reason)
  string(LENGTH "${line}" len)
  string(LENGTH "[${EXPECT_KEYWORD}]" klen)
  math(EXPR keyword_end "${at_keyword} + ${klen}")
  if(at_path EQUAL 0 AND at_keyword GREATER 0 AND keyword_end EQUAL len AND at_reason GREATER -1)
    set(found TRUE)
  endif()
endforeach()
if(NOT found)
  message(FATAL_ERROR "no problem line '${LABEL}: ${EXPECT_PATH}: ...${EXPECT_REASON}... "
                      "[${EXPECT_KEYWORD}]'\n${report}")
endif()
