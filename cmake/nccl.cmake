# NCCL, for the NCCL process group (src/dist/nccl_process_group.cpp), in
# builds with the CUDA backend only: nccl.h and libnccl are looked for under
# the CUDA toolkit, then the system. When found, loom links it and that file
# is compiled with LOOM_WITH_NCCL=1; otherwise it compiles its stubs
# (loom::dist::nccl_built() is false, make_nccl_process_group throws).
set(LOOM_WITH_NCCL OFF)
if(LOOM_HAS_CUDA_SOURCES)
  get_filename_component(_loom_cuda_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  find_path(LOOM_NCCL_INCLUDE_DIR nccl.h
            HINTS ${CUDAToolkit_INCLUDE_DIRS} ${_loom_cuda_root}/include /usr/local/cuda/include)
  find_library(LOOM_NCCL_LIBRARY nccl
               HINTS ${CUDAToolkit_LIBRARY_DIR} ${_loom_cuda_root}/lib64 ${_loom_cuda_root}/lib
                     /usr/local/cuda/lib64 /usr/local/cuda/lib)
  if(LOOM_NCCL_INCLUDE_DIR AND LOOM_NCCL_LIBRARY)
    set(LOOM_WITH_NCCL ON)
    target_include_directories(loom PRIVATE ${LOOM_NCCL_INCLUDE_DIR})
    target_link_libraries(loom PRIVATE ${LOOM_NCCL_LIBRARY})
    target_compile_definitions(loom PRIVATE LOOM_WITH_NCCL=1)
    message(STATUS "loom: NCCL ON (${LOOM_NCCL_LIBRARY})")
  else()
    message(STATUS "loom: NCCL not found (nccl.h / libnccl); the NCCL process group is not built")
  endif()
endif()
