# LANEGATE_SANITIZE=ON builds everything with ASan + UBSan, and makes UBSan fatal so
# that a test run fails on undefined behaviour instead of printing and going on.
if(LANEGATE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
