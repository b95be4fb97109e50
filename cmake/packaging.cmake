# The Debian package, built by CPack: `make package` (the package preset, then
# `cpack -G DEB`) gives build/package/lanegate_<version>_amd64.deb with
#   /usr/bin/{lanegated,lanegatectl,lanegate-sim}
#   the unit, sysusers.d and tmpfiles.d snippets (directories from pkg-config systemd)
#   /etc/lanegate/{lanegate.yaml,profiles/*.yaml,ims/substances.yaml}   (conffiles)
#   /usr/share/lanegate/schemas/*.json, /usr/share/doc/lanegate/*.md
#   man pages made by help2man from each binary's --help (lanegated.8, lanegatectl.1,
#   lanegate-sim.1): the --help texts are kept complete, so the pages cannot drift
#   maintainer scripts in cmake/debian/ (user and groups, tmpfiles, enable not start)

find_program(HELP2MAN help2man)
# Not under the sanitizers: the pages run each binary's --help, and a sanitizer's report
# at exit would fail the build for nothing a page shows.
if(HELP2MAN AND NOT LANEGATE_SANITIZE)
  option(LANEGATE_MANPAGES "Make man pages with help2man (on when it is installed)" ON)
else()
  option(LANEGATE_MANPAGES "Make man pages with help2man (on when it is installed)" OFF)
endif()

set(LANEGATE_ETC_DIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/lanegate)
install(FILES config/lanegate.yaml DESTINATION ${LANEGATE_ETC_DIR})
file(GLOB LANEGATE_PROFILES RELATIVE ${CMAKE_SOURCE_DIR}/config
     ${CMAKE_SOURCE_DIR}/config/profiles/*.yaml)
list(SORT LANEGATE_PROFILES)
set(LANEGATE_CONFFILES lanegate.yaml ${LANEGATE_PROFILES} ims/substances.yaml)
foreach(f ${LANEGATE_PROFILES})
  install(FILES config/${f} DESTINATION ${LANEGATE_ETC_DIR}/profiles)
endforeach()
install(FILES config/ims/substances.yaml DESTINATION ${LANEGATE_ETC_DIR}/ims)
install(DIRECTORY config/schemas/ DESTINATION ${CMAKE_INSTALL_DATADIR}/lanegate/schemas)
file(GLOB LANEGATE_DOCS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${LANEGATE_DOCS} README.md cmake/debian/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Compressed as Debian wants them: gzip -9n (no name or time inside).
function(lanegate_gzip source output)
  add_custom_command(OUTPUT ${output} COMMAND gzip -9nc ${source} > ${output}
                     DEPENDS ${source} VERBATIM)
endfunction()
lanegate_gzip(${CMAKE_SOURCE_DIR}/cmake/debian/changelog
              ${CMAKE_BINARY_DIR}/packaging/changelog.gz)
set(LANEGATE_PACKAGE_FILES ${CMAKE_BINARY_DIR}/packaging/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/packaging/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR}
        OPTIONAL)

if(LANEGATE_MANPAGES)
  if(NOT HELP2MAN)
    message(FATAL_ERROR "LANEGATE_MANPAGES needs help2man (Debian package help2man)")
  endif()
  set(man_lanegated 8 "the gateway daemon of a customs inspection lane")
  set(man_lanegatectl 1 "control, health and offline analysis for lanegated")
  set(man_lanegate-sim 1 "simulated X-ray scanners and IMS detectors for lanegate")
  foreach(bin lanegated lanegatectl lanegate-sim)
    list(GET man_${bin} 0 section)
    list(GET man_${bin} 1 name)
    set(raw ${CMAKE_BINARY_DIR}/packaging/${bin}.${section})
    add_custom_command(
      OUTPUT ${raw}
      COMMAND ${HELP2MAN} --no-info --no-discard-stderr --section=${section} --name=${name}
              --version-string=${PROJECT_VERSION} --output=${raw} $<TARGET_FILE:${bin}>
      DEPENDS ${bin} VERBATIM)
    lanegate_gzip(${raw} ${raw}.gz)
    list(APPEND LANEGATE_PACKAGE_FILES ${raw}.gz)
    install(FILES ${raw}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
endif()
add_custom_target(package_files ALL DEPENDS ${LANEGATE_PACKAGE_FILES})

# dpkg's control files: the maintainer scripts as they are, conffiles made here.
set(conffiles "")
foreach(f ${LANEGATE_CONFFILES})
  string(APPEND conffiles "${LANEGATE_ETC_DIR}/${f}\n")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/packaging/conffiles "${conffiles}")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lanegate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "the lanegate authors")
set(CPACK_PACKAGE_CONTACT "lanegate dev <dev@lanegate.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "customs lane gateway: X-ray and trace detectors to MQTT")
# CPack 3.25 writes the summary as the synopsis and this, whole, as the extended text.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "lanegated runs on a customs inspection lane. It reads the lane's cargo X-ray
scanner and ion-mobility trace detectors over Modbus, analyses scans and
spectra, and publishes every hit to the targeting centre over MQTT, keeping
each alert on disk until the broker has it.

This package holds the daemon, the lanegatectl command line, the lanegate-sim
device simulators, the systemd unit and an example configuration.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# systemd-sysusers and systemd-tmpfiles in postinst; userdel and groupdel (passwd,
# essential) in postrm.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 252)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/cmake/debian/postinst ${CMAKE_SOURCE_DIR}/cmake/debian/prerm
    ${CMAKE_SOURCE_DIR}/cmake/debian/postrm ${CMAKE_BINARY_DIR}/packaging/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
include(CPack)
