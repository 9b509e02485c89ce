"""Golden vectors for apo-dataflow's ExactSum (dataflow/src/ops/exact_sum.rs): each line is a
list of f64 values and math.fsum of them, all as the hex of their IEEE-754 bits.

Run: python3 dataflow/golden/fsum.py > dataflow/golden/fsum.txt
"""
import math
import random
import struct


def bits(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]


def cases():
    # CPython's own test_math.testFsum cases with finite inputs.
    yield [1.0 / i for i in range(1, 1001)]
    yield [(-1.0) ** i / i for i in range(1, 1001)]
    yield [1e100, 1.0, -1e100, 1e-100, 1e50, -1.0, -1e50]
    yield [2.0**53, -0.5, -2.0**-54]
    yield [2.0**53, 1.0, 2.0**-100]
    yield [2.0**53 + 10.0, 1.0, 2.0**-100]
    yield [2.0**53 - 4.0, 0.5, 2.0**-54]
    yield [0.1] * 10 + [-1.0]
    rng = random.Random(20261207)
    # Latencies: positive, a few significant digits, as a window's points are.
    for n in (3, 10, 100, 1000):
        for _ in range(6):
            yield [round(rng.lognormvariate(3, 1.2), 3) for _ in range(n)]
    # Wide magnitudes and cancellation, where order changes a plain sum the most.
    for _ in range(20):
        n = rng.randrange(2, 200)
        xs = [rng.uniform(-1, 1) * 10.0 ** rng.randrange(-20, 21) for _ in range(n)]
        xs += [-x for x in rng.sample(xs, n // 2)]
        rng.shuffle(xs)
        yield xs
    # Ties: sums exactly half way between two doubles, broken by a tiny last value.
    for _ in range(10):
        big = 2.0 ** rng.randrange(53, 60)
        yield [big, 1.0, rng.choice([2.0**-60, -2.0**-60, 0.0])]


def main():
    print("# values (hex bits, space-separated) = math.fsum (hex bits); from dataflow/golden/fsum.py")
    for xs in cases():
        print(" ".join(bits(x) for x in xs) + " = " + bits(math.fsum(xs)))


if __name__ == "__main__":
    main()
