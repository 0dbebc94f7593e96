"""The Python side of `cargo bench --bench process`: the same three figures
for multiprocessing, printed one per line as `<figure> <value>` for the Rust
harness to read (values in tasks/s or nanoseconds).

    python3 benches/process/python_pool.py <tasks> <rounds> <applies> <spawns>
"""
import multiprocessing as mp
import sys
import time


def tiny(x):
    return (x * 3) ^ 0x5A


def main():
    tasks, rounds, applies, spawns = (int(a) for a in sys.argv[1:5])
    for _ in range(spawns):
        t = time.perf_counter()
        pool = mp.Pool(2)
        pool.apply(tiny, (1,))
        print("spawn_ns", (time.perf_counter() - t) * 1e9, flush=True)
        pool.terminate()
        pool.join()
    with mp.Pool(2) as pool:
        pool.map(tiny, range(10_000), chunksize=1000)  # warm-up
        for _ in range(rounds):
            t = time.perf_counter()
            out = pool.map(tiny, range(tasks), chunksize=1000)
            rate = tasks / (time.perf_counter() - t)
            assert out[-1] == tiny(tasks - 1)
            print("map_per_s", rate, flush=True)
        for i in range(min(applies, 100)):  # warm-up
            pool.apply(tiny, (i,))
        for i in range(applies):
            t = time.perf_counter()
            pool.apply(tiny, (i,))
            print("apply_ns", (time.perf_counter() - t) * 1e9)


if __name__ == "__main__":
    main()
