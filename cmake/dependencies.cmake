# Every third-party dependency, found once, as imported targets (whose include
# directories the compiler treats as SYSTEM, so their warnings are not ours).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(PahoMqttCpp REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(tl-expected REQUIRED)
find_package(CLI11 2.1 CONFIG REQUIRED)  # every command line (libcli11-dev 2.1.2)
find_package(SQLite3 REQUIRED)
find_package(JPEG REQUIRED)     # the overlay encoder: libjpeg-turbo reads BGR rows itself
find_package(TIFF REQUIRED)     # scan TIFFs the walker does not copy directly, decoded in memory (libtiff-dev)
find_package(OpenSSL REQUIRED)  # SHA-256 of evidence and images (libssl-dev)
pkg_check_modules(MODBUS REQUIRED IMPORTED_TARGET libmodbus)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)

# Debian 12 ships OpenCV's CMake package only in libopencv-dev, which drags in GTK
# and Qt. We install just core, imgproc and imgcodecs and make imported targets here.
find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
foreach(module core imgproc imgcodecs)
  find_library(OPENCV_${module}_LIBRARY opencv_${module} REQUIRED)
  add_library(OpenCV::${module} SHARED IMPORTED)
  set_target_properties(OpenCV::${module} PROPERTIES
    IMPORTED_LOCATION ${OPENCV_${module}_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${OPENCV_INCLUDE_DIR})
endforeach()
set_property(TARGET OpenCV::imgproc PROPERTY INTERFACE_LINK_LIBRARIES OpenCV::core)
set_property(TARGET OpenCV::imgcodecs PROPERTY INTERFACE_LINK_LIBRARIES OpenCV::imgproc)
