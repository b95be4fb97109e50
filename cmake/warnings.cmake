# lanegate_warnings: an INTERFACE target every lanegate target links, so that the
# warning set lives in one place. Third-party headers come in as SYSTEM includes
# (imported targets), so they do not trip these.
add_library(lanegate_warnings INTERFACE)
target_compile_options(lanegate_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(LANEGATE_WERROR)
  target_compile_options(lanegate_warnings INTERFACE -Werror)
endif()
