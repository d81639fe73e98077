"""Python's multiprocessing.Pool on the work `cargo bench --bench pool`
measures, so the ratio is taken in one run. Run by the bench itself
(criterion's iter_custom), or by hand:

    python3 benches/python_pool.py map ITERS      # Pool(2).map over 1,000,000 ints
    python3 benches/python_pool.py apply ITERS    # apply_async().get() on an idle Pool(2)
    python3 benches/python_pool.py                # both, human-readable

Prints the total seconds the ITERS timed operations took (pool start-up and
the idle pauses excluded).
"""
import multiprocessing as mp
import sys
import time


def trivial(x):
    return x * 3 + 1


def time_map(pool, iters, n=1_000_000):
    items = list(range(n))
    pool.map(trivial, items)  # warm up
    total = 0.0
    for _ in range(iters):
        t0 = time.perf_counter()
        pool.map(trivial, items)
        total += time.perf_counter() - t0
    return total


def time_apply(pool, iters):
    for i in range(20):
        pool.apply_async(trivial, (i,)).get()
    total = 0.0
    for i in range(iters):
        time.sleep(0.002)  # let the workers go idle (blocked on their pipe)
        t0 = time.perf_counter()
        pool.apply_async(trivial, (i,)).get()
        total += time.perf_counter() - t0
    return total


def main():
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        if len(sys.argv) == 3:
            what, iters = sys.argv[1], int(sys.argv[2])
            total = time_map(pool, iters) if what == "map" else time_apply(pool, iters)
            print(f"{total:.9f}")
        else:
            t = time_map(pool, 5) / 5
            print(f"python Pool(2).map 1M trivial: {t * 1e3:8.1f} ms = {1e6 / t / 1e6:6.2f} M items/s")
            t = time_apply(pool, 300) / 300
            print(f"python apply_async().get() idle: {t * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
