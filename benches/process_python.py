"""Python's multiprocessing.Process start + join of an empty process (fork
start method), for comparison with `cargo bench --bench process`.

    python3 benches/process_python.py                 # medians, printed
    python3 benches/process_python.py start_join N    # total seconds of N

The second form is what benches/process.rs runs for its `alt_python`
figure (after a warm-up of 20, the loop alone is timed).
"""
import multiprocessing as mp
import os
import statistics
import sys
import time


def empty():
    pass


def raw_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def start_join():
    p = CTX.Process(target=empty)
    p.start()
    p.join()


def measure(f, n=300):
    for _ in range(20):
        f()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


CTX = mp.get_context("fork")

def total(f, iters):
    for _ in range(20):
        f()
    t0 = time.perf_counter()
    for _ in range(iters):
        f()
    return time.perf_counter() - t0


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "start_join":
    print(total(start_join, int(sys.argv[2])))
elif __name__ == "__main__":
    print(f"python os.fork + os.waitpid        median {measure(raw_fork):8.1f} us")
    print(f"python Process(fork) start + join  median {measure(start_join):8.1f} us")
