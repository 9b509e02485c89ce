"""NAB scoring against cases worked out by hand from NAB's definition (nab_score.py's doc).

    python3 -m unittest discover -s models/train -p 'test_*.py'
"""

import math
import unittest

import nab_score as N


def dets(n, rows):
    d = [False] * n
    for r in rows:
        d[r] = True
    return d


class NabScore(unittest.TestCase):
    # 100 rows: probation is 15 rows; one window at rows 50..59 (width 10)
    W = [(50, 59)]

    def test_sigmoid_at_its_landmarks(self):
        self.assertAlmostEqual(N.scaled_sigmoid(0.0), 0.0)
        self.assertAlmostEqual(N.scaled_sigmoid(-1.0), 2 / (1 + math.exp(-5)) - 1)
        self.assertEqual(N.scaled_sigmoid(3.5), -1.0)

    def test_probation_is_15_percent_capped_at_750(self):
        self.assertEqual(N.probationary_rows(100), 15)
        self.assertEqual(N.probationary_rows(4032), 604)
        self.assertEqual(N.probationary_rows(10000), 750)

    def test_earliest_detection_scores_one(self):
        f = N.score_file(dets(100, [50, 52]), self.W)
        self.assertAlmostEqual(f.score, 1.0)
        self.assertEqual((f.detected_windows, f.detections_in_windows, f.false_positives), (1, 2, 0))
        self.assertAlmostEqual(N.normalised([f]), 100.0)

    def test_late_detection_scores_less(self):
        # y = -(59 - 59 + 1) / 10 = -0.1; sigma(-0.1) / sigma(-1) = 0.2482415...
        f = N.score_file(dets(100, [59]), self.W)
        self.assertAlmostEqual(f.score, 0.24824154977542992)

    def test_false_positives_are_weighted_by_distance(self):
        # row 5 is probationary (ignored); row 30 precedes every window: -1 x 0.11;
        # row 60 is 1 row past a window of width 10: sigma(1/9) = -0.2708471 x 0.11;
        # the window is missed: -1
        f = N.score_file(dets(100, [5, 30, 60]), self.W)
        self.assertAlmostEqual(f.score, -0.11 + 0.11 * -0.2708471185167214 - 1.0)
        self.assertEqual(f.false_positives, 2)
        self.assertEqual(f.rows_outside_windows, 100 - 15 - 10)
        self.assertAlmostEqual(N.normalised([f]), 100 * (f.score + 1) / 2)

    def test_null_detector_scores_zero_and_a_file_without_windows_only_loses(self):
        self.assertAlmostEqual(N.normalised([N.score_file(dets(100, []), self.W)]), 0.0)
        f = N.score_file(dets(100, [40]), [])
        self.assertAlmostEqual(f.score, -0.11)

    def test_window_rows_from_timestamps(self):
        self.assertEqual(N.window_rows([0, 5, 10, 15, 20], [(4, 16)]), [(1, 3)])


if __name__ == "__main__":
    unittest.main()
