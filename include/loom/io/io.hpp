#pragma once
#include "loom/io/atomic_file.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/io/png.hpp"
#include "loom/io/safetensors.hpp"
