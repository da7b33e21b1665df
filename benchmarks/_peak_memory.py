"""Peak resident memory of the running process, for benchmarks that measure each arm in its own process."""

from __future__ import annotations

import resource


def peak_rss_gb() -> float:
    """This process's peak resident memory (GB).

    ``VmHWM`` of ``/proc/self/status``, not ``getrusage``'s ``ru_maxrss``: Linux carries ``ru_maxrss`` over
    ``execve``, so a child started by ``subprocess`` reports at least its parent's peak (for example the parent's
    while it wrote the benchmark data).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024**2  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux
