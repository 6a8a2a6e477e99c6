"""GPU frequency sweep: time, power and energy per frame at pinned clocks, and the sensitivity.

The ESPNet paper's sensitivity to GPU frequency is the percentage change of execution time
over the percentage change of frequency. Here, for each pair of neighbouring pinned clocks
f_low < f_high with times t_low, t_high (the model's inference p50, argmax included),

    sensitivity = ((t_low - t_high) / t_low) / ((f_high - f_low) / f_low)

both changes taken from the lower clock, signed so that a network that gets faster with the
clock is positive. A network whose time is all GPU arithmetic (t proportional to 1/f) gives
f_low / f_high, the ``clock_bound`` value each pair reports beside it; one limited by memory
or the CPU gives less (0 when the clock does not matter).
"""
from collections import OrderedDict

from . import clocks as gpu_clocks

TIME_KEY = "inference_ms_p50"


def sensitivity(points, time_key=TIME_KEY):
    """Pairs of neighbouring clocks of ``points`` ({"mhz", time_key, ...}) and their ratio."""
    ordered = sorted((p for p in points if p.get(time_key)), key=lambda p: p["mhz"])
    pairs = []
    for low, high in zip(ordered, ordered[1:]):
        if high["mhz"] <= low["mhz"]:
            continue
        time_change = (low[time_key] - high[time_key]) / low[time_key]
        freq_change = (high["mhz"] - low["mhz"]) / low["mhz"]
        pairs.append(OrderedDict([
            ("low_mhz", low["mhz"]), ("high_mhz", high["mhz"]),
            ("time_change_pct", 100 * time_change), ("freq_change_pct", 100 * freq_change),
            ("sensitivity", time_change / freq_change),
            ("clock_bound", low["mhz"] / high["mhz"])]))
    return pairs


def overall(pairs_or_points, time_key=TIME_KEY):
    """The sensitivity between the lowest and the highest clock of a sweep (one number)."""
    ordered = sorted((p for p in pairs_or_points if p.get(time_key)), key=lambda p: p["mhz"])
    if len(ordered) < 2:
        return None
    return sensitivity([ordered[0], ordered[-1]], time_key)[0]


def sweep(clocks, measure_at, log=print):
    """Pins each sweep clock in turn and calls ``measure_at(mhz)``; clocks restored after.

    ``measure_at`` returns the measurement (a dict with at least ``TIME_KEY``); the result is
    {"points": [{"mhz", ...measurement}], "pairs": sensitivity pairs, "overall": low-high pair}.
    """
    points = []
    try:
        for mhz in gpu_clocks.sweep_points(clocks.available_mhz()):
            clocks.pin_mhz(mhz)
            point = OrderedDict([("mhz", mhz)])
            point.update(measure_at(mhz))
            points.append(point)
            log("gpu %.0f MHz: %.1f FPS, inference p50 %.1f ms%s" % (
                mhz, point.get("fps") or 0.0, point.get(TIME_KEY) or 0.0,
                ", %.2f W" % point["power_w"] if point.get("power_w") is not None else ""))
    finally:
        clocks.restore()
    return OrderedDict([("points", points), ("pairs", sensitivity(points)),
                        ("overall", overall(points))])
