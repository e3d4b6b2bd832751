# cpp-httplib for loom-serve and its tests (Debian: libcpp-httplib-dev).
# Defines the interface target loom_httplib when httplib.h is found; callers
# test `if(TARGET loom_httplib)`. Debian ships httplib as a compiled library
# whose header only declares, built with OpenSSL, zlib and Brotli support:
# the same CPPHTTPLIB_* defines must be set here (class layouts depend on
# them), from pkg-config when it has them. A header-only httplib.h (no
# library found) is used as it is.
include_guard(GLOBAL)

find_path(LOOM_HTTPLIB_INCLUDE_DIR httplib.h)
find_library(LOOM_HTTPLIB_LIBRARY cpp-httplib)
if(NOT LOOM_HTTPLIB_INCLUDE_DIR)
  message(STATUS "loom-serve: not built (no httplib.h; install libcpp-httplib-dev)")
  return()
endif()

add_library(loom_httplib INTERFACE)
target_include_directories(loom_httplib SYSTEM INTERFACE ${LOOM_HTTPLIB_INCLUDE_DIR})
target_link_libraries(loom_httplib INTERFACE Threads::Threads)
if(LOOM_HTTPLIB_LIBRARY)
  set(_loom_httplib_defines -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT -DCPPHTTPLIB_BROTLI_SUPPORT)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(LOOM_HTTPLIB_PC QUIET cpp-httplib)
    if(LOOM_HTTPLIB_PC_FOUND)
      set(_loom_httplib_defines ${LOOM_HTTPLIB_PC_CFLAGS_OTHER})
    endif()
  endif()
  target_compile_options(loom_httplib INTERFACE ${_loom_httplib_defines})
  target_link_libraries(loom_httplib INTERFACE ${LOOM_HTTPLIB_LIBRARY})
  message(STATUS "loom-serve: cpp-httplib ${LOOM_HTTPLIB_LIBRARY} (${_loom_httplib_defines})")
else()
  message(STATUS "loom-serve: header-only cpp-httplib in ${LOOM_HTTPLIB_INCLUDE_DIR}")
endif()
