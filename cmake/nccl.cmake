# NCCL, for the NCCL process group (src/dist/nccl_process_group.cpp), in
# builds with the CUDA backend only. When found, that file is compiled with
# LOOM_WITH_NCCL=1; otherwise it compiles its stubs
# (loom::dist::nccl_built() is false, make_nccl_process_group throws).
include(${CMAKE_CURRENT_LIST_DIR}/cuda_library.cmake)
loom_find_cuda_library(NCCL nccl.h nccl LOOM_WITH_NCCL)
if(LOOM_HAS_CUDA_SOURCES AND NOT LOOM_WITH_NCCL)
  message(STATUS "loom: NCCL not found (nccl.h / libnccl); the NCCL process group is not built")
endif()
