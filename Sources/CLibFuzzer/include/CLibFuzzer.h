#ifndef OPTIMIZERD_CLIBFUZZER_H
#define OPTIMIZERD_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

// libFuzzer's entry for programs that have their own main (SwiftPM gives every executable one).
// Defined only when linked with -sanitize=fuzzer; OptimizerFuzz calls it only in that build.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
