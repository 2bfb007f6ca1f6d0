/* CRC-32C speed (the checksum of every log record, spooled body and snapshot) next to the floor: a
   plain read of the same bytes (64-bit words summed, vectorised by the compiler).

       cc -O3 -march=native -ISources/CChecksum/include benchmarks/crc32c_speed.c \
          Sources/CChecksum/crc32c.c -o /tmp/crc32c_speed -lpthread && /tmp/crc32c_speed

   Two sizes: 1 MB (in cache: the instruction's speed) and 32 MB (from memory, an 8M step's body). */
#include "crc32c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t read_all(const uint64_t *words, size_t count) {
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++) sum += words[i];
    return sum;
}

int main(void) {
    size_t sizes[] = {1 << 20, 32 << 20};
    for (int s = 0; s < 2; s++) {
        size_t size = sizes[s];
        int repeats = (int)((2u << 30) / size);
        uint64_t *words = malloc(size);
        for (size_t i = 0; i < size / 8; i++) words[i] = i * 0x9E3779B97F4A7C15ull;
        uint64_t sink = 0;
        double best[3] = {1e9, 1e9, 1e9};
        for (int round = 0; round < 3; round++) {
            double t0 = now();
            for (int r = 0; r < repeats; r++) sink += optimizerd_crc32c(0, words, size);
            double t1 = now();
            for (int r = 0; r < repeats / 4 + 1; r++) sink += optimizerd_crc32c_portable(0, words, size);
            double t2 = now();
            for (int r = 0; r < repeats; r++) sink += read_all(words, size / 8);
            double t3 = now();
            double times[3] = {(t1 - t0) / repeats, (t2 - t1) / (repeats / 4 + 1), (t3 - t2) / repeats};
            for (int k = 0; k < 3; k++)
                if (times[k] < best[k]) best[k] = times[k];
        }
        printf("%5zu KiB: crc32c %.1f GB/s, table %.1f GB/s, plain read %.1f GB/s -> crc32c / read %.2f  (%llu)\n",
               size >> 10, size / best[0] / 1e9, size / best[1] / 1e9, size / best[2] / 1e9, best[2] / best[0],
               (unsigned long long)(sink & 1));
        free(words);
    }
    return 0;
}
