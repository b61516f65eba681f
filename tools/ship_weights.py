#!/usr/bin/env python3
"""Turn a finished training run into weights that ship with the package, measured, with their model card.

    python tools/ship_weights.py runs/long/last.pt demo \\
        --command "butterfly-diffusion train --preset demo --steps 11200 --out runs/long"
    python tools/ship_weights.py runs/photos/last.pt butterflies-75 --data ../shared/data/butterflies-75 \\
        --command "butterfly-diffusion train --preset photos --data ../shared/data/butterflies-75 --out runs/photos" \\
        --attribution ../shared/data/butterflies-75/README.md

Writes butterfly_diffusion/weights/NAME.pt (EMA UNet and classifier, float16), NAME.png (guided samples, 8 per
species, up to 10 species), NAME.json (the measured numbers) and NAME.md (the card: how it was made, what it
measures, its SHA-256), the weights last (`shipping.publish`). The numbers are measured on the float16 file itself,
as a user gets it, by `evaluate_checkpoint` (unguided, label-only for a class-conditional UNet, classifier-free only
where the config sets w > 0, and guided samples of every species against held-out real images, beside the
real-vs-real floor; with each row's classification accuracy score and how near its samples come to training images).
tests/test_weights.py checks the files against the card.
"""
from __future__ import annotations
import json, time
from pathlib import Path
import matplotlib; matplotlib.use('Agg')
from butterfly_diffusion.checkpoint import read_checkpoint, sha256
from butterfly_diffusion.core import SAMPLING
from butterfly_diffusion.evaluation import evaluate_checkpoint, report, save_side_by_side, free_weight
from butterfly_diffusion.guidance import load_pipeline, generate_and_save_images
from shipping import ship_parser, sampling_changes, stage, publish, training_seconds, machine, credit

p = ship_parser(__doc__.splitlines()[0], "the name users load it by: load_pipeline('NAME')")
p.add_argument('--n_per_class', type=int, default=50, help='samples per species for the numbers (decide with >= 500)')
a = p.parse_args()
sampling = sampling_changes(a)

t0 = time.time()
ck = read_checkpoint(a.checkpoint)
out = stage(a.checkpoint, a.name, sampling=sampling, source=a.command)

# float16 against float32, the same noise through both (images span [-1, 1]). Deterministic DDIM shows what the
# rounding does to a picture; the default stochastic, guided sampler can amplify it until a trajectory parts.
full, half = load_pipeline(a.checkpoint, 'cpu'), load_pipeline(out, 'cpu')
species = list(range(min(10, len(half.classes))))
same = {k: half.settings()[k] for k, field in SAMPLING.items() if field in sampling}   # the float32 run, sampled as shipped
diff = {k: (full(species, 4, seed=5, **{**same, **kw}) - half(species, 4, seed=5, **{**same, **kw})).abs()
        for k, kw in (('ddim', dict(eta=0.0)), ('default', {}))}
fp16_diff = diff['default'].max().item()
fp16_text = (f"from the same noise, deterministic DDIM (η = 0) gives pictures that differ from the float32 weights' by "
             f"{diff['ddim'].mean():.4f} per pixel on average (at most {diff['ddim'].max():.3f}; images span -1 to 1); "
             f"with the default stochastic sampler the mean difference is {diff['default'].mean():.4f}, and where guidance "
             f"amplifies it a trajectory can part (at most {diff['default'].max():.2f}). The numbers below are measured "
             "on the float16 file")

df, samples = evaluate_checkpoint(out, a.data, a.n_per_class, a.seed, 'cpu', progress=False)
print(report(df))
pictures = Path('/tmp') / f'ship-{a.name}-evaluation'   # a picture per species, and closest-pairs.png, to look at
save_side_by_side(samples, df.attrs['classes'], pictures, closest=df.attrs['closest'])
floor, unguided, guided = df.iloc[0], df.loc['unguided'], df.iloc[-1]   # guided last
label_only = df.loc['species label only'] if 'species label only' in df.index else None   # a class-conditional UNet
cfg_only = next((df.loc[r] for r in df.index if r.startswith('classifier-free only')), None)   # and w > 0
w = half.cfg.cfg_scale if cfg_only is not None else 0
w_text = free_weight(half.settings()) if w else ''   # 'w 2', and where it acts if not at every step
grid = generate_and_save_images(len(species), display=False, pipeline=half, out=Path('/tmp') / f'ship-{a.name}',
                                progress=False)

numbers = dict(name=a.name, steps=ck['step'], preset=ck['config']['name'], species=len(ck['classes']),
               image_size=half.cfg.image_size, training_seconds=training_seconds(ck),
               samples=int(df.attrs['n']), seed=a.seed, judge_accuracy=df.attrs['judge_accuracy'],
               guided_accuracy=float(guided.accuracy), guided_fid=float(guided.fid), floor_fid=float(floor.fid),
               guided_precision=float(guided.precision), guided_recall=float(guided.recall),
               floor_cas=float(floor.cas), guided_cas=float(guided.cas), guided_copies=float(guided.copies),
               guided_nearest=float(guided.nearest),
               unguided_accuracy=float(unguided.accuracy), unguided_fid=float(unguided.fid),
               **({} if label_only is None else dict(label_only_accuracy=float(label_only.accuracy), label_only_fid=float(label_only.fid))),
               **({} if cfg_only is None else dict(cfg_scale=w, cfg_t_max=half.cfg.cfg_t_max, cfg_only_accuracy=float(cfg_only.accuracy), cfg_only_fid=float(cfg_only.fid))),
               guidance_scale=half.cfg.guidance_scale, sampling_changed_on_export=sampling,
               conditional=half.unet.num_classes is not None,
               fp16_max_pixel_diff=fp16_diff, fp16_mean_pixel_diff_ddim=diff['ddim'].mean().item(),
               fp16_mean_pixel_diff=diff['default'].mean().item(), bytes=out.stat().st_size, sha256=sha256(out), source=a.data or 'built-in')

n = numbers
card = f"""# `{a.name}`: {n['preset']} preset, {n['species']} species, {n['image_size']} px

`load_pipeline('{a.name}')` loads it; `generate_and_save_images(pipeline=load_pipeline('{a.name}'))` draws from it.
The EMA diffusion model ({'class-conditional: it is told the species, and the classifier guides it on top' if n['conditional'] else 'unconditional: the classifier alone steers it'}) and the noisy classifier in float16 ({n['bytes'] / 1e6:.1f} MB), sampled in float32:
{fp16_text}.

![guided samples]({a.name}.png)

(`{a.name}.png` beside this card: guided samples, {len(grid['images']) // len(species)} per species.)

## How it was made

    {a.command}

{n['steps']} optimizer steps of the `{n['preset']}` preset, {n['training_seconds']} s of training on {machine()},
data: {n['source']}. Exported with `python tools/ship_weights.py {a.checkpoint} {a.name}
{'--data ' + a.data + ' ' if a.data else ''}--n_per_class {a.n_per_class} --command ...{' --sampling ' + ' '.join(a.sampling) if a.sampling else ''}`.
Presets change: the file holds the configuration these weights were trained with
(`read_checkpoint(resolve_weights('{a.name}'))['config']`), while the command above, run with a later version, trains
the preset as it is then.
{'' if not sampling else chr(10) + 'Sampling defaults set on export (they change how the trained networks are sampled, not the networks): ' + ', '.join(f'`{k}` = {v}' for k, v in sampling.items()) + '.' + chr(10)}
## What it measures

`butterfly-diffusion evaluate --checkpoint {a.name} {'--data ' + a.data + ' ' if a.data else ''}--n_per_class {a.n_per_class} --seed {a.seed}`:
{n['samples']} samples per row ({a.n_per_class} per species), judged by a classifier of clean images that is
{n['judge_accuracy']:.1%} accurate on held-out real images (chance {1 / n['species']:.1%}).

| | judge accuracy | judge-feature FID | precision | recall |
|---|---|---|---|---|
| real images (the floor) | {floor.accuracy:.1%} | {floor.fid:.3f} | {floor.precision:.2f} | {floor.recall:.2f} |
| unguided samples{' (the "no class" token)' if label_only is not None else ''} | {n['unguided_accuracy']:.1%} | {n['unguided_fid']:.3f} | {unguided.precision:.2f} | {unguided.recall:.2f} |
{'' if label_only is None else f"| samples given only the species label | {label_only.accuracy:.1%} | {label_only.fid:.3f} | {label_only.precision:.2f} | {label_only.recall:.2f} |" + chr(10)}{'' if cfg_only is None else f"| the label with classifier-free guidance ({w_text}), no classifier | {cfg_only.accuracy:.1%} | {cfg_only.fid:.3f} | {cfg_only.precision:.2f} | {cfg_only.recall:.2f} |" + chr(10)}| guided samples (scale {half.cfg.guidance_scale:g}{', with the label' if label_only is not None else ''}{f' and {w_text}' if w else ''}) | {n['guided_accuracy']:.1%} | {n['guided_fid']:.3f} | {n['guided_precision']:.2f} | {n['guided_recall']:.2f} |

{n['samples']} samples give the guided accuracy to about ±{196 * (n['guided_accuracy'] * (1 - n['guided_accuracy']) / n['samples']) ** 0.5:.1f} points (95%).

What the guided samples are (chapter 9, *What samples are*, explains both tests): a judge trained only on
them scores {n['guided_cas']:.1%} on held-out real images, where the same judge taught by as many real images
scores {n['floor_cas']:.1%} (the classification accuracy score); {n['guided_copies']:.1%} of them are nearer to a
training image than the nearest 1% of held-out real images are (held-out real images themselves: 1% by
construction), and their median distance to the nearest training
image is {n['guided_nearest']:.2f} times held-out real images' (1: as new as an unseen photo; below 1: nearer to what
the model learnt from).

SHA-256 of `{a.name}.pt`: `{n['sha256']}`
{credit(a.attribution)}"""
out = publish(a.name, out, numbers, card, {'.png': grid['overview']})
print(f'wrote {out} ({n["bytes"] / 1e6:.1f} MB), its card and grid in {time.time() - t0:.0f} s; pictures of every species in {pictures}/')
