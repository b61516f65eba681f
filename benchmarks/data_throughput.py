"""How fast the built-in synthetic butterflies are drawn and served by a DataLoader.

    python benchmarks/data_throughput.py           # 32 and 128 px, 0 and 2 workers (about a minute)
    python benchmarks/data_throughput.py --quick   # a few seconds: smoke run with few images

Prints images per second for each (size, workers): drawn afresh (`cache=False`), which is the cost of the first epoch,
and, for the sizes that fit the pixel cache, a later epoch read from the cache. The rate counts from the first batch
on, so worker start-up is excluded (it is printed separately). The machine's load average is printed too: with
other work running on the same cores the rates drop, and the table says so.
"""
import argparse, os, time
import torch
from torch.utils.data import DataLoader
from butterfly_diffusion.data import SyntheticButterflies


def rate(ds, workers: int, batch_size: int = 64, epochs: int = 1) -> tuple[float, float]:
    "Images/s over the last of `epochs` passes through `ds` (after its first batch), and seconds to the first batch."
    dl = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    for epoch in range(epochs):
        t0 = time.perf_counter(); n = 0; t_first = None
        for x, _ in dl:
            if t_first is None: t_first = time.perf_counter(); startup = t_first - t0
            else: n += len(x)
    return n / (time.perf_counter() - t_first), startup


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='a few seconds, few images (smoke run)')
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_images = {32: 640, 128: 256} if args.quick else {32: 6400, 128: 1600}
    load0 = os.getloadavg()[0]
    print(f'{"size":>5} {"workers":>7} {"drawn img/s":>12} {"cached img/s":>13} {"start-up s":>11}')
    for size in (32, 128):
        for workers in (0, 2):
            n_per_class = n_images[size] // 10
            drawn, startup = rate(SyntheticButterflies(10, size, n_per_class, cache=False), workers)
            cached = ''
            if size <= 64:
                c, _ = rate(SyntheticButterflies(10, size, n_per_class, cache=True), workers, epochs=2)
                cached = f'{c:,.0f}'
            print(f'{size:>5} {workers:>7} {drawn:>12,.0f} {cached:>13} {startup:>11.2f}', flush=True)
    load1, cores = os.getloadavg()[0], os.cpu_count()
    print(f'load average {load0:.1f} before, {load1:.1f} after, on {cores} cores'
          + (' -- other work was competing for the CPU; rates are lower than on an idle machine'
             if max(load0, load1) > cores + 0.5 else ''))


if __name__ == '__main__': main()
