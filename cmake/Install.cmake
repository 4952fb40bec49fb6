# Installs public headers, libraries, the CLI and a CMake package so that a
# program outside the tree can `find_package(Loom)` and link Loom::Runtime.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LOOM_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Loom)
set(LOOM_EXPORTED_LIBS loom_mlir LoomCompiler LoomDsl LoomCuda LoomDeviceHeaders LoomDeviceEmu LoomRuntime
  LoomAutotune LoomOps)

install(TARGETS ${LOOM_EXPORTED_LIBS} EXPORT LoomTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS loom loom-opt RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

foreach(area compiler dsl cuda device runtime autotune ops)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${area}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.td")
endforeach()
# TableGen output and Version.h.
install(DIRECTORY ${PROJECT_BINARY_DIR}/compiler/include/ ${PROJECT_BINARY_DIR}/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.inc" PATTERN "*.h")

install(EXPORT LoomTargets NAMESPACE Loom:: DESTINATION ${LOOM_INSTALL_CMAKEDIR})
# The same targets for consumers of the build tree (examples/ builds that way).
export(EXPORT LoomTargets NAMESPACE Loom:: FILE ${PROJECT_BINARY_DIR}/cmake/Loom/LoomTargets.cmake)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/LoomConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/Loom/LoomConfig.cmake INSTALL_DESTINATION ${LOOM_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/Loom/LoomConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/Loom/LoomConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/Loom/LoomConfigVersion.cmake
        DESTINATION ${LOOM_INSTALL_CMAKEDIR})
