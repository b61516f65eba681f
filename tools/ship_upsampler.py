#!/usr/bin/env python3
"""Turn a finished upsampler run into weights that ship with the package, measured, with their model card.

    python tools/ship_upsampler.py runs/upsampler-b75/last.pt butterflies-75-upsampler --base butterflies-75 \\
        --data ../shared/data/butterflies-75 --attribution ../shared/data/butterflies-75/README.md \\
        --command "butterfly-diffusion train --preset upsampler --data ../shared/data/butterflies-75 --out runs/upsampler-b75"

Writes butterfly_diffusion/weights/NAME.pt (the EMA upsampler, float16), NAME.jpg (the cascade's 128-px samples: the
base model's guided 32-px samples, drawn again by the upsampler, 8 per species, up to 10 species), NAME.json (the
measured numbers) and NAME.md (the card). Measured on the shipped float16 file, as a user gets it:
- held-out real images (the data's validation split, or built-in pictures never trained on), shrunk to the low size
  and drawn back: the mean squared error to the real image, beside a bicubic enlargement's, and the detail energy
  (`cascade.detail`) of real, bicubic and drawn images;
- the time of 10 species x 8 samples at the high size, split between the two stages.
tests/test_weights.py checks the files against the card.
"""
from __future__ import annotations
import time
from pathlib import Path
import torch
from torchvision.transforms.functional import to_pil_image
from butterfly_diffusion.checkpoint import read_checkpoint, sha256
from butterfly_diffusion.cascade import load_upsampler, shrink, enlarge, detail
from butterfly_diffusion.core import image_grid, detail_start
from butterfly_diffusion.data import get_data, SyntheticButterflies, PICTURES
from butterfly_diffusion.guidance import load_pipeline
from shipping import ship_parser, sampling_changes, stage, publish, training_seconds, machine, credit

p = ship_parser(__doc__.splitlines()[0], "the name users load it by: load_pipeline(BASE, upsampler='NAME')")
p.add_argument('--base', required=True, help='the shipped base model it draws from (its low size must match)')
p.add_argument('--held_out', type=int, default=200, help='held-out real images to shrink and draw back')
p.add_argument('--heldout_picture', default=None, help='also save 6 held-out images (real, enlarged, drawn: a row each) here')
a = p.parse_args()

t0 = time.time()
ck = read_checkpoint(a.checkpoint)
sampling = sampling_changes(a)   # e.g. detail_t_start=799 sample_eta=1.0 for a run made before the preset drew that way
staged = stage(a.checkpoint, a.name, sampling=sampling, source=a.command)
full, up = load_upsampler(a.checkpoint, 'cpu'), load_upsampler(staged, 'cpu')
cfg = full.cfg = up.cfg          # the float32 run, sampled as shipped

# Held-out real images at the high size: never trained on
if a.data:
    valid = get_data(a.data, image_size=cfg.high_size, seed=cfg.seed, batch_size=64, flip=False).valid_ds
    real = torch.stack([valid[i][0] for i in range(0, len(valid), max(1, len(valid) // a.held_out))][:a.held_out])
else:
    n = -(-a.held_out // cfg.num_classes)
    real = torch.stack([x for x, _ in SyntheticButterflies(cfg.num_classes, cfg.high_size, n, cfg.seed,
                                                            PICTURES['judge_test'])])[:a.held_out]
low = shrink(real, cfg.low_size)
bicubic = enlarge(low, cfg.high_size)
t1 = time.time(); drawn = up(low, seed=a.seed); t_back = time.time() - t1
fp16_diff = (full(low[:16], seed=a.seed) - up(low[:16], seed=a.seed)).abs()   # the same images, the same noise
mse = lambda x: (x - real).square().mean().item()
D = lambda x: detail(x, cfg.low_size).mean().item()
if a.heldout_picture:
    pick = torch.cat([torch.stack([real[i], bicubic[i], drawn[i]]) for i in range(0, len(real), max(1, len(real) // 6))][:18])
    to_pil_image(image_grid(pick, 3)).save(a.heldout_picture, quality=90)
held = dict(held_out=len(real), mse_bicubic=mse(bicubic), mse_upsampler=mse(drawn), detail_real=D(real),
            detail_bicubic=D(bicubic), detail_upsampler=D(drawn), seconds=round(t_back, 1))
print(held)

# The cascade: the base model's guided samples, then the upsampler
pipe = load_pipeline(a.base, 'cpu', upsampler=up)
species = list(range(min(10, len(pipe.classes))))
t1 = time.time(); small = pipe(species, 8, seed=a.seed, size=pipe.cfg.image_size); t_base = time.time() - t1
t1 = time.time(); big = up(small, seed=a.seed + 1); t_up = time.time() - t1
picture = Path('/tmp') / f'ship-{a.name}.jpg'
to_pil_image(image_grid(big, 8)).save(picture, quality=90)
cascade = dict(species=len(species), per_species=8, seconds_base=round(t_base, 1), seconds_upsampler=round(t_up, 1),
               detail_cascade=D(big), detail_bicubic_of_samples=D(enlarge(small, cfg.high_size)))

numbers = dict(name=a.name, kind='upsampler', base=a.base, steps=ck['step'], preset=ck['config']['name'],
               low_size=cfg.low_size, high_size=cfg.high_size, crop=cfg.image_size, cond_t=cfg.cond_t,
               cond_t_max=cfg.cond_t_max, sample_steps=cfg.sample_steps, sample_eta=cfg.sample_eta, detail_t_max=cfg.detail_t_max,
               detail_t_start=detail_start(cfg), detail_scale=cfg.detail_scale, prediction=cfg.prediction,
               sampling_changed_on_export=sampling,
               training_seconds=training_seconds(ck), seed=a.seed,
               **held, cascade=cascade, fp16_mean_pixel_diff=fp16_diff.mean().item(), fp16_max_pixel_diff=fp16_diff.max().item(),
               bytes=staged.stat().st_size, sha256=sha256(staged), source=a.data or 'built-in')

n, c = numbers, cascade
card = f"""# `{a.name}`: an upsampler, {n['low_size']} px to {n['high_size']} px

The second stage of a cascade (chapter 8a): `load_pipeline('{a.base}', upsampler='{a.name}')` draws
{n['high_size']}-px pictures, `pipe(species, n)` at the largest size by default. The EMA network in float16
({n['bytes'] / 1e6:.1f} MB), sampled in float32: {n['sample_steps']} {'deterministic DDIM steps' if not n['sample_eta'] else f"DDIM steps (eta {n['sample_eta']:g})"} from t = {n['detail_t_start']}, reading the network as {'v' if n['prediction'] == 'v' else 'the noise'}, draw the detail
that the base model's samples, enlarged, lack, reading them noised to level {n['cond_t']} (conditioning
augmentation). From the same noise, the float16 file draws pictures that
differ from the float32 weights' by {n['fp16_mean_pixel_diff']:.1g} per pixel on average (at most
{n['fp16_max_pixel_diff']:.1g}; images span -1 to 1). The numbers below are measured on the float16 file.

![the cascade's samples]({a.name}.jpg)

(`{a.name}.jpg` beside this card: the `{a.base}` base model's guided samples of {c['species']} species, {c['per_species']}
each, drawn again at {n['high_size']} px by this upsampler: {c['seconds_base']:.0f} s for the base model, {c['seconds_upsampler']:.0f} s for
the upsampler, on the CPU below.)

## How it was made

    {a.command}

{n['steps']} optimizer steps of the `{n['preset']}` preset on {n['crop']}-px crops of {n['high_size']}-px images, {n['training_seconds']} s
of training on {machine()}, data: {n['source']}. Exported with
`python tools/ship_upsampler.py {a.checkpoint} {a.name} --base {a.base} {'--data ' + a.data + ' ' if a.data else ''}--command ...{' --sampling ' + ' '.join(a.sampling) if a.sampling else ''}`.
Presets change: the file holds the configuration these weights were trained with
(`read_checkpoint(resolve_weights('{a.name}'))['config']`), while the command above, run with a later version, trains
the preset as it is then.
{'' if not sampling else chr(10) + 'Sampling defaults set on export (they change how the trained network is sampled, not the network): ' + ', '.join(f'`{k}` = {v}' for k, v in sampling.items()) + '.' + chr(10)}
## What it measures

{n['held_out']} held-out real images (never trained on), shrunk to {n['low_size']} px and drawn back at {n['high_size']} px
({n['seconds']:.0f} s), seed {n['seed']}:

| | mean squared error to the real image | detail energy |
|---|---|---|
| the real images | 0 | {n['detail_real']:.4f} |
| bicubic enlargement of the {n['low_size']}-px view | {n['mse_bicubic']:.4f} | {n['detail_bicubic']:.4f} |
| this upsampler's drawing of it | {n['mse_upsampler']:.4f} | {n['detail_upsampler']:.4f} |

Detail energy (`cascade.detail`) is what shrinking to {n['low_size']} px removes, per pixel: real images have
{n['detail_real']:.4f}, the upsampler's drawings {n['detail_upsampler'] / n['detail_real']:.0%} of it. A drawing of fine detail
need not match the real detail pixel for pixel, so its squared error can exceed the blurred bicubic one's; the
128-px judge-feature FID of the cascade is the measure of whether the detail is right. The cascade's own samples
have detail energy {c['detail_cascade']:.4f} (their bicubic enlargements {c['detail_bicubic_of_samples']:.4f}).

SHA-256 of `{a.name}.pt`: `{n['sha256']}`
{credit(a.attribution)}"""
out = publish(a.name, staged, numbers, card, {'.jpg': picture})
print(f'wrote {out} ({n["bytes"] / 1e6:.1f} MB), its card and samples in {time.time() - t0:.0f} s')
