"""Are the built-in synthetic species visually separable? Train a small clean CNN classifier on CPU and report
its accuracy on held-out pictures (picture numbers from PICTURES['judge'] on, never seen in training).

    python experiments/separability.py           # 10 species at 32 px and 75 species at 64 px, <= 2 min training each
    python experiments/separability.py --quick   # a few seconds: tiny sizes and budgets (smoke run; accuracy is low)

Targets: >= 95% on 10 species at 32 px, >= 90% on 75 species at 64 px. Training stops at the time budget (the
learning rate follows a cosine over that budget), so a machine busy with other work gets fewer steps and a lower
score: the load average is printed to tell. (On an oversubscribed machine `--threads 1` trains faster than 2.)
"""
import argparse, math, os, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from butterfly_diffusion.data import PICTURES, SyntheticButterflies


def render(num_classes: int, size: int, n_per_class: int, first_index: int = 0, workers: int = 2):
    "All pictures of a `SyntheticButterflies` set as uint8 (N, 3, S, S) and labels (N,), drawn by `workers` processes."
    ds = SyntheticButterflies(num_classes, size, n_per_class, first_index=first_index, cache=False)
    xs, ys = [], []
    for x, y in DataLoader(ds, batch_size=256, num_workers=workers):
        xs.append(((x + 1) * 127.5).round().to(torch.uint8)); ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def small_cnn(num_classes: int, width: int = 32) -> nn.Module:
    "Four 3x3 convolutions (the first three with stride 2) with batch norm and ReLU, global average pooling, linear."
    def conv(c_in, c_out, stride):
        return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*conv(3, width, 2), *conv(width, 2 * width, 2), *conv(2 * width, 4 * width, 2),
                         *conv(4 * width, 8 * width, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8 * width, num_classes))


def to_input(x: torch.Tensor) -> torch.Tensor: return x.float() / 127.5 - 1


def train(model, x, y, budget_s: float, batch_size: int = 64, lr: float = 3e-3) -> dict:
    "AdamW with random flips until `budget_s` seconds have passed, the learning rate on a cosine over the budget."
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4)
    model.train(); t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget_s:
        for idx in torch.randperm(len(x)).split(batch_size):
            elapsed = time.perf_counter() - t0
            if elapsed >= budget_s: break
            if len(idx) < batch_size: continue
            for g in opt.param_groups: g['lr'] = lr * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s))
            xb = to_input(x[idx])
            xb = torch.where(torch.rand(len(idx), 1, 1, 1) < 0.5, xb.flip(-1), xb)   # random horizontal flips
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(); loss.backward(); opt.step(); steps += 1
    return dict(steps=steps, seconds=time.perf_counter() - t0, images=steps * batch_size, loss=loss.item())


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    pred = torch.cat([model(to_input(xb)).argmax(1) for xb in x.split(500)])
    return (pred == y).float().mean().item()


def run(num_classes: int, size: int, n_train: int, n_test: int, budget_s: float) -> dict:
    "Render, train within the budget, test on held-out pictures; return the numbers of one table row."
    torch.manual_seed(0)
    t0 = time.perf_counter()
    x, y = render(num_classes, size, n_train)
    x_test, y_test = render(num_classes, size, n_test, first_index=PICTURES['judge'])
    render_s = time.perf_counter() - t0
    model = small_cnn(num_classes)
    stats = train(model, x, y, budget_s)
    return dict(species=num_classes, px=size, train=len(x), test=len(x_test), render_s=render_s,
                epochs=stats['images'] / len(x), **stats, acc=accuracy(model, x_test, y_test))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='a few seconds: tiny sizes and budgets (smoke run)')
    ap.add_argument('--budget', type=float, default=115, help='training seconds per configuration (default 115)')
    ap.add_argument('--threads', type=int, default=2, help='torch threads (default 2, one per core of the dev machine)')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # (species, pixels, training pictures per species, held-out pictures per species, training seconds, target)
    configs = ([(10, 16, 30, 10, 3, None), (75, 24, 4, 2, 3, None)] if args.quick else
               [(10, 32, 500, 100, args.budget, 0.95), (75, 64, 300, 40, args.budget, 0.90)])
    load0 = os.getloadavg()[0]
    print(f'{"species":>7} {"px":>4} {"train":>6} {"test":>5} {"render s":>8} {"train s":>7} {"steps":>6} '
          f'{"epochs":>6} {"held-out acc":>12} {"target":>7}')
    for nc, px, n_train, n_test, budget, target in configs:
        r = run(nc, px, n_train, n_test, budget)
        verdict = '' if target is None else f'{target:.0%} ' + ('ok' if r['acc'] >= target else 'MISSED')
        print(f'{nc:>7} {px:>4} {r["train"]:>6} {r["test"]:>5} {r["render_s"]:>8.1f} {r["seconds"]:>7.1f} '
              f'{r["steps"]:>6} {r["epochs"]:>6.1f} {r["acc"]:>12.1%} {verdict:>7}', flush=True)
    load1, cores = os.getloadavg()[0], os.cpu_count()
    print(f'batch 64, AdamW 3e-3 cosine over the budget, {torch.get_num_threads()} threads; load average '
          f'{load0:.1f} before, {load1:.1f} after, on {cores} cores'
          + (' -- other work was competing for the CPU, so training got fewer steps than on an idle machine'
             if max(load0, load1) > cores + 0.5 else ''))


if __name__ == '__main__': main()
