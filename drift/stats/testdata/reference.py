#!/usr/bin/python3
"""Reference values for the drift/stats Go tests.

Run with Debian's interpreter (scipy 1.10, numpy):

    /usr/bin/python3 drift/stats/testdata/reference.py

and paste the printed numbers into the *_test.go files, which name this
script next to every hard-coded value. Samples are generated from integer
formulas that the Go tests reproduce exactly, so no data files are needed.
"""

import math

import numpy as np
import scipy
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.stats.contingency import association


def g(v):
    return repr(float(v))


def modular_sample(n, mul, mod, shift):
    """Same as modularSample in ks_test.go: a permutation-like, tie-free
    spread of integers, shifted to move the distribution."""
    return np.array([float((i * mul) % mod + shift) for i in range(n)])


def cyclic_sample(n, period, shift):
    """Same as cyclicSample in ks_test.go: heavy ties on purpose."""
    return np.array([float(i % period + shift) for i in range(n)])


# name, x, y
KS_CASES = [
    ("exact_unequal_small", modular_sample(37, 17, 101, 0), modular_sample(53, 29, 101, 15)),
    ("exact_equal_200", modular_sample(200, 7919, 100003, 0), modular_sample(200, 104729, 100003, 12000)),
    ("exact_equal_far", modular_sample(300, 7919, 100003, 0), modular_sample(300, 104729, 100003, 50000)),
    ("exact_unequal_3000_7000", modular_sample(3000, 7919, 1000003, 0), modular_sample(7000, 104729, 1000003, 30000)),
    ("exact_unequal_null", modular_sample(450, 7919, 1000003, 0), modular_sample(700, 104729, 1000003, 0)),
    ("exact_ties", cyclic_sample(60, 7, 0), cyclic_sample(45, 5, 1)),
    ("exact_disjoint", modular_sample(40, 3, 41, 0), modular_sample(30, 7, 31, 100)),
    ("asymp_12000_15000", modular_sample(12000, 7919, 1000003, 0), modular_sample(15000, 104729, 1000003, 12000)),
    ("asymp_20000_20000_small_d", modular_sample(20000, 7919, 1000003, 0), modular_sample(20000, 104729, 1000003, 5000)),
    ("asymp_20000_20000_large_d", modular_sample(20000, 7919, 1000003, 0), modular_sample(20000, 104729, 1000003, 20000)),
    ("asymp_10001_3", modular_sample(10001, 7919, 1000003, 0), modular_sample(3, 104729, 1000003, 600000)),
    ("asymp_10500_200", modular_sample(10500, 7919, 1000003, 0), modular_sample(200, 104729, 1000003, 90000)),
]

KSTWO_N = [1, 2, 3, 5, 10, 50, 140, 141, 500, 1000, 10000, 100000, 200000]
KSTWO_X = [0.0004, 0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99]

CATEGORICAL_CASES = [
    ("shifted",
     {"a": 120, "b": 80, "c": 40, "d": 10},
     {"a": 100, "b": 95, "c": 30, "d": 25, "e": 5}),
    ("stable",
     {"red": 500, "green": 300, "blue": 200},
     {"red": 510, "green": 290, "blue": 205}),
    ("weighted",
     {"x": 10.5, "y": 3.25, "z": 0.75, "never": 0},
     {"x": 8.0, "y": 6.5, "z": 2.25, "never": 0}),
    ("two_categories",
     {"yes": 30, "no": 70},
     {"yes": 45, "no": 55}),
]


def aligned(ref, cur):
    names = sorted(k for k in set(ref) | set(cur) if ref.get(k, 0) + cur.get(k, 0) > 0)
    return (np.array([ref.get(k, 0.0) for k in names], dtype=float),
            np.array([cur.get(k, 0.0) for k in names], dtype=float))


def psi(r, c, eps):
    r = np.maximum(r / r.sum(), eps)
    c = np.maximum(c / c.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def bh(p):
    """Benjamini-Hochberg by hand (statsmodels is not installed)."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    adj = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        adj[i] = running
    return adj


BH_INPUT = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.9, 0.0001, 0.5, 0.049]


def main():
    print("# scipy", scipy.__version__, "numpy", np.__version__)
    print("# ks_2samp(x, y, method='auto'): name D p")
    for name, x, y in KS_CASES:
        r = stats.ks_2samp(x, y, method="auto")
        print(name, g(r.statistic), g(r.pvalue))
    print("# kstwo.sf(x, n): n x sf")
    for n in KSTWO_N:
        for x in KSTWO_X:
            print(n, x, g(stats.kstwo.sf(x, n)))
    print("# chi2_contingency(correction=False) and lambda_='log-likelihood'")
    print("# name chi2 p_chi2 dof G p_G cramersV js_base2 psi(eps=1e-4)")
    for name, ref, cur in CATEGORICAL_CASES:
        r, c = aligned(ref, cur)
        table = np.vstack([r, c])
        chi2, pc, dof, _ = stats.chi2_contingency(table, correction=False)
        gst, pg, _, _ = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
        v = math.sqrt(chi2 / table.sum())  # 2xK table: min(r-1, c-1) = 1
        if np.all(table == np.round(table)):
            assert math.isclose(v, association(table.astype(int), method="cramer"), rel_tol=1e-12)
        js = jensenshannon(r, c, base=2)
        print(name, g(chi2), g(pc), dof, g(gst), g(pg), g(v), g(js), g(psi(r, c, 1e-4)))
    print("# Benjamini-Hochberg of", BH_INPUT)
    print(", ".join(g(v) for v in bh(BH_INPUT)))
    print("# Bonferroni")
    print(", ".join(g(min(1.0, v * len(BH_INPUT))) for v in BH_INPUT))


if __name__ == "__main__":
    main()
