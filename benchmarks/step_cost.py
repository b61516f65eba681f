"""The cost of one joint training step (UNet + classifier, the library's `train_step`) for network variants of a
preset, timed in the same process: blocks of steps taken in turn, median per variant, and the ratio to the first.

    python benchmarks/step_cost.py preset= b24="base_filters=24" b32="base_filters=32" "attn16=attn_resolutions=(16,8)"

Each argument is NAME=OVERRIDES, with OVERRIDES a ';'-separated list of network fields as field=value (Python
literals); `preset=` (nothing after the '=') is the preset as it is. Every variant trains on the same batch, of the
preset's size. The measurement behind the width and attention rows of nbs/09_evaluation.ipynb.
"""
import argparse, ast, statistics, time
import torch
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.unet import UNet, UNet_classifier
from butterfly_diffusion.scheduler import NoiseSchedule
import butterfly_diffusion.training as training

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('variants', nargs='+', help='NAME=field=value;field=value ...')
p.add_argument('--preset', default='demo')
p.add_argument('--blocks', type=int, default=4, help='blocks of steps per variant, taken in turn')
p.add_argument('--steps', type=int, default=5, help='steps per block')
a = p.parse_args()

runs = {}   # name: (train state, schedule, UNet parameters, step times)
for v in a.variants:
    name, _, spec = v.partition('=')
    kw = {k: ast.literal_eval(x) for k, x in (f.split('=', 1) for f in spec.split(';') if f)}
    cfg = get_config(a.preset, **kw)
    seed_everything(0)
    m0, m1 = (m.to(memory_format=torch.channels_last) for m in (UNet.from_config(cfg), UNet_classifier.from_config(cfg)))
    s = training.make_state(m0, m1, cfg, list(range(cfg.num_classes)), torch.device('cpu'))
    runs[name] = (s, NoiseSchedule.from_config(cfg), sum(q.numel() for q in m0.parameters()), [])
cfg = get_config(a.preset)   # one batch for every variant, sized by the preset
x0 = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size).mul(2).sub(1).to(memory_format=torch.channels_last)
y = torch.randint(0, cfg.num_classes, (cfg.batch_size,))
for s, schedule, _, _ in runs.values():
    for _ in range(2): training.train_step(s, schedule, x0, y)     # warm-up: oneDNN picks its kernels
for _ in range(a.blocks):
    for s, schedule, _, times in runs.values():
        t0 = time.perf_counter()
        for _ in range(a.steps): training.train_step(s, schedule, x0, y)
        times.append((time.perf_counter() - t0) / a.steps)
first = statistics.median(next(iter(runs.values()))[3])
for name, (_, _, n, times) in runs.items():
    m = statistics.median(times)
    print(f'{name:12s} UNet {n / 1e6:.2f} M parameters  {m:.3f} s a step  {m / first:.2f}x', flush=True)
