#pragma once
#include "loom/omni/decoder.hpp"
#include "loom/omni/encoders.hpp"
#include "loom/omni/fusion.hpp"
#include "loom/omni/losses.hpp"
#include "loom/omni/metrics.hpp"
#include "loom/omni/model.hpp"
