"""The NAB score, computed as NAB defines it (standard profile), plus plain detection counts.

Standard library only, so its tests (`test_nab_score.py`) run anywhere.

For one file: rows before the probationary period (15 % of the rows, at most 750) are not
scored. In each labelled window only the earliest detection counts, as a true positive
weighted by sigma(y) = 2 / (1 + e^(5y)) - 1, y the detection's position relative to the
window's end (-1 at its first row, -1/width at its last), divided by sigma(-1) so the
earliest counts A_TP. A detection outside every window is a false positive weighted by
sigma of its distance past the preceding window's end over that window's width minus one
(-1 when no window precedes it), times A_FP. A window with no detection costs A_FN.
Standard profile: A_TP = 1.0, A_FP = 0.11, A_FN = 1.0.

Over a corpus the file scores are summed and normalised to
100 * (S - S_null) / (S_perfect - S_null), where the null detector never fires and the perfect
one detects every window at its first row.
"""

import math
from dataclasses import dataclass, field

STANDARD = {"tp": 1.0, "fp": 0.11, "fn": 1.0}


def scaled_sigmoid(y: float) -> float:
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probationary_rows(n: int) -> int:
    return min(math.floor(0.15 * n), 750)


def window_rows(times: list, windows: list) -> list:
    """Row index ranges [left, right] of windows given as (start, end) comparable to times."""
    out = []
    for start, end in windows:
        rows = [i for i, t in enumerate(times) if start <= t <= end]
        if rows:
            out.append((rows[0], rows[-1]))
    return out


@dataclass
class FileScore:
    score: float = 0.0
    perfect: float = 0.0
    null: float = 0.0
    windows: int = 0
    detected_windows: int = 0
    detections: int = 0
    detections_in_windows: int = 0
    false_positives: int = 0
    rows_outside_windows: int = 0
    first_tp_positions: list = field(default_factory=list)


def score_file(detections: list, windows: list, profile: dict = STANDARD) -> FileScore:
    """`detections`: one bool per row; `windows`: [(left_row, right_row)] in order."""
    n = len(detections)
    prob = probationary_rows(n)
    max_tp = scaled_sigmoid(-1.0)
    in_window = [None] * n
    for k, (left, right) in enumerate(windows):
        for i in range(left, right + 1):
            in_window[i] = k
    fs = FileScore(windows=len(windows))
    fs.perfect = profile["tp"] * len(windows)
    fs.null = -profile["fn"] * len(windows)
    tp_score = [None] * len(windows)
    prev_right, prev_width = None, None
    next_window = 0
    for i in range(n):
        while next_window < len(windows) and windows[next_window][1] < i:
            prev_right = windows[next_window][1]
            prev_width = windows[next_window][1] - windows[next_window][0] + 1
            next_window += 1
        k = in_window[i]
        if k is None and i >= prob:
            fs.rows_outside_windows += 1
        if not detections[i] or i < prob:
            continue
        fs.detections += 1
        if k is not None:
            fs.detections_in_windows += 1
            if tp_score[k] is None:
                left, right = windows[k]
                width = right - left + 1
                y = -(right - i + 1) / width
                tp_score[k] = scaled_sigmoid(y) * profile["tp"] / max_tp
                fs.first_tp_positions.append(y)
        else:
            fs.false_positives += 1
            if prev_right is None:
                u = -1.0
            else:
                u = scaled_sigmoid(abs(prev_right - i) / float(max(prev_width - 1, 1)))
            fs.score += u * profile["fp"]
    for s in tp_score:
        if s is None:
            fs.score -= profile["fn"]
        else:
            fs.score += s
            fs.detected_windows += 1
    return fs


def normalised(files: list) -> float:
    s = sum(f.score for f in files)
    perfect = sum(f.perfect for f in files)
    null = sum(f.null for f in files)
    if perfect == null:
        return float("nan")
    return 100.0 * (s - null) / (perfect - null)
