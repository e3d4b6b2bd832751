# cuDNN, for conv2d on CUDA (cuda/convolution_cudnn.cpp), in builds with the
# CUDA backend only. When found, that file is compiled with
# LOOM_WITH_CUDNN=1; otherwise conv2d on CUDA composes im2col + GEMM.
include(${CMAKE_CURRENT_LIST_DIR}/cuda_library.cmake)
loom_find_cuda_library(cuDNN cudnn.h cudnn LOOM_WITH_CUDNN)
if(LOOM_HAS_CUDA_SOURCES AND NOT LOOM_WITH_CUDNN)
  message(STATUS "loom: cuDNN not found (cudnn.h / libcudnn); conv2d on CUDA composes im2col + GEMM")
endif()
