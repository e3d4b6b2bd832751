# loom_find_cuda_library(NAME HEADER LIBRARY DEFINE): finds an optional
# library that ships with (or beside) the CUDA toolkit, looking under the
# directories of LOOM_CUDA_LIBRARY_HINTS (each with include/ and lib/: where
# pip's nvidia-* wheels put them), the toolkit, then /usr/local/cuda; a
# library present only as lib<name>.so.<major> (as in those wheels) is taken
# too. When found, loom links it privately, compiles with DEFINE=1, and
# ${DEFINE} is ON in the caller's scope.
set(LOOM_CUDA_LIBRARY_HINTS "" CACHE STRING "extra roots (with include/ and lib/) for cuDNN and NCCL")
function(loom_find_cuda_library name header library define)
  set(${define} OFF PARENT_SCOPE)
  if(NOT LOOM_HAS_CUDA_SOURCES)
    return()
  endif()
  get_filename_component(_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  set(_include_hints "")
  set(_library_hints "")
  foreach(_hint IN LISTS LOOM_CUDA_LIBRARY_HINTS)
    list(APPEND _include_hints ${_hint}/include)
    list(APPEND _library_hints ${_hint}/lib ${_hint}/lib64)
  endforeach()
  find_path(LOOM_${name}_INCLUDE_DIR ${header}
            HINTS ${_include_hints} ${CUDAToolkit_INCLUDE_DIRS} ${_root}/include /usr/local/cuda/include)
  find_library(LOOM_${name}_LIBRARY NAMES ${library} lib${library}.so.9 lib${library}.so.2
               HINTS ${_library_hints} ${CUDAToolkit_LIBRARY_DIR} ${_root}/lib64 ${_root}/lib /usr/local/cuda/lib64
                     /usr/local/cuda/lib)
  if(LOOM_${name}_INCLUDE_DIR AND LOOM_${name}_LIBRARY)
    set(${define} ON PARENT_SCOPE)
    target_include_directories(loom PRIVATE ${LOOM_${name}_INCLUDE_DIR})
    target_link_libraries(loom PRIVATE ${LOOM_${name}_LIBRARY})
    target_compile_definitions(loom PRIVATE ${define}=1)
    message(STATUS "loom: ${name} ON (${LOOM_${name}_LIBRARY})")
  endif()
endfunction()
