#pragma once
#include "loom/core/device.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/random.hpp"
#include "loom/core/shape.hpp"
#include "loom/core/storage.hpp"
#include "loom/core/tensor.hpp"
