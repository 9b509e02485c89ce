"""Train the LSTM forecaster on synthetic series and export it as ONNX for tract.

    python models/train/train_lstm.py [--out models/artifacts] [--epochs 6]

The model reads the last 48 values of a series at its own resolution (normalised by their
mean and scale, apo_features.normalise_window) and gives, for each of the next 15 steps, the
median and a 90 % interval (5 % and 95 % quantiles, pinball loss). The stream and
`apo forecast` take the step that lies 15 minutes ahead: step 15 at 1-minute windows, step 3
at NAB's 5-minute samples; a series coarser than 15 minutes or finer than 1 minute is
refused.

Export (DESIGN.md §5): TorchScript exporter (dynamo=False), batch fixed at 1, h0/c0 graph
inputs, no packed sequences. Writes `lstm.onnx`, `lstm.json` and `golden/lstm.json`.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apo_features as F  # noqa: E402
import synthetic  # noqa: E402

SEED = 20261127
HIDDEN = 32
QUANTILES = (0.5, 0.05, 0.95)


class Forecaster(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, F.HORIZON_STEPS * 3)

    def forward(self, x, h0, c0):
        out, _ = self.lstm(x, (h0, c0))
        z = self.head(out[:, -1, :]).reshape(-1, F.HORIZON_STEPS, 3)
        median = z[:, :, 0]
        lower = median - nn.functional.softplus(z[:, :, 1])
        upper = median + nn.functional.softplus(z[:, :, 2])
        return torch.stack([median, lower, upper], dim=2)


def windows(rng: np.random.Generator, n_series: int, length: int):
    xs, ys = [], []
    for _ in range(n_series):
        s = synthetic.forecast_series(rng, length)
        for start in range(0, length - F.SEQ_LEN - F.HORIZON_STEPS, 7):
            hist = s[start : start + F.SEQ_LEN]
            fut = s[start + F.SEQ_LEN : start + F.SEQ_LEN + F.HORIZON_STEPS]
            mean, scale = F.normalise_window(hist)
            xs.append((hist - mean) / scale)
            ys.append((fut - mean) / scale)
    x = np.asarray(xs, dtype=np.float32)[:, :, None]
    y = np.clip(np.asarray(ys, dtype=np.float32), -50, 50)
    return x, y


def pinball(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = 0.0
    for k, q in enumerate(QUANTILES):
        err = y - pred[:, :, k]
        loss = loss + torch.maximum(q * err, (q - 1) * err).mean()
    return loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "artifacts"))
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "golden"), exist_ok=True)

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    x, y = windows(rng, 400, 700)
    xv, yv = windows(rng, 60, 700)
    print(f"training on {len(x)} windows, validating on {len(xv)}")

    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    h0 = torch.zeros(1, 256, HIDDEN)
    history = []
    for epoch in range(args.epochs):
        perm = torch.from_numpy(rng.permutation(len(xt)))
        total, batches = 0.0, 0
        for b in range(0, len(perm) - 255, 256):
            idx = perm[b : b + 256]
            opt.zero_grad()
            loss = pinball(model(xt[idx], h0, h0), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        with torch.no_grad():
            hv = torch.zeros(1, len(xv), HIDDEN)
            pv = model(torch.from_numpy(xv), hv, hv)
            val = float(pinball(pv, torch.from_numpy(yv)))
            inside = ((torch.from_numpy(yv) >= pv[:, :, 1]) & (torch.from_numpy(yv) <= pv[:, :, 2])).float().mean()
        history.append({"epoch": epoch + 1, "train_pinball": total / batches, "val_pinball": val, "val_coverage_90": float(inside)})
        print(history[-1])

    model.eval()
    model_path = os.path.join(out, "lstm.onnx")
    example_inputs = (torch.zeros(1, F.SEQ_LEN, 1), torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN))
    torch.onnx.export(
        model, example_inputs, model_path, dynamo=False, opset_version=13,
        input_names=["history", "h0", "c0"], output_names=["forecast"],
    )
    digest = hashlib.sha256(open(model_path, "rb").read()).hexdigest()

    with torch.no_grad():
        gx = np.concatenate([xv[rng.choice(len(xv), 12, replace=False)], rng.normal(0, 1, (4, F.SEQ_LEN, 1)).astype(np.float32)])
        gh = np.concatenate([np.zeros((12, 1, 1, HIDDEN)), rng.normal(0, 0.3, (4, 1, 1, HIDDEN))]).astype(np.float32)
        gc = np.concatenate([np.zeros((12, 1, 1, HIDDEN)), rng.normal(0, 0.3, (4, 1, 1, HIDDEN))]).astype(np.float32)
        outs = [model(torch.from_numpy(gx[i : i + 1]), torch.from_numpy(gh[i]), torch.from_numpy(gc[i])).numpy()[0] for i in range(len(gx))]
    golden = {
        "history": gx[:, :, 0].tolist(),
        "h0": gh[:, 0, 0, :].tolist(),
        "c0": gc[:, 0, 0, :].tolist(),
        "forecast": [o.tolist() for o in outs],
    }
    with open(os.path.join(out, "golden", "lstm.json"), "w") as f:
        json.dump(golden, f)

    meta = {
        "kind": "lstm_forecaster",
        "version": f"lstm-v{F.FEATURES_VERSION}-{digest[:12]}",
        "sha256": digest,
        "features_version": F.FEATURES_VERSION,
        "inputs": {"history": [1, F.SEQ_LEN, 1], "h0": [1, 1, HIDDEN], "c0": [1, 1, HIDDEN]},
        "output": {"forecast": [1, F.HORIZON_STEPS, 3]},
        "features": ["value"],
        "seq_len": F.SEQ_LEN,
        "hidden": HIDDEN,
        "horizon_steps": F.HORIZON_STEPS,
        "horizon_seconds": F.FORECAST_HORIZON_SECONDS,
        "output_columns": ["median", "lower", "upper"],
        "interval": {"lower_quantile": QUANTILES[1], "upper_quantile": QUANTILES[2]},
        "normalisation": {
            "mean": "mean of the 48 input values",
            "scale": "max(population std, 0.001 * |mean|, 1e-9)",
            "input": "(x - mean) / scale",
            "output": "mean + scale * y",
        },
        "training_data": {
            "source": "synthetic series (models/train/synthetic.py: request counts, CPU percent, latency; daily-like cycles), never the NAB corpus",
            "train_windows": int(len(x)),
            "validation_windows": int(len(xv)),
        },
        "training_metrics": history,
        "seed": SEED,
        "trained_with": {"torch": torch.__version__},
    }
    with open(os.path.join(out, "lstm.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {model_path} ({os.path.getsize(model_path)} bytes)")


if __name__ == "__main__":
    main()
