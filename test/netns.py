"""Run a test scenario inside a network namespace of its own, to count what its processes send.

The namespace has loopback plus one fake external interface (``espnet0``: an address, the
multicast route and a default route; a veth pair, or a dummy where the kernel has it). Every
process the scenario starts inherits the namespace, so ``espnet0``'s transmit counter counts
exactly what they sent off loopback, whatever else runs on the machine, and nothing can leave
the machine even when a scenario does not restrict DDS.

As a script (``python netns.py MODULE:FUNCTION JSON_ARGUMENT``, run under ``unshare --net``)
it sets the interfaces up, calls the function and prints one JSON line: the function's result
and espnet0's transmit counters before and after.
"""
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
IFACE = "espnet0"
MARK = "NETNS_RESULT "


def unshare_prefixes(namespace="--net"):
    """``unshare`` command prefixes for a new ``namespace``: as root, then in a user namespace."""
    yield ["unshare", namespace, "--"]  # root (CI)
    yield ["unshare", "--user", "--map-root-user", namespace, "--"]  # unprivileged


def unavailable():
    """None where a network namespace with a fake interface can be made here, else why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2)"
    errors = []
    for prefix in unshare_prefixes():
        probe = prefix + [sys.executable, str(Path(__file__).resolve()), "--check"]
        result = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return None
        errors.append(" ".join(prefix[:-1]) + ": " + (result.stderr.strip() or "failed")[-200:])
    return "cannot make a network namespace here (" + "; ".join(errors) + ")"


def run(target, argument=None, env=None, timeout=600):
    """Runs ``target`` ("module:function", a module in test/) in a fresh namespace.

    Returns {"result": ..., "tx_bytes": sent on espnet0, "tx_packets": ..., "output": ...}.
    """
    errors = []
    for prefix in unshare_prefixes():
        cmd = prefix + [sys.executable, str(Path(__file__).resolve()), target,
                        json.dumps(argument)]
        proc = subprocess.run(cmd, env=env, cwd=str(HERE), capture_output=True, text=True,
                              timeout=timeout)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
        if lines:
            report = json.loads(lines[-1][len(MARK):])
            report["output"] = proc.stdout + proc.stderr
            return report
        errors.append("%s (exit %d):\n%s%s" % (" ".join(cmd[:len(prefix)]), proc.returncode,
                                               proc.stdout[-3000:], proc.stderr[-3000:]))
    raise RuntimeError("the namespace scenario %s did not report:\n%s" % (target, "\n".join(errors)))


def _ip(*args):
    subprocess.run(["ip"] + list(args), check=True, capture_output=True, text=True)


def _set_up_interfaces():
    _ip("link", "set", "lo", "up")
    try:
        _ip("link", "add", IFACE, "type", "dummy")
    except subprocess.CalledProcessError:  # no dummy module: a veth pair does the same here
        _ip("link", "add", IFACE, "type", "veth", "peer", "name", IFACE + "p")
        _ip("link", "set", IFACE + "p", "addrgenmode", "none")
        _ip("link", "set", IFACE + "p", "up")
    # No IPv6 link-local address: the kernel would send its own neighbour discovery.
    _ip("link", "set", IFACE, "addrgenmode", "none")
    _ip("addr", "add", "10.213.0.1/24", "dev", IFACE)
    _ip("link", "set", IFACE, "up")
    _ip("route", "add", "224.0.0.0/4", "dev", IFACE)
    _ip("route", "add", "default", "via", "10.213.0.2", "dev", IFACE)


def tx_counters():
    """espnet0's transmit counters from /proc/net/dev (per namespace; /sys shows the host's)."""
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() == IFACE:
            fields = data.split()
            return {"tx_bytes": int(fields[8]), "tx_packets": int(fields[9])}
    raise RuntimeError("no %s in /proc/net/dev" % IFACE)


def _main(argv):
    _set_up_interfaces()
    if argv[1] == "--check":
        return 0
    module_name, function_name = argv[1].split(":")
    sys.path.insert(0, str(HERE))
    function = getattr(importlib.import_module(module_name), function_name)
    before = tx_counters()
    result = function(json.loads(argv[2]))
    after = tx_counters()
    report = {"result": result, "tx_bytes": after["tx_bytes"] - before["tx_bytes"],
              "tx_packets": after["tx_packets"] - before["tx_packets"]}
    sys.stdout.flush()
    os.write(1, (MARK + json.dumps(report) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
