# LANEGATE_SANITIZE=ON builds everything with ASan + UBSan, and makes UBSan fatal so
# that a test run fails on undefined behaviour instead of printing and going on.
if(LANEGATE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# LANEGATE_FUZZ=ON (the fuzz preset) instruments everything for libFuzzer's coverage; only
# the fuzz targets link libFuzzer itself (-fsanitize=fuzzer, tests/fuzz/CMakeLists.txt).
if(LANEGATE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "LANEGATE_FUZZ needs clang (the fuzz preset uses clang++-14)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
