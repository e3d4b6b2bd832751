#pragma once
#include "loom/nn/attention.hpp"
#include "loom/nn/container.hpp"
#include "loom/nn/conv.hpp"
#include "loom/nn/init.hpp"
#include "loom/nn/layers.hpp"
#include "loom/nn/module.hpp"
