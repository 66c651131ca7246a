"""The paired-ratio statistic the A/B scripts share (bench/compare.py,
bench/duet.py): the geometric mean of per-pair ratios with a percentile
bootstrap interval, pairs resampled with a fixed seed so that the same
data always give the same interval."""

import math
import random
import statistics


def ratio_interval(logs, resamples=10000):
    """`logs` are the per-pair log ratios. Returns the geometric mean of
    the ratios, the two-sided 95 % interval (low, high) and the one-sided
    95 % upper bound (what "not slower by more than 5 %" needs <= 1.05)."""
    rng = random.Random(1)
    means = sorted(statistics.fmean(rng.choices(logs, k=len(logs))) for _ in range(resamples))
    lo, hi = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
    upper = means[int(0.95 * resamples) - 1]
    return math.exp(statistics.fmean(logs)), math.exp(lo), math.exp(hi), math.exp(upper)
