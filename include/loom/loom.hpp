// The whole loom API: #include <loom/loom.hpp>
#pragma once
#include "loom/autograd/autograd.hpp"
#include "loom/core/core.hpp"
#include "loom/data/data.hpp"
#include "loom/dist/dist.hpp"
#include "loom/io/io.hpp"
#include "loom/models/models.hpp"
#include "loom/nn/nn.hpp"
#include "loom/omni/omni.hpp"
#include "loom/ops/ops.hpp"
#include "loom/optim/optim.hpp"
#include "loom/train/train.hpp"
