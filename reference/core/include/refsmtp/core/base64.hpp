#pragma once
// Base64 (RFC 4648 §4) for SASL exchanges (RFC 4954 §4). Strict: padding required, no
// whitespace, no characters outside the alphabet.
#include <optional>
#include <string>
#include <string_view>

namespace refsmtp::core {

std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace refsmtp::core
