"""The contextual anomaly detector of `models/src/context.rs`, in Python: the reference its
Rust implementation is checked against, and the tool for trying its settings on NAB.

    python3 models/train/context_reference.py --golden   (rewrites models/artifacts/golden/context.json)
    python3 models/train/context_reference.py --nab      (NAB standard score of the raw detector)

After CAD OSE (Smirnov and Mikhail's Contextual Anomaly Detector, open-source edition, as
NAB ships it), reconstructed from its description; see `context.rs` for the algorithm and
for what differs (the range is learnt from the first values instead of given; ties between
equally used contexts go to the older one). Standard library only.
"""
import argparse, json, math, os, random, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NEURON = 1 << 31

DEFAULTS = dict(bits=3, max_left=7, max_active=15, base_threshold=0.75, rest_windows=150,
                learn_windows=750, range_margin=1.0, max_contexts=50000, expand_range=True)


class Memory:
    def __init__(self, max_left):
        self.max_left = max_left
        self.index = [{}, {}]      # fact -> [side ids]
        self.ids = [{}, {}]        # facts tuple -> side id
        self.lefts = []            # [len, crossed, [(right id, context id)], {right id: context id}]
        self.rights = []           # [len, crossed]
        self.crossed = [[], []]
        self.contexts = []         # [used, zero_level]
        self.new_context = None

    def side(self, s, facts):
        if facts in self.ids[s]:
            return self.ids[s][facts]
        table = self.lefts if s == 0 else self.rights
        i = len(table)
        self.ids[s][facts] = i
        table.append([len(facts), [], [], {}] if s == 0 else [len(facts), []])
        for f in facts:
            self.index[s].setdefault(f, []).append(i)
        return i

    def context(self, left, right, zero_level):
        l, r = self.side(0, left), self.side(1, right)
        if r in self.lefts[l][3]:
            return self.lefts[l][3][r], False
        c = len(self.contexts)
        self.contexts.append([0, zero_level])
        self.lefts[l][3][r] = c
        self.lefts[l][2].append((r, c))
        return c, True

    def learn_transition(self, left, right):
        c, new = self.context(left, right, True)
        if new:
            self.new_context = c
        else:
            self.contexts[c][1] = True
        return new

    def cross(self, s, facts):
        table = self.lefts if s == 0 else self.rights
        for i in self.crossed[s]:
            table[i][1] = []
        touched = set()
        for f in facts:
            for i in self.index[s].get(f, []):
                table[i][1].append(f)
                touched.add(i)
        self.crossed[s] = sorted(touched)

    def judge(self):
        active, selected, candidates = [], 0, []
        for li in self.crossed[0]:
            lv = self.lefts[li]
            whole = lv[0] == len(lv[1])
            for ri, ci in lv[2]:
                if self.new_context == ci:
                    continue
                rv = self.rights[ri]
                held = len(rv[1])
                zero = self.contexts[ci][1]
                if whole:
                    selected += 1
                    if held > 0:
                        if rv[0] == held:
                            self.contexts[ci][0] += 1
                            active.append((ci, self.contexts[ci][0]))
                        elif zero and held < self.max_left:
                            candidates.append((tuple(lv[1]), tuple(rv[1])))
                elif zero and len(lv[1]) < self.max_left and held > 0:
                    candidates.append((tuple(lv[1]), tuple(rv[1])))
        self.new_context = None
        return active, selected, candidates


class Learner:
    def __init__(self, c, lo, hi):
        self.max_bin = (1 << c["bits"]) - 1
        rng = hi - lo if hi > lo else float(self.max_bin)
        self.lo, self.hi, self.step = lo, hi, rng / self.max_bin
        self.expand = c["expand_range"]
        self.bits, self.max_active = c["bits"], c["max_active"]
        self.memory = Memory(c["max_left"])
        self.left = ()

    def bin(self, v):
        if self.expand and math.isfinite(v) and (v < self.lo or v > self.hi):
            self.lo, self.hi = min(self.lo, v), max(self.hi, v)
            self.step = (self.hi - self.lo) / self.max_bin
        b = math.floor((v - self.lo) / self.step)
        return 0 if b < 0 else min(int(b), self.max_bin)

    def raw_score(self, v):
        b = self.bin(v)
        current = tuple(2 * i + ((b >> i) & 1) for i in range(self.bits))
        m = self.memory
        learnt_new = bool(self.left) and m.learn_transition(self.left, current)
        m.cross(1, current)
        active, selected, candidates = m.judge()
        unique = set(candidates)
        if self.left:
            unique.add((self.left, current))
        share_active = len(active) / selected if selected > 0 else 0.0
        active.sort(key=lambda a: (a[1], -a[0]))
        left = set(current) | {NEURON + a[0] for a in active[::-1][: self.max_active]}
        left = tuple(sorted(left))
        added = sum(1 for l, r in candidates if m.context(l, r, False)[1])
        m.cross(0, left)
        self.left = left
        if learnt_new:
            added += 1
        share_added = added / len(unique) if learnt_new and unique else 0.0
        return (1.0 - share_active + share_added) / 2.0


class Detector:
    def __init__(self, c):
        self.c = c
        self.learning, self.learner, self.recent = [], None, []

    def contexts(self):
        return len(self.learner.memory.contexts) if self.learner else 0

    def push_recent(self, raw):
        if len(self.recent) >= max(self.c["rest_windows"], 1):
            self.recent.pop(0)
        self.recent.append(raw)

    def step(self, v):
        c = self.c
        if self.learner is None:
            if math.isfinite(v):
                self.learning.append(v)
            if len(self.learning) < c["learn_windows"]:
                return None
            vals, self.learning = self.learning, []
            lo, hi = min(vals), max(vals)
            margin = (hi - lo) * c["range_margin"]
            self.learner = Learner(c, lo - margin, hi + margin)
            self.recent = [1.0]
            for x in vals:
                self.push_recent(self.learner.raw_score(x))
            return None
        if self.contexts() > c["max_contexts"]:
            self.learning, self.learner, self.recent = [], None, []
            return self.step(v)
        raw = self.learner.raw_score(v)
        quiet = any(r >= c["base_threshold"] for r in self.recent)
        self.push_recent(raw)
        return 0.0 if quiet else raw


def golden_series():
    rnd = random.Random(7)
    out = {}
    # a daily-like cycle with noise, a level shift and a spike
    out["cycle_shift_spike"] = [
        50 + 20 * math.sin(2 * math.pi * i / 48) + rnd.gauss(0, 2) + (25 if 400 <= i < 440 else 0) + (80 if i == 520 else 0)
        for i in range(600)
    ]
    # a random walk that leaves its first range (edge bins, relearning at a small cap)
    x, walk = 0.0, []
    for _ in range(500):
        x += rnd.gauss(0, 1)
        walk.append(x)
    out["random_walk"] = walk
    out["random_walk_expanding"] = walk
    out["square_wave"] = [10.0 if (i // 12) % 2 else 0.0 for i in range(300)]
    out["flat"] = [3.0] * 200
    return out


def write_golden():
    configs = {
        "cycle_shift_spike": dict(DEFAULTS, rest_windows=30, learn_windows=100, range_margin=0.5),
        "random_walk": dict(DEFAULTS, learn_windows=50, range_margin=0.0, max_contexts=3000, bits=4, expand_range=False),
        "random_walk_expanding": dict(DEFAULTS, learn_windows=50, range_margin=0.0, max_contexts=3000, rest_windows=20),
        "square_wave": dict(DEFAULTS, rest_windows=5, learn_windows=30, range_margin=2.0),
        "flat": dict(DEFAULTS, learn_windows=20, range_margin=2.0),
    }
    cases = []
    for name, values in golden_series().items():
        c = configs[name]
        d = Detector(c)
        scores = [d.step(v) for v in values]
        cases.append(dict(name=name, config=c, values=values, scores=scores, contexts=d.contexts()))
    path = os.path.join(ROOT, "models", "artifacts", "golden", "context.json")
    with open(path, "w") as f:
        json.dump(dict(generator="models/train/context_reference.py --golden", cases=cases), f)
    print("wrote", path, [(c["name"], c["contexts"]) for c in cases])


def nab(args):
    import csv
    sys.path.insert(0, HERE)
    import nab_score as N
    from evaluate_nab import parse_time as pt
    base = os.path.join(ROOT, "..", "shared", "data", "nab")
    windows = json.load(open(os.path.join(base, "combined_windows.json")))
    files = sorted(f for f in windows if os.path.exists(os.path.join(base, "data", f)))
    c = dict(DEFAULTS, **{k: v for k, v in json.loads(args.config).items()})
    scored = []
    for name in files:
        rows = list(csv.DictReader(open(os.path.join(base, "data", name))))
        times = [pt(r["timestamp"]) for r in rows]
        d = Detector(c)
        s = [d.step(float(r["value"])) or 0.0 for r in rows]
        scored.append((s, N.window_rows(times, [(pt(a), pt(b)) for a, b in windows[name]])))
    for thr in [x / 100 for x in range(50, 100, 2)]:
        fs = [N.score_file([x >= thr for x in s], w) for s, w in scored]
        print(f"threshold {thr:.2f} NAB {N.normalised(fs):6.1f} windows {sum(f.detected_windows for f in fs)}/{sum(f.windows for f in fs)} false positives {sum(f.false_positives for f in fs)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--golden", action="store_true")
    p.add_argument("--nab", action="store_true")
    p.add_argument("--config", default="{}", help="JSON overrides of the defaults, for --nab")
    a = p.parse_args()
    if a.golden:
        write_golden()
    if a.nab:
        nab(a)
