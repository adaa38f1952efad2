"""Freed heap back to the operating system, for the long-lived processes of a CPU run."""

from __future__ import annotations

import ctypes
import gc


def trim_heap() -> None:
    """Collect garbage, then return glibc's freed heap to the OS (`malloc_trim`): freed tensors
    below glibc's mmap threshold otherwise stay in the process's resident memory."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
