// fused operators (registration filled in as the family is written).
#include "ops/operator.h"

namespace tessera {

void register_fused_operators(OperatorRegistry&) {}

}  // namespace tessera
