#ifndef OPTIMIZERD_CLOWBIT_H
#define OPTIMIZERD_CLOWBIT_H

// The module's umbrella header: the low-bit state kernels (DESIGN §10, docs/lowbit-state.md).
#include "bf16_adam_kernel.h"
#include "int8_adam_kernel.h"

#endif
