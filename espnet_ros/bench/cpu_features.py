"""What CPU a benchmark ran on, and which vector instructions its kernels were allowed to use.

The CPU model and flags come from /proc/cpuinfo; the kernels in effect can be fewer than the
flags: ``ATEN_CPU_CAPABILITY`` caps PyTorch's own kernels and ``ONEDNN_MAX_CPU_ISA`` (or the
older ``DNNL_MAX_CPU_ISA``) caps oneDNN, which PyTorch's convolutions and OpenVINO's CPU plugin
use. With both set to AVX2, an AVX-512 machine runs the code an AVX2-only CPU runs (not at
its speed), so the image -> labels goal follows the kernels, not the flags.
"""
import os
from collections import OrderedDict

# The flags that decide which kernels run: fp32 FMA, AVX-512, int8 dot products, bf16, AMX.
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
         "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
GOAL_AVX512, GOAL_AVX2 = 5.0, 3.0   # image -> labels speed-up over the original code


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:  # not Linux
        return ""


def _field(cpuinfo, name):
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def _torch_kernels():
    try:
        import torch
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # an old torch without the query
        return "unknown"


def describe(cpuinfo=None, env=None, torch_kernels=None):
    """{model, flags, torch kernels, caps, avx512, goal} of this machine (arguments: for tests)."""
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    env = os.environ if env is None else env
    flags = set(_field(cpuinfo, "flags").split())
    kernels = _torch_kernels() if torch_kernels is None else torch_kernels
    caps = OrderedDict((name, env[name]) for name in CAPS if env.get(name))
    onednn_cap = caps.get("ONEDNN_MAX_CPU_ISA") or caps.get("DNNL_MAX_CPU_ISA") or ""
    avx512 = ("avx512f" in flags and kernels.upper().startswith("AVX512")
              and (not onednn_cap or onednn_cap.upper().startswith("AVX512")))
    name = _field(cpuinfo, "model name") or "unknown"
    if _field(cpuinfo, "cpu family"):  # a cloud CPU may be named only "AMD EPYC"
        name += " (family %s, model %s)" % (_field(cpuinfo, "cpu family"),
                                            _field(cpuinfo, "model"))
    return OrderedDict([
        ("model", name),
        ("flags", [flag for flag in FLAGS if flag in flags]),
        ("torch_kernels", kernels), ("caps", caps), ("avx512", avx512),
        ("goal", GOAL_AVX512 if avx512 else GOAL_AVX2)])


def text(cpu):
    """One line for a report."""
    line = "CPU: %s; flags: %s; PyTorch kernels: %s" % (
        cpu["model"], " ".join(cpu["flags"]) or "none of " + " ".join(FLAGS),
        cpu["torch_kernels"])
    if cpu["caps"]:
        line += "; capped by %s" % ", ".join("%s=%s" % kv for kv in cpu["caps"].items())
    return line + "; goal x%.0f (%s)" % (cpu["goal"], "AVX-512" if cpu["avx512"]
                                          else "no AVX-512 kernels")
