#pragma once
#include "loom/train/adapt.hpp"
#include "loom/train/progress.hpp"
#include "loom/train/recipe.hpp"
#include "loom/train/task.hpp"
#include "loom/train/trainer.hpp"
