// The whole loom API: #include <loom/loom.hpp>
#pragma once
#include "loom/autograd/autograd.hpp"
#include "loom/core/core.hpp"
#include "loom/nn/nn.hpp"
#include "loom/ops/ops.hpp"
#include "loom/optim/optim.hpp"
