#include "base/error.hpp"

#include <cstring>

namespace tandem {

void throwErrno(std::string_view operation, int errnoValue) {
  throw Error(ErrorKind::Failed, concat(operation, " failed: ", std::strerror(errnoValue)), errnoValue);
}

}  // namespace tandem
