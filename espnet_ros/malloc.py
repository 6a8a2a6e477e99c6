"""glibc's allocator, tuned for frames whose size changes (ROS-free; no-ops off glibc).

Outside ``inference`` on purpose: importing it costs no torch, so the node sets its allocator
before the stop signals and torch (node_main).

Three choices, each measured on the node (docs/benchmarks.md, "Memory after a large frame"):

- ``set_malloc_reuse``: freed blocks up to 1 GiB stay in the heap for the next frame instead
  of being unmapped, so per-frame activations and logits do not page-fault in fresh memory;
- ``release_memory``: ``malloc_trim``, asked after a large frame, so that its memory does not
  stay resident for good;
- ``one_arena``: every thread allocates from the main heap. glibc otherwise gives threads
  (DDS receive threads, the node's model and publish threads) heaps of their own whose free
  top ``malloc_trim`` does not give back: +40 MB kept after one 4096x3072 PNG.
"""
import ctypes
import ctypes.util
import functools

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


@functools.lru_cache(maxsize=None)  # find_library runs ldconfig: once per process
def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _mallopt(param, value):
    mallopt = getattr(_libc(), "mallopt", None)
    return bool(mallopt(param, value)) if mallopt is not None else False


def one_arena():
    """All threads share the main heap; returns success. Call before any thread starts:
    threads that already allocated keep their own heaps."""
    return _mallopt(_M_ARENA_MAX, 1)


def release_memory():
    """Hands freed heap memory back to the system (``malloc_trim``); returns success.

    With ``malloc_reuse`` glibc keeps what a large frame freed; after one, resident memory
    would stay at that frame's peak for good.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False


def set_malloc_reuse(enabled=True, threshold=1 << 30):
    """Keeps freed blocks up to ``threshold`` bytes in the heap; returns success.

    Fresh mmap'ed blocks cost a page fault per 4 KiB page on first touch: for 1024x512 logits
    that is 10,000 faults per frame. ``enabled=False`` restores glibc's defaults.
    """
    mmap_threshold = threshold if enabled else 128 * 1024
    trim_threshold = 2 * threshold if enabled else 128 * 1024
    return _mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and \
        _mallopt(_M_TRIM_THRESHOLD, trim_threshold)
