#pragma once
#include "loom/models/gpt.hpp"
#include "loom/models/image_classifier.hpp"
