#include "transport/link.hpp"

#include <charconv>

#include "base/error.hpp"

namespace tandem {

std::string urgentEndpoint(const std::string& endpoint) {
  auto colon = endpoint.rfind(':');
  unsigned port = 0;
  auto digits = std::string_view(endpoint).substr(colon == std::string::npos ? endpoint.size() : colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (!endpoint.starts_with("tcp://") || colon <= 6 || ec != std::errc() || end != digits.data() + digits.size() ||
      port == 0 || port >= 65535)
    failBadInput("'", endpoint, "' is not an address like tcp://127.0.0.1:7000 (a port below 65535: the next one is used too)");
  return endpoint.substr(0, colon + 1) + std::to_string(port + 1);
}

Link Link::listen(const std::string& endpoint) {
  std::string urgent = urgentEndpoint(endpoint);
  return Link{Channel::listen(endpoint), Channel::listen(urgent)};
}

Link Link::connect(const std::string& endpoint) {
  std::string urgent = urgentEndpoint(endpoint);
  return Link{Channel::connect(endpoint), Channel::connect(urgent)};
}

}  // namespace tandem
