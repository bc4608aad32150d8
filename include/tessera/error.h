// Error type for everything a user can cause (bad model, bad input, bad flags).
// The CLI prints what() as one line and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws tessera::Error with the message when the condition is false.
#define TESSERA_CHECK(condition, message)                                   \
  do {                                                                      \
    if (!(condition)) throw ::tessera::Error(std::string() + message);      \
  } while (0)

}  // namespace tessera
