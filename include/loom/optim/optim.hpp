#pragma once
#include "loom/optim/optimizer.hpp"
#include "loom/optim/schedule.hpp"
