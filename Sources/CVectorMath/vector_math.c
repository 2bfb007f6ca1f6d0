// Header-only module: see include/vector_math.h.
