# cuDNN, for conv2d on CUDA (cuda/convolution_cudnn.cpp), in builds with the
# CUDA backend only. When found, that file is compiled with
# LOOM_WITH_CUDNN=1; otherwise conv2d on CUDA composes im2col + GEMM.
include(${CMAKE_CURRENT_LIST_DIR}/cuda_library.cmake)
loom_find_cuda_library(cuDNN cudnn.h cudnn LOOM_WITH_CUDNN)
if(LOOM_HAS_CUDA_SOURCES AND NOT LOOM_WITH_CUDNN)
  message(STATUS "loom: cuDNN not found (cudnn.h / libcudnn); conv2d on CUDA composes im2col + GEMM")
endif()

# cuDNN's C++ frontend (header-only; scripts/install-deps.sh puts the headers
# of PyPI's nvidia-cudnn-frontend in /usr/local/share/cudnn-frontend-VERSION/
# include): the graph API's fused attention, cuda/attention_cudnn.cpp,
# compiled with LOOM_WITH_CUDNN_FRONTEND=1 when it is found beside cuDNN.
set(LOOM_WITH_CUDNN_FRONTEND OFF)
if(LOOM_WITH_CUDNN)
  # A cached location whose headers have gone (moved, or another version) is looked up again.
  if(LOOM_CUDNN_FRONTEND_INCLUDE_DIR AND NOT EXISTS "${LOOM_CUDNN_FRONTEND_INCLUDE_DIR}/cudnn_frontend.h")
    unset(LOOM_CUDNN_FRONTEND_INCLUDE_DIR CACHE)
  endif()
  file(GLOB _loom_frontend_dirs LIST_DIRECTORIES true /usr/local/share/cudnn-frontend-*/include)
  list(SORT _loom_frontend_dirs COMPARE NATURAL ORDER DESCENDING)  # the newest first
  find_path(LOOM_CUDNN_FRONTEND_INCLUDE_DIR cudnn_frontend.h
            HINTS ${LOOM_cuDNN_INCLUDE_DIR} ${_loom_frontend_dirs})
  if(LOOM_CUDNN_FRONTEND_INCLUDE_DIR)
    set(LOOM_WITH_CUDNN_FRONTEND ON)
    # SYSTEM: the vendor headers' own warnings are not loom's.
    target_include_directories(loom SYSTEM PRIVATE ${LOOM_CUDNN_FRONTEND_INCLUDE_DIR})
    target_compile_definitions(loom PRIVATE LOOM_WITH_CUDNN_FRONTEND=1)
    # The frontend's own experimental engines compile kernels at run time.
    target_link_libraries(loom PRIVATE CUDA::nvrtc)
    message(STATUS "loom: cuDNN frontend ON (${LOOM_CUDNN_FRONTEND_INCLUDE_DIR}): cuDNN fused attention")
  else()
    message(STATUS "loom: cuDNN frontend not found (cudnn_frontend.h); the cuDNN fused attention is left out")
  endif()
endif()
