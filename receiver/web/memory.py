"""Keep the heap from creeping: pin glibc's mmap threshold.

glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB). After
that, the big tables the router rebuilds over and over (the dedupe store's dictionary, resized
as keys come and go) are carved from the heap instead, which fragments and never shrinks: RSS
crept up about 6 MiB over 100,000 webhooks. Pinned at glibc's default of 128 KiB, large blocks
stay in mmap and go back to the system when freed (measured: flat RSS over the same soak).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

M_MMAP_THRESHOLD = -3  # <malloc.h>
THRESHOLD = 128 * 1024
# Setting glibc's own variable also pins the threshold; the operator's value wins.
ENV = "MALLOC_MMAP_THRESHOLD_"


def pin_mmap_threshold(environ: Mapping[str, str] = os.environ) -> bool:
    """True if the threshold is now pinned by us; False off glibc or when the operator set it."""
    if ENV in environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (or no mallopt at all)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
