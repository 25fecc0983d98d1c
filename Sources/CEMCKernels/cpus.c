#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include "emc_kernels.h"

// The CPUs this process may run on: its affinity mask where there is one (Slurm, taskset, cgroup cpusets), else the
// CPUs online; at least 1.
int emc_cpu_count(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count > 0) return count;
    }
#endif
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}
