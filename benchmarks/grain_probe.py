"""Where the demo's grain comes from: each network's noise-prediction error by timestep, and samples whose last steps
are taken by another network.

    python benchmarks/grain_probe.py checkpoints/demo --fine demo --switch 50,100,200
    python benchmarks/grain_probe.py checkpoints/demo runs/probe-plain/s1400-ema0.995.pt runs/probe-g20/s1400-ema0.995.pt

For each checkpoint (a file, a folder, or the name of shipped weights):
- the mean squared error of its noise prediction on held-out built-in butterflies noised to t = 5 ... 700 (one draw of
  the noise, seed 1), the quantity its training minimises, by noise level;
- the guided row of `butterfly-diffusion evaluate` (the same `generate` and `measure`, seed 123), and the first eight
  samples of each species in `--out`.

With `--fine W --switch T0,...` the first checkpoint also draws samples from the same noise whose steps below each t0
are taken by the UNet of W (the shipped 11,200-step `demo` weights, say), the steps above it by its own. If the samples
clean up when only the last steps change hands, the grain is made in those steps.
"""
import argparse
from pathlib import Path
import torch
from torch import nn
from butterfly_diffusion.guidance import load_pipeline
from butterfly_diffusion.evaluation import synthetic_reference, generate, measure
from common import save_species_grid

TIMESTEPS = (5, 20, 50, 100, 200, 400, 700)

class Handover(nn.Module):
    "A UNet that is `coarse` while t >= t0 and `fine` below: what `sample` calls as the pipeline's `model_0`."
    def __init__(self, coarse: nn.Module, fine: nn.Module, t0: int):
        super().__init__()
        self.coarse, self.fine, self.t0 = coarse, fine, t0
        self.num_classes, self.config = coarse.num_classes, coarse.config

    def forward(self, x, t, y=None):
        if int(t[0]) >= self.t0: return self.coarse(x, t, y)
        return self.fine(x, t, y if self.fine.num_classes else None)

@torch.no_grad()
def eps_error(model: nn.Module, schedule, x0: torch.Tensor, y: torch.Tensor) -> list[float]:
    "Mean squared error of `model`'s noise prediction on `x0` noised to each of `TIMESTEPS` (the same noise for every model)."
    g, out = torch.Generator().manual_seed(1), []
    for t in TIMESTEPS:
        eps, tt = torch.randn(x0.shape, generator=g), torch.full((len(x0),), t)
        out.append((model(schedule.q_sample(x0, tt, eps), tt, y if model.num_classes else None) - eps).square().mean().item())
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoints', nargs='+', help='checkpoint files or folders, or names of shipped weights')
    p.add_argument('--n_per_class', type=int, default=50, help='guided samples per species')
    p.add_argument('--fine', default=None, help='weights whose UNet takes the steps below t0 (e.g. demo)')
    p.add_argument('--switch', default='50,100,200', help='the t0 values, comma-separated')
    p.add_argument('--out', default='runs/grain', help='folder for the sample grids')
    a = p.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    pipes = [load_pipeline(c) for c in a.checkpoints]
    cfg = pipes[0].cfg
    ref = synthetic_reference(len(pipes[0].classes), cfg.image_size, a.n_per_class, cfg.seed, dict(progress=False))
    n = a.n_per_class * len(ref.classes)
    print(f'{n} guided samples per row (seed 123), judge {ref.judge_accuracy:.1%} on held-out images, '
          f'floor FID {ref.floor()["fid"]:.3f}\n')
    x0, y0 = ref.real[0][:300], ref.real[1][:300]
    print('| network | noise MSE at t = ' + ', '.join(map(str, TIMESTEPS)) + ' | accuracy | FID | precision / recall |')
    print('|---|---|---|---|---|')

    def row(name: str, pipe, errors: str = ''):
        x, y = generate(pipe, a.n_per_class, 123)
        m = measure(ref, x, y)
        print(f'| {name} | {errors} | {m["accuracy"]:.1%} | {m["fid"]:.3f} | {m["precision"]:.2f} / {m["recall"]:.2f} |', flush=True)
        save_species_grid(x, a.n_per_class, out / f'{name.replace("/", "_").replace(" ", "_")}.png', species=min(10, len(ref.classes)))

    for c, pipe in zip(a.checkpoints, pipes):
        row(c, pipe, ' '.join(f'{e:.3f}' for e in eps_error(pipe.model_0, pipe.schedule, x0, y0)))
    if a.fine:
        first, fine = pipes[0], load_pipeline(a.fine)
        print(f'| {a.fine} (its noise MSE) | {" ".join(f"{e:.3f}" for e in eps_error(fine.model_0, fine.schedule, x0, y0))} | | | |')
        own = first.model_0
        for t0 in map(int, a.switch.split(',')):
            first.model_0 = Handover(own, fine.model_0, t0)
            row(f'{a.checkpoints[0]} above t = {t0}, {a.fine} below', first)
        first.model_0 = own

if __name__ == '__main__': main()
