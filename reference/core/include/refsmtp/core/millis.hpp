#pragma once
// Time as the sans-IO sessions see it: an input, in milliseconds since an epoch the host chooses.
// No module below net/ reads a clock.
#include <chrono>

namespace refsmtp::core {

using Millis = std::chrono::milliseconds;

}  // namespace refsmtp::core
