#ifndef OPTIMIZERD_CVECTORMATH_H
#define OPTIMIZERD_CVECTORMATH_H

// The module's umbrella header: every header Swift sees (an explicit list, so adding a header
// changes this file and invalidates cached module builds).
#include "acclip_kernel.h"
#include "adafactor_kernel.h"
#include "adam_kernel.h"
#include "kernel_variant.h"
#include "momo_kernel.h"
#include "mtadam_kernel.h"
#include "sgd_kernel.h"
#include "vector_math.h"

#endif
