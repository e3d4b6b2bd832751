#pragma once
#include "loom/autograd/engine.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/autograd/node.hpp"
