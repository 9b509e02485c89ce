"""Evaluate APO's models on the NAB corpus with the `apo` binary, as the stream would run them.

    python3 models/train/evaluate_nab.py [--apo target/release/apo] [--nab ../shared/data/nab]

Anomalies: `apo score` on every file, once per pair of forest threshold (--sweep) and contextual
detector threshold (--context-sweep; default: only the binary's default) (the whole alert stage
runs each time: likelihood, minimum duration, hysteresis, quiet period, contextual detector);
a detection is a row whose label is 1 (an alert raised). Arguments after `--` go to every
`apo score` (e.g. `-- --context-learn-windows 600`). Reports, at the corpus-best threshold (NAB picks the threshold
that maximises the corpus total) and at the model's own threshold: the NAB standard-profile
score, precision (detections inside labelled windows / all detections), recall (labelled
windows detected), false-negative rate (windows missed), false positives per labelled window
and the row false-positive rate (detections outside windows / rows outside windows), all
after the probationary period.

Forecasts: `apo forecast` on every file; MAPE (rows whose actual is not 0) and the 90 %
interval's coverage, next to a seasonal-naive forecast (the value one day before the target)
measured on the same rows.

Standard library only. Prints Markdown tables (for BENCHMARKS.md) and writes the raw numbers as
JSON with --json.
"""

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nab_score as N  # noqa: E402

REQUEST_RATE = ("elb_request_count",)
SWEEP = [0.55, 0.58, 0.6, 0.62, 0.64, 0.66, 0.68, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8]


def parse_time(s: str) -> datetime.datetime:
    s = s.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.datetime.strptime(s, fmt)
        except ValueError:
            pass
    raise ValueError(f"unreadable timestamp {s!r}")


def read_csv(path: str) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(cmd: list) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")


def score_corpus(apo: str, nab: str, files: list, windows: dict, tmp: str, threshold, extra: list) -> list:
    out = []
    for name in files:
        dst = os.path.join(tmp, name.replace("/", "_") + ".scores.csv")
        cmd = [apo, "score", os.path.join(nab, "data", name), "-o", dst] + extra
        if threshold is not None:
            cmd += ["--anomaly-threshold", str(threshold)]
        run(cmd)
        rows = read_csv(dst)
        times = [parse_time(r["timestamp"]) for r in rows]
        wins = N.window_rows(times, [(parse_time(a), parse_time(b)) for a, b in windows[name]])
        out.append((name, N.score_file([r["label"] == "1" for r in rows], wins)))
    return out


def detection_summary(scored: list) -> dict:
    files = [f for _, f in scored]
    windows = sum(f.windows for f in files)
    detected = sum(f.detected_windows for f in files)
    dets = sum(f.detections for f in files)
    inside = sum(f.detections_in_windows for f in files)
    fps = sum(f.false_positives for f in files)
    outside_rows = sum(f.rows_outside_windows for f in files)
    return {
        "nab_standard": N.normalised(files),
        "windows": windows,
        "detected_windows": detected,
        "recall": detected / windows if windows else float("nan"),
        "false_negative_rate": 1 - detected / windows if windows else float("nan"),
        "precision": inside / dets if dets else float("nan"),
        "detections": dets,
        "false_positives": fps,
        "false_positives_per_window": fps / windows if windows else float("nan"),
        "row_false_positive_rate": fps / outside_rows if outside_rows else float("nan"),
    }


def forecast_corpus(apo: str, nab: str, files: list, tmp: str) -> list:
    results = []
    for name in files:
        src = os.path.join(nab, "data", name)
        dst = os.path.join(tmp, name.replace("/", "_") + ".forecast.csv")
        run([apo, "forecast", src, "-o", dst])
        series = {parse_time(r["timestamp"]): float(r["value"]) for r in read_csv(src)}
        ape, naive_ape, inside, n = [], [], 0, 0
        # WAPE (sum of absolute errors over sum of actuals) on the same rows: unlike MAPE it
        # is not dominated by rows whose actual is near 0
        abs_err, naive_abs_err, abs_actual = 0.0, 0.0, 0.0
        for r in read_csv(dst):
            if r["value"] == "":
                continue
            target = parse_time(r["timestamp"])
            actual = float(r["value"])
            naive = series.get(target - datetime.timedelta(days=1))
            n += 1
            inside += float(r["lower"]) <= actual <= float(r["upper"])
            if actual != 0 and naive is not None:
                ape.append(abs(actual - float(r["forecast"])) / abs(actual))
                naive_ape.append(abs(actual - naive) / abs(actual))
                abs_err += abs(actual - float(r["forecast"]))
                naive_abs_err += abs(actual - naive)
                abs_actual += abs(actual)
        results.append({
            "file": name,
            "forecasts": n,
            "mape": 100 * sum(ape) / len(ape) if ape else float("nan"),
            "seasonal_naive_mape": 100 * sum(naive_ape) / len(naive_ape) if naive_ape else float("nan"),
            "wape": 100 * abs_err / abs_actual if abs_actual else float("nan"),
            "seasonal_naive_wape": 100 * naive_abs_err / abs_actual if abs_actual else float("nan"),
            "compared": len(ape),
            "coverage_90": inside / n if n else float("nan"),
        })
    return results


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apo", default=os.path.join(root, "target", "release", "apo"))
    ap.add_argument("--nab", default=os.path.join(root, "..", "shared", "data", "nab"))
    ap.add_argument("--json", help="write the raw numbers here")
    ap.add_argument("--sweep", type=float, nargs="*", default=SWEEP, help="forest thresholds to try")
    ap.add_argument("--context-sweep", type=float, nargs="*", default=[],
                    help="contextual detector thresholds to try with each forest threshold (default: the binary's)")
    ap.add_argument("extra", nargs="*", help="after `--`: more arguments for every `apo score`")
    args = ap.parse_args()
    contexts = args.context_sweep or [None]
    windows = json.load(open(os.path.join(args.nab, "combined_windows.json")))
    files = sorted(f for f in windows if os.path.exists(os.path.join(args.nab, "data", f)))
    print(f"{len(files)} NAB files, {sum(len(windows[f]) for f in files)} labelled windows", file=sys.stderr)

    report = {"sweep": []}
    with tempfile.TemporaryDirectory() as tmp:
        default = detection_summary(score_corpus(args.apo, args.nab, files, windows, tmp, None, args.extra))
        for t in args.sweep:
            for c in contexts:
                extra = args.extra + ([] if c is None else ["--context-threshold", str(c)])
                s = detection_summary(score_corpus(args.apo, args.nab, files, windows, tmp, t, extra))
                s["threshold"] = t
                s["context_threshold"] = c
                report["sweep"].append(s)
                shown = "" if c is None else f", context threshold {c}"
                print(f"threshold {t}{shown}: NAB {s['nab_standard']:.1f}", file=sys.stderr)
        best = max(report["sweep"], key=lambda s: s["nab_standard"])
        report["model_threshold"] = default
        report["best"] = best
        report["forecasts"] = forecast_corpus(args.apo, args.nab, files, tmp)

    print("| anomaly detection (NAB corpus, after probation) | model threshold | corpus-best threshold |")
    print("|---|---|---|")
    print(f"| threshold | metadata | {best['threshold']} |")
    if best.get("context_threshold") is not None:
        print(f"| contextual threshold | default | {best['context_threshold']} |")
    for key, label, fmt in [
        ("nab_standard", "NAB standard score", "{:.1f}"),
        ("precision", "precision (detections in windows)", "{:.1%}"),
        ("recall", "recall (windows detected)", "{:.1%}"),
        ("false_negative_rate", "false-negative rate (windows missed)", "{:.1%}"),
        ("false_positives_per_window", "false positives per labelled window", "{:.2f}"),
        ("row_false_positive_rate", "row false-positive rate", "{:.2%}"),
        ("detections", "detections", "{}"),
    ]:
        print(f"| {label} | {fmt.format(default[key])} | {fmt.format(best[key])} |")
    print()
    print("| forecast 15 min ahead | forecasts | LSTM MAPE | seasonal-naive MAPE | LSTM WAPE | seasonal-naive WAPE | 90 % interval coverage |")
    print("|---|---|---|---|---|---|---|")
    for r in report["forecasts"]:
        mark = " (request rate)" if any(k in r["file"] for k in REQUEST_RATE) else ""
        print(f"| {r['file']}{mark} | {r['forecasts']} | {r['mape']:.1f} % | {r['seasonal_naive_mape']:.1f} % | {r['wape']:.1f} % | {r['seasonal_naive_wape']:.1f} % | {r['coverage_90']:.1%} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
