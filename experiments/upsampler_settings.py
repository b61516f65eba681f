"""Measure an upsampler on held-out photos shrunk to its low size and drawn back, under several sampling settings.

For each setting (`LABEL:field=value,...` with the `Upsampler` call's steps, eta, cond_t and start_t, or `top`: start
the drawing at t = top - 1; nothing after the colon: the checkpoint's own), the mean squared error to the real images and the detail energy (`cascade.detail`, what
shrinking removes) beside the real images' and a bicubic enlargement's. The same held-out images (every k-th of the
data's validation split, as `tools/ship_upsampler.py` picks them) and the same noise in every row:

    python experiments/upsampler_settings.py butterflies-75-upsampler --data ../shared/data/butterflies-75 --held_out 40 \\
        'DDIM 20:' 'eta 1:eta=1.0' 'DDPM-like 100 steps:steps=100,eta=1.0,cond_t=10'
    python experiments/upsampler_settings.py runs/up-t1000/last.pt --data ../shared/data/butterflies-75 'from 999:' 'from 799:top=800'

A few dozen images decide what moves the detail energy by a factor (its spread across images is wide, so not finer
differences); the 128-px table of the evaluation chapter (`tools/cascade_results.py`) decides the rest.
"""
import argparse, time
import pandas as pd
import torch
from butterfly_diffusion.cascade import load_upsampler, shrink, enlarge, detail
from common import setting, held_out_photos

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('checkpoint', help="an upsampler's checkpoint, run folder or shipped weights")
p.add_argument('settings', nargs='+', help='LABEL:field=value,... (steps, eta, cond_t, start_t, top)')
p.add_argument('--data', required=True, help='the real dataset it was trained on (its validation split is held out)')
p.add_argument('--held_out', type=int, default=40, help='held-out images to shrink and draw back')
p.add_argument('--seed', type=int, default=123)
p.add_argument('--out', default=None, help='a CSV file for the table')
p.add_argument('--picture', default=None, help='a JPEG: a column per image (the first 6), a row per setting after the real and bicubic ones')
a = p.parse_args()

up = load_upsampler(a.checkpoint, 'cpu')
cfg = up.cfg
real = held_out_photos(a.data, cfg.high_size, cfg.seed, a.held_out)
low = shrink(real, cfg.low_size)
D = lambda x: detail(x, cfg.low_size).mean().item()
mse = lambda x: (x - real).square().mean().item()
shown = [real[:6], enlarge(low, cfg.high_size)[:6]]
rows = [dict(setting='the real images', mse=0.0, detail=D(real)),
        dict(setting='bicubic enlargement', mse=mse(enlarge(low, cfg.high_size)), detail=D(enlarge(low, cfg.high_size)))]
for text in a.settings:
    label, kw = setting(text)
    call = {k: v for k, v in kw.items() if k != 'top'}
    if 'top' in kw: call['start_t'] = kw['top'] - 1    # where the reverse process starts (the call's start_t, older spelling)
    t0 = time.time()
    x = up(low, seed=a.seed, **call)
    rows.append(dict(setting=label, **kw, mse=mse(x), detail=D(x), seconds=round(time.time() - t0, 1)))
    print(rows[-1], flush=True)
    shown.append(x[:6])
df = pd.DataFrame(rows)
df['detail_x_real'] = df.detail / rows[0]['detail']
df = df[[c for c in ('setting', 'top', 'start_t', 'steps', 'eta', 'cond_t', 'mse', 'detail', 'detail_x_real', 'seconds') if c in df]]
print(f'{len(real)} held-out images of {a.data}, seed {a.seed}, upsampler {a.checkpoint}')
print(df.to_string(index=False, float_format='%.4g'))
if a.out: df.to_csv(a.out, index=False, float_format='%.5g')
if a.picture:
    from torchvision.utils import make_grid
    from torchvision.transforms.functional import to_pil_image
    to_pil_image(make_grid(torch.cat(shown).add(1).div(2).clamp(0, 1), nrow=len(shown[0]), padding=2)).save(a.picture, quality=90)
