#ifndef EMC_CLONES_H
#define EMC_CLONES_H

// AVX-512 and AVX2 versions of a loop beside the baseline, chosen when the program loads (GNU ifunc). They compute the
// same values as long as the loop is selects, single adds and multiplies with no reassociation and no contraction
// (files with products say `#pragma clang fp contract(off)`).
#if defined(__x86_64__) && defined(__clang__)
#define EMC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EMC_CLONES
#endif

#endif
