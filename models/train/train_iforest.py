"""Train the isolation forest on synthetic healthy windows and export it as ONNX for tract.

    python models/train/train_iforest.py [--out models/artifacts]

Writes `iforest.onnx`, `iforest.json` (metadata) and `golden/iforest.json` (feature
vectors with scikit-learn's scores, for the Rust parity test) and `golden/features.json`
(a series with the feature vectors of apo_features.py, for the Rust feature test).

Export (DESIGN.md §5): skl2onnx's TreeEnsembleRegressor is not in tract, so each tree is
padded to a perfect tree of depth D (a short branch repeats its leaf), laid out level by
level as tables of feature, threshold and leaf value, and evaluated by D unrolled steps of
gather -> compare -> idx = 2 idx + 1 + right, with the index arithmetic in f32 (tract's
int64 arithmetic is ~50x slower). The leaf value is (depth + c(n_leaf)) / (trees * c(max_samples)),
so the sum over trees is the mean path length over c(max_samples) and the output
2^-sum is scikit-learn's anomaly score, -score_samples.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import IsolationForest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apo_features as F  # noqa: E402
import synthetic  # noqa: E402

SEED = 20261127
TREES = 100
MAX_SAMPLES = 256
THRESHOLD_QUANTILE = 0.995


def average_path_length(n: float) -> float:
    """c(n) of Liu et al., as scikit-learn computes it."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


def training_vectors(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    rows = []
    services, singles, windows = 120, 240, 300
    for _ in range(services):
        sig = synthetic.service_windows(rng, windows, float(rng.choice([10.0, 60.0])))
        feats = F.window_features(sig)
        rows.append(feats[~np.isnan(feats).any(axis=1)])
    for _ in range(singles):
        values = synthetic.series(rng, windows)
        feats = F.window_features(F.univariate_signals(values, 300.0))
        rows.append(feats[~np.isnan(feats).any(axis=1)])
    x = np.concatenate(rows)
    summary = {
        "source": "synthetic healthy behaviour (models/train/synthetic.py), never the NAB corpus",
        "service_keys": services,
        "univariate_series": singles,
        "windows_per_key": windows,
        "vectors": int(x.shape[0]),
    }
    return x, summary


def perfect_tables(forest: IsolationForest, depth: int):
    """Level-order tables of every tree padded to a perfect tree of `depth`."""
    internal = 2**depth - 1
    leaves = 2**depth
    n_trees = len(forest.estimators_)
    denom = n_trees * average_path_length(forest.max_samples_)
    feature = np.zeros((n_trees, internal), dtype=np.int64)
    threshold = np.zeros((n_trees, internal), dtype=np.float32)
    leaf = np.zeros((n_trees, leaves), dtype=np.float32)
    for t, (est, feats) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        tree = est.tree_

        def fill(node: int, slot: int, level: int, node_depth: int):
            if level == depth:
                value = node_depth + average_path_length(tree.n_node_samples[node])
                leaf[t, slot - internal] = value / denom
                return
            left, right = tree.children_left[node], tree.children_right[node]
            if left == -1:  # a leaf above the bottom: both children repeat it
                fill(node, 2 * slot + 1, level + 1, node_depth)
                fill(node, 2 * slot + 2, level + 1, node_depth)
                return
            feature[t, slot] = int(feats[tree.feature[node]])
            threshold[t, slot] = np.float32(tree.threshold[node])
            fill(left, 2 * slot + 1, level + 1, node_depth + 1)
            fill(right, 2 * slot + 2, level + 1, node_depth + 1)

        fill(0, 0, 0, 0)
    return feature, threshold, leaf


def build_onnx(forest: IsolationForest, n_features: int) -> onnx.ModelProto:
    depth = max(est.tree_.max_depth for est in forest.estimators_)
    feature, threshold, leaf = perfect_tables(forest, depth)
    n_trees, internal = feature.shape
    leaves = leaf.shape[1]
    inits = [
        numpy_helper.from_array(feature.reshape(-1), "feature_table"),
        numpy_helper.from_array(threshold.reshape(-1), "threshold_table"),
        numpy_helper.from_array(leaf.reshape(-1), "leaf_table"),
        numpy_helper.from_array((np.arange(n_trees) * internal).astype(np.float32), "node_offset"),
        numpy_helper.from_array((np.arange(n_trees) * leaves - internal).astype(np.float32), "leaf_offset"),
        numpy_helper.from_array(feature[:, 0].copy(), "root_feature"),
        numpy_helper.from_array(threshold[:, 0].copy(), "root_threshold"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.ones((n_trees, 1), dtype=np.float32), "ones"),
        numpy_helper.from_array(np.array(-np.log(2.0), dtype=np.float32), "minus_ln2"),
    ]
    nodes = [
        helper.make_node("Gather", ["features", "root_feature"], ["x0"], axis=1),
        helper.make_node("Greater", ["x0", "root_threshold"], ["r0b"]),
        helper.make_node("Cast", ["r0b"], ["r0"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["r0", "one"], ["idx1"]),
    ]
    idx = "idx1"
    for level in range(1, depth):
        p = f"l{level}_"
        nodes += [
            helper.make_node("Add", [idx, "node_offset"], [p + "flatf"]),
            helper.make_node("Cast", [p + "flatf"], [p + "flat"], to=TensorProto.INT64),
            helper.make_node("Gather", ["feature_table", p + "flat"], [p + "feat"], axis=0),
            helper.make_node("GatherElements", ["features", p + "feat"], [p + "x"], axis=1),
            helper.make_node("Gather", ["threshold_table", p + "flat"], [p + "thr"], axis=0),
            helper.make_node("Greater", [p + "x", p + "thr"], [p + "rb"]),
            helper.make_node("Cast", [p + "rb"], [p + "r"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [idx, "two"], [p + "i2"]),
            helper.make_node("Add", [p + "i2", "one"], [p + "i21"]),
            helper.make_node("Add", [p + "i21", p + "r"], [p + "next"]),
        ]
        idx = p + "next"
    nodes += [
        helper.make_node("Add", [idx, "leaf_offset"], ["leaf_flatf"]),
        helper.make_node("Cast", ["leaf_flatf"], ["leaf_flat"], to=TensorProto.INT64),
        helper.make_node("Gather", ["leaf_table", "leaf_flat"], ["leaf_values"], axis=0),
        helper.make_node("MatMul", ["leaf_values", "ones"], ["path_sum"]),
        helper.make_node("Mul", ["path_sum", "minus_ln2"], ["log_score"]),
        helper.make_node("Exp", ["log_score"], ["anomaly_score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "apo_isolation_forest",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("anomaly_score", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="apo-train")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, depth


def features_golden(rng: np.random.Generator) -> dict:
    """A service's signals with an incident, and the feature vectors computed here; longer
    than the history, so the oldest windows leave it as in the stream."""
    n = F.HISTORY + 60
    sig = synthetic.service_windows(rng, n, 10.0)
    sig[n - 20 : n - 16, 0:3] *= 4.0
    sig[n - 20 : n - 16, 4] += 0.2
    feats = F.window_features(sig)
    return {
        "signals": sig.tolist(),
        "features": [None if np.isnan(r).any() else r.tolist() for r in feats],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "artifacts"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "golden"), exist_ok=True)

    rng = np.random.default_rng(SEED)
    x, summary = training_vectors(rng)
    print(f"training on {x.shape[0]} vectors of {x.shape[1]} features")
    forest = IsolationForest(n_estimators=TREES, max_samples=MAX_SAMPLES, random_state=SEED % 2**31)
    forest.fit(x)
    train_scores = -forest.score_samples(x)
    threshold = float(np.quantile(train_scores, THRESHOLD_QUANTILE))

    model, depth = build_onnx(forest, x.shape[1])
    model_path = os.path.join(out, "iforest.onnx")
    onnx.save(model, model_path)
    digest = hashlib.sha256(open(model_path, "rb").read()).hexdigest()

    # parity vectors: training rows, fresh rows and far-out rows
    test = np.concatenate([
        x[rng.choice(x.shape[0], 64, replace=False)],
        rng.normal(0, 3, (48, x.shape[1])),
        rng.uniform(-F.CLIP, F.CLIP, (16, x.shape[1])),
    ]).astype(np.float32)
    golden = {
        "features": test.tolist(),
        "anomaly_score": (-forest.score_samples(test.astype(np.float64))).tolist(),
    }
    with open(os.path.join(out, "golden", "iforest.json"), "w") as f:
        json.dump(golden, f)
    with open(os.path.join(out, "golden", "features.json"), "w") as f:
        json.dump(features_golden(rng), f)

    meta = {
        "kind": "isolation_forest",
        "version": f"iforest-v{F.FEATURES_VERSION}-{digest[:12]}",
        "sha256": digest,
        "features_version": F.FEATURES_VERSION,
        "input": "features",
        "output": "anomaly_score",
        "features": F.FEATURE_NAMES,
        "normalisation": {
            "signals": F.SIGNALS,
            "history": F.HISTORY,
            "min_history": F.MIN_HISTORY,
            "clip": F.CLIP,
            "scale": "max(1.4826 * MAD(history), 0.01 * |median(history)|, 1e-9)",
            "level": "clip((x - median(history)) / scale, -clip, clip)",
            "delta": "clip((x - previous) / scale, -clip, clip)",
        },
        "threshold": threshold,
        "threshold_rule": f"{THRESHOLD_QUANTILE} quantile of the training vectors' scores",
        "training_data": summary,
        "training_metrics": {
            "trees": TREES,
            "max_samples": MAX_SAMPLES,
            "padded_depth": depth,
            "train_score_mean": float(train_scores.mean()),
            "train_score_p99": float(np.quantile(train_scores, 0.99)),
            "train_score_max": float(train_scores.max()),
        },
        "seed": SEED,
        "trained_with": {"scikit-learn": __import__("sklearn").__version__, "onnx": onnx.__version__},
    }
    with open(os.path.join(out, "iforest.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {model_path} ({os.path.getsize(model_path)} bytes), depth {depth}, threshold {threshold:.4f}")


if __name__ == "__main__":
    main()
