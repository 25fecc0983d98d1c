#include <stdio.h>
#include "emc_kernels.h"

int emc_flush_stdout(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) return -1;
    return 0;
}
