"""Golden vectors of the canary judge's statistics (dataflow/src/decisions/canary/).

For each case: the experiment (canary) and control (baseline) samples, and
- SciPy's `mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)`:
  the statistic U of x and the p-value;
- NumPy: the median of all pairwise differences x_i - y_j (the Hodges-Lehmann estimate);
- R's `wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE, tol.root=1e-10)` at confidence
  0.98 and 0.95: the confidence interval of the shift and R's estimate (the procedure Kayenta's
  MannWhitney ports: the continuity-corrected normal approximation inverted by root finding).

`kayenta` holds the classifier cases of Kayenta's own suite (kayenta-judge ClassifierSuite.scala:
the samples, the classifier's settings and the classification its tests assert).

Run: `python3 dataflow/golden/mann_whitney.py > dataflow/golden/mann_whitney.json`
(needs scipy, numpy and Rscript; `apt-get install r-base-core`, `pip install scipy`).
"""

import json
import subprocess
import sys

import numpy as np
import scipy
from scipy.stats import mannwhitneyu


def r_wilcox(x, y, conf):
    vec = lambda v: "c(" + ",".join(repr(float(a)) for a in v) + ")"
    script = (
        f"r <- wilcox.test({vec(x)}, {vec(y)}, conf.int=TRUE, exact=FALSE, correct=TRUE, "
        f"conf.level={conf}, tol.root=1e-10);"
        "cat(sprintf('%.17g %.17g %.17g %.17g', r$conf.int[1], r$conf.int[2], r$estimate, r$p.value))"
    )
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True)
    lo, hi, est, p = (float(v) for v in out.stdout.split())
    return {"lower": lo, "upper": hi, "estimate": est, "p_value": p}


def case(name, x, y):
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    r = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    diffs = np.subtract.outer(np.array(x), np.array(y)).ravel()
    return {
        "name": name,
        "experiment": x,
        "control": y,
        "u": float(r.statistic),
        "p_value": float(r.pvalue),
        "hodges_lehmann": float(np.median(diffs)),
        "r_98": r_wilcox(x, y, 0.98),
        "r_95": r_wilcox(x, y, 0.95),
    }


# The samples of Kayenta's ClassifierSuite: experiment around 10 (A), control around 10 (B),
# experiment around 20 (C), control around 20 (D).
A = [9.7767343120109462, 10.587071850477695, 7.8375506388901766, 9.3243326886113884,
     8.3774505409784421, 8.9359264399606282, 8.2707663324728511, 9.7484308126716925,
     11.623746715547156, 9.2753442679633942, 8.1538047749171518, 10.562020975754294,
     13.498135575451835, 11.054419256110332, 6.9538903590055092, 12.521008342195479,
     9.0216358603546443, 4.9234856699531662, 11.251360203607172, 11.598449508040337,
     8.435232204668182, 11.110228516867279, 10.70063380164755, 8.9212773652115249,
     10.086167067942661, 11.42107515483087, 9.3792347813644952, 7.7980320148552593,
     10.62339807275746, 11.909642062063739]
B = [11.1453586774086, 9.9618059885597017, 7.068574306369829, 7.3012661810483657,
     9.7944630265656727, 9.6037918603687302, 6.1867793350339388, 12.345599159550174,
     10.371891733859533, 8.6094300785016724, 9.913162673361084, 10.361375299003466,
     14.206800387518818, 10.946153754753301, 10.215876627044048, 11.739760899484603,
     10.907627468626439, 12.823353694464775, 8.1018609771732137, 8.4981616408804932,
     12.113441374697231, 13.272210809932028, 10.114579381663297, 6.9463958767978067,
     6.2105278541727778, 10.160401684903775, 8.3457712066455461, 8.383822063895833,
     7.0020205070083765, 10.755757401808442]
C = [20.878412601720026, 21.78550581191622, 19.70828084717019, 15.859946903461562,
     19.510058772176841, 19.392005525270303, 22.926528314912101, 17.156530276709894,
     18.655117916226171, 23.422607911610392, 24.055817684156644, 22.62689958516501,
     21.979472967817678, 21.659318607218694, 20.067707574072426, 22.119570836305414,
     16.44037132663307, 21.559622826341268, 21.000181443489218, 17.779369411412663,
     17.806006358943584, 18.537200618386109, 20.555550300210797, 19.552928184468378,
     21.771118944087092, 21.809622806176627, 20.961762909905271, 20.977571577503021,
     19.106303205498794, 16.976918966987078]
D = [20.758113589510348, 22.802059629464559, 20.612340363492208, 20.973274654749986,
     23.469237330498622, 21.53133988954805, 21.767353687439805, 18.308050730374301,
     19.062145167827566, 25.879498436001779, 18.982629726336128, 19.387920182269266,
     18.995398251246982, 24.228420230932805, 20.050985172694688, 18.2340451091756,
     17.870515494460435, 23.058103863806618, 18.400259567501134, 16.971352091177167,
     19.467529066052151, 17.90465423342031, 17.553948617825831, 16.104611843907193,
     24.38171081433039, 15.919294339922635, 20.479409626304697, 19.08307201492406,
     17.455788050722866, 18.853826823235142]


def kayenta(name, experiment, control, direction, expect, tolerance=0.10, confidence=0.95,
            allowed=(1.0, 1.0)):
    return {"name": name, "experiment": experiment, "control": control,
            "direction": direction, "tolerance": tolerance, "confidence": confidence,
            "allowed_decrease": allowed[0], "allowed_increase": allowed[1], "expect": expect}


KAYENTA = [
    kayenta("Pass Metric", A, B, "either", "pass"),
    kayenta("High Metric", C, B, "either", "high"),
    kayenta("Low Metric", A, D, "either", "low"),
    kayenta("Directional Test: Increase", A, D, "increase", "pass"),
    kayenta("Directional Test: Decrease", C, B, "decrease", "pass"),
    kayenta("Directional Test: High Metric", C, B, "increase", "high"),
    kayenta("Directional Test: Low Metric", A, D, "decrease", "low"),
    kayenta("Mean Ratio Effect Size: High", [20.0, 22.0, 21.0, 25.0, 30.0],
            [1.0, 2.2, 1.1, 2.5, 3.0], "either", "high", allowed=(0.8, 1.2)),
    kayenta("Mean Ratio Effect Size: Low", A, D, "decrease", "low", allowed=(0.8, 1.2)),
    kayenta("Mean Ratio Effect Size: Pass", [10.0, 12.2, 10.1, 12.5, 23.0],
            [20.0, 22.0, 21.0, 25.0, 30.0], "either", "pass", allowed=(0.5, 1.0)),
]


def main():
    rng = np.random.default_rng(20261205)
    cases = [
        case(
            "r_docs_depression",  # R's ?wilcox.test example (Hollander & Wolfe)
            [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30],
            [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29],
        ),
        case("tiny_no_overlap", [10, 11, 12, 13, 14], [1, 2, 3, 4, 5, 6, 7]),
        case(
            "latency_same",
            np.round(rng.lognormal(4.0, 0.5, 40), 3),
            np.round(rng.lognormal(4.0, 0.5, 50), 3),
        ),
        case(
            "latency_canary_20pct_slower",
            np.round(1.2 * rng.lognormal(4.0, 0.4, 60), 3),
            np.round(rng.lognormal(4.0, 0.4, 60), 3),
        ),
        case(
            "latency_canary_10pct_faster",
            np.round(0.9 * rng.lognormal(5.0, 0.3, 100), 2),
            np.round(rng.lognormal(5.0, 0.3, 80), 2),
        ),
        case(
            "error_counts_heavy_ties",
            rng.integers(0, 6, 30),
            rng.integers(0, 5, 45),
        ),
        case("small_vs_large", rng.normal(100, 10, 3), rng.normal(90, 10, 200)),
        case("normal_shifted", rng.normal(0.5, 1.0, 25), rng.normal(0.0, 1.0, 31)),
    ] + [case("kayenta " + k["name"], k["experiment"], k["control"]) for k in KAYENTA]
    json.dump(
        {"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases, "kayenta": KAYENTA},
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
