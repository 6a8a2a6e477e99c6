"""Peak memory of this process over a measurement window (Linux RSS; CUDA allocator)."""
import ctypes
import ctypes.util
import gc
from pathlib import Path


def _status_kb(field, path="/proc/self/status"):
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def release_free_memory():
    """Returns freed heap memory to the OS (gc, then glibc malloc_trim), so that RSS shows what
    is in use rather than what earlier measurements left cached; False where not glibc."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0)) if name else False
    except (OSError, AttributeError):
        return False


def rss_mb():
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


class PeakMemory:
    """``start()`` resets the peak where the kernel allows it; ``peak_mb()`` reads it.

    RSS: VmHWM after writing 5 to /proc/self/clear_refs (Linux 4.0+); where the reset is not
    allowed the value is the peak since the process started (``reset`` says which).
    CUDA: torch's allocator peak (TensorRT's own allocations are not included).
    """

    def __init__(self, device=None):
        self.device = device
        self.reset = False

    def start(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False
        if self._cuda():
            import torch
            torch.cuda.reset_peak_memory_stats(self.device)

    def _cuda(self):
        return self.device is not None and getattr(self.device, "type", str(self.device)) == "cuda"

    def rss_mb(self):
        kb = _status_kb("VmHWM")
        return None if kb is None else kb / 1024.0

    def cuda_mb(self):
        if not self._cuda():
            return None
        import torch
        return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
