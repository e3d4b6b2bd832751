#pragma once
#include "loom/ops/autocast.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/nn.hpp"
#include "loom/ops/reduction.hpp"
#include "loom/ops/shape.hpp"
