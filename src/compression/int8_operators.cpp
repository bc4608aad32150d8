// Operators of the int8 compression method, registered in the "tessera" domain.
#include "compression/compression_operators.h"
#include "ops/operator.h"

namespace tessera {

void register_int8_operators(OperatorRegistry& /*registry*/) {
  // The method's operators are added here as they land.
}

}  // namespace tessera
