#pragma once
#include "loom/data/bpe.hpp"
#include "loom/data/dataset.hpp"
#include "loom/data/idx.hpp"
#include "loom/data/loader.hpp"
#include "loom/data/tensor_cache.hpp"
#include "loom/data/text.hpp"
#include "loom/data/trimodal.hpp"
