"""Small statistics shared by the benchmarks (no numpy needed for a handful of numbers)."""
import statistics


def percentile(values, q):
    """Linear-interpolated percentile ``q`` (0..100) of ``values``; None when empty."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return float(data[0])
    position = (len(data) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(data) - 1)
    return float(data[low] + (data[high] - data[low]) * (position - low))


def median(values):
    return float(statistics.median(values)) if values else None


def paired_ratios(reference, candidate):
    """reference[i] / candidate[i] per round: a speed-up measured under the same load."""
    return [r / c for r, c in zip(reference, candidate) if c > 0]
