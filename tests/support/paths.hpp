// Where the build put the things tests run.
#pragma once

namespace tandem::test {

inline constexpr const char* kTandemBinary = TANDEM_BINARY;
inline constexpr const char* kTestGuest = TANDEM_TEST_GUEST;

}  // namespace tandem::test
