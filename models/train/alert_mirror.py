"""Experiments with the alert stage on the NAB corpus, without rebuilding the binary.

    python3 models/train/alert_mirror.py        (needs numpy: the training venv)

The forest's scores do not depend on the alert stage's settings, so `apo score` runs once per
file (cached in a pickle under the temporary directory) and `alerts()` below mirrors
`models/src/alerting.rs` (`AlertState::step` with its defaults: likelihood, hysteresis, quiet
period; no adaptive quantile, no suppression). With the forest's own scores it reproduces the
binary's NAB standard score (43.4 at threshold 0.6); pass other score series to `evaluate()` to
try a variant in seconds. Keep it in step with `alerting.rs` when that changes. BENCHMARKS.md
lists the variants tried with it.
"""
import csv, json, math, os, subprocess, sys, collections, pickle, tempfile
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nab_score as N  # noqa: E402
from apo_features import robust_scale  # noqa: E402
from evaluate_nab import parse_time as pt  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NAB = os.path.join(ROOT, "..", "shared", "data", "nab")
APO = os.path.join(ROOT, "target", "release", "apo")
MODEL = os.path.join(ROOT, "models", "artifacts", "iforest.onnx")
CACHE = os.path.join(tempfile.gettempdir(), "apo-nab-scores.pkl")

def load():
    if os.path.exists(CACHE):
        return pickle.load(open(CACHE, "rb"))
    windows = json.load(open(os.path.join(NAB, "combined_windows.json")))
    files = sorted(f for f in windows if os.path.exists(os.path.join(NAB, "data", f)))
    data = {}
    for name in files:
        dst = os.path.join(tempfile.gettempdir(), "apo-nab-" + name.replace("/", "_"))
        subprocess.run([APO, "score", "--model", MODEL, os.path.join(NAB, "data", name), "-o", dst], check=True, capture_output=True)
        rows = list(csv.DictReader(open(dst)))
        times = [pt(r["timestamp"]) for r in rows]
        vals = np.array([float(r["value"]) for r in rows])
        sc = np.array([float(r["anomaly_score"]) if r["anomaly_score"] not in ("", "nan") else np.nan for r in rows])
        wins = N.window_rows(times, [(pt(a), pt(b)) for a, b in windows[name]])
        # level / delta z of the value, against the last 288
        lev = np.full(len(vals), np.nan); dl = np.full(len(vals), np.nan)
        for i in range(8, len(vals)):
            h = vals[max(0, i - 288):i]
            med, scale = robust_scale(h)
            lev[i] = (vals[i] - med) / scale
            dl[i] = (vals[i] - h[-1]) / scale
        data[name] = dict(times=times, vals=vals, score=sc, wins=wins, lev=lev, dl=dl)
    pickle.dump(data, open(CACHE, "wb"))
    return data

def phi(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))

def alerts(times, scores, thr, lik_min=0.8, short=10, long=288, amin=48, raise_after=1, clear_after=3, quiet_h=12.0, clear_ratio=0.95):
    recent = collections.deque(maxlen=long)
    above = below = 0
    active = pending = False
    last = None
    out = []
    for t, s in zip(times, scores):
        if s is None or (isinstance(s, float) and math.isnan(s)):
            out.append(False)
            continue
        recent.append(s)
        n = len(recent)
        if n >= amin:
            a = np.fromiter(recent, float)
            m = a.mean(); sd = a.std()
            sm = a[-min(short, n):].mean()
            lik = phi((sm - m) / max(sd, 1e-3))
        else:
            lik = 0.0
        likely = lik_min <= 0 or lik >= lik_min
        if s >= thr and likely:
            above += 1; below = 0
        elif s < thr * clear_ratio or not likely:
            below += 1; above = 0
        else:
            above = below = 0
        if not active and above >= raise_after:
            active = True; pending = True
        elif active and below >= clear_after:
            active = False; pending = False
        r = False
        if pending:
            pending = False
            r = last is None or (t - last).total_seconds() >= quiet_h * 3600
        if r:
            last = t
        out.append(r)
    return out

def evaluate(data, scorefn, thr, **kw):
    files = []
    for name, d in data.items():
        det = alerts(d["times"], scorefn(d), thr, **kw)
        files.append(N.score_file(det, d["wins"]))
    return N.normalised(files), sum(f.detected_windows for f in files), sum(f.windows for f in files), sum(f.detections for f in files)

if __name__ == "__main__":
    data = load()
    forest = lambda d: list(d["score"])
    for thr in [0.55, 0.6, 0.62]:
        print("forest", thr, evaluate(data, forest, thr))
