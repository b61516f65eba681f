"""Sampling throughput: wall time to draw 8 images of each of 75 species with `butterfly_diffusion.guidance.sample`,
classifier-guided and unguided DDIM-50 and guided DDPM-1000, the guidance overhead (guided ÷ unguided), and the
denoising-step time of our UNet next to diffusers' UNet2DModel of the same size, in one process.

The networks are untrained (the `seed` UNet and a 75-class `UNet_classifier`): a step's time does not depend on the
weights. On CUDA the models run as the library runs them (bf16 autocast inside `sample`, weights in channels_last);
`--variants eager,compiled` adds a run with both models wrapped in `torch.compile`. Guidance uses the seed config's
scale and `guidance_t_max` (guide only while t < it); a second guided run guides at every step.

Guided DDPM-1000 is long. It is timed two ways, each labelled in the tables:
* `--ddpm-steps K`: all images, K reverse steps of a K-step schedule (each does exactly the work of a DDPM-1000 step:
  one UNet call, one classifier gradient, one `ddpm_step` with fresh noise), EXTRAPOLATED ×1000/K;
* `--ddpm-species N`: the real 1000 steps for N species (8 images each), measured; the scaling to all species is
  labelled EXTRAPOLATED (an upper bound: a larger batch costs less per image).

    python benchmarks/sample_throughput.py                     # CPU: 32 px, 4 species × 2 images, DDIM-10
    python benchmarks/sample_throughput.py --out runs/bench    # GPU: 128 px, 75 species × 8 images, DDIM-50
"""
from __future__ import annotations
import argparse, math, statistics, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (Deadline, FlopCounter, autocast, channels_last, diffusers_unet, environment, free, log, md_table,
                    measure, ours_classifier, ours_unet, peak_gib, pick_device, reset_peak, set_fast_flags,
                    set_threads, sync, write_results)


def chunks(y: torch.Tensor, batch: int) -> list[torch.Tensor]:
    "Split the labels into near-equal batches of at most `batch` (at most two distinct sizes: fewer recompiles)."
    return list(torch.tensor_split(y, math.ceil(len(y) / batch)))


def draw(models, schedule, y, args, device, guided: bool, method: str = 'ddim', steps: int | None = None,
         guide_t_max=None, seed: int = 0) -> float:
    "Sample one image per label, `args.batch` at a time; return the wall time in seconds (device synchronised)."
    from butterfly_diffusion.guidance import sample, noise_predictor, classifier_guidance
    model_0, model_1 = models
    g = torch.Generator(device).manual_seed(seed)   # noise drawn where the images are
    sync(device)
    t0 = time.perf_counter()
    for yb in chunks(y, args.batch):
        size = model_0.config.image_size
        x_T = torch.randn(len(yb), 3, size, size, generator=g, device=device)
        guide = classifier_guidance(model_1, yb, args.scale, t_max=guide_t_max) if guided else None
        sample(noise_predictor(model_0), schedule, x_T, guide, 'ddpm' if method == 'ddpm' else steps or args.ddim_steps,
               generator=g)
    sync(device)
    return time.perf_counter() - t0


def warm_up(models, schedule, y, args, device) -> float:
    "A short guided and unguided run per distinct batch size (compiles, or autotunes cuDNN); halve the batch on OOM."
    while True:
        try:
            t0 = time.perf_counter()
            for n in sorted({len(c) for c in chunks(y, args.batch)}):
                draw(models, schedule, y[:n], args, device, guided=True, steps=2)
                draw(models, schedule, y[:n], args, device, guided=False, steps=2)
            return time.perf_counter() - t0
        except torch.OutOfMemoryError:
            if args.batch <= 8: raise
            args.batch //= 2
            log(f'    out of memory: batch lowered to {args.batch}')
            free(device)


def step_flops(models, schedule, y, args, device, guided: bool) -> float:
    "FLOPs per image of one sampling step (UNet; when guided, plus the classifier's forward and input gradient)."
    with FlopCounter() as counter:
        draw(models, schedule, y[:2], args, device, guided, steps=1)
    return counter.get_total_flops() / 2


def guided_steps(schedule, steps: int, guide_t_max) -> int:
    "How many of the DDIM steps get the classifier gradient."
    return sum(1 for t in schedule.ddim_timesteps(steps) if guide_t_max is None or t < guide_t_max)


def ddim_row(label, n_images, args, device, guided, variant, flops, times, schedule, guide_t_max, scale=1.0,
             note='') -> dict:
    "One table row from the wall times of repeated DDIM runs (the fastest, × `scale`); TFLOP/s from counted FLOPs."
    s = min(times) * scale
    n_g = guided_steps(schedule, args.ddim_steps, guide_t_max) if guided else 0
    work = n_images * (args.ddim_steps * flops['unguided'] + n_g * (flops['guided'] - flops['unguided']))
    kind = note or 'measured' + (f', fastest of {len(times)}' if len(times) > 1 else '')
    return dict(run=label, variant=variant, images=n_images, batch=args.batch, steps=args.ddim_steps,
                guided_steps=n_g, seconds=s, ms_per_image=1e3 * s / n_images, tflops=work / s / 1e12,
                peak_gib=peak_gib(device), kind=kind)


def fit(models, schedule, y, args, device, deadline, runs: list) -> tuple:
    """The labels to time within the time left: all of `y`, or its first k batches when the whole would not fit.
    `runs` lists the guide_t_max of each run planned (False: unguided); one probe step of each kind sizes them."""
    parts = chunks(y, args.batch)
    if not math.isfinite(deadline.left()): return y, 1.0, ''
    u1 = draw(models, schedule, parts[0], args, device, False, steps=1)
    g1 = draw(models, schedule, parts[0], args, device, True, steps=1)
    per_batch = sum(args.ddim_steps * u1 + (0 if r is False else
                    guided_steps(schedule, args.ddim_steps, r) * max(g1 - u1, 0)) for r in runs) * args.repeats
    k = max(1, min(len(parts), int((deadline.left() - args.reserve) // per_batch)))
    if k == len(parts): return y, 1.0, ''
    yk = torch.cat(parts[:k])
    log(f'    time limit: timing {k} of {len(parts)} batches (~{per_batch:.0f} s each)')
    note = f'EXTRAPOLATED: {len(yk)} of {len(y)} images timed (same batches), × {len(y) / len(yk):.2f}'
    return yk, len(y) / len(yk), note


def run_ddim_pair(models, schedule, y, args, device, variant, flops, deadline) -> list[dict]:
    "Guided and unguided DDIM for all images, alternated `args.repeats` times (so both see the same machine load)."
    yk, scale, note = fit(models, schedule, y, args, device, deadline, [args.guide_t_max, False])
    times = {True: [], False: []}
    reset_peak(device)
    for _ in range(args.repeats):
        for guided in (True, False):
            times[guided].append(draw(models, schedule, yk, args, device, guided, guide_t_max=args.guide_t_max))
    return [ddim_row(f'{"guided" if g else "unguided"} DDIM-{args.ddim_steps}', len(y), args, device, g, variant,
                     flops, times[g], schedule, args.guide_t_max if g else None, scale, note) for g in (True, False)]


def run_ddim_every_step(models, schedule, y, args, device, variant, flops, deadline) -> dict:
    "Guided DDIM with the classifier gradient at every step (guide_t_max=None): the most guidance can cost."
    yk, scale, note = fit(models, schedule, y, args, device, deadline, [None])
    times = [draw(models, schedule, yk, args, device, True, guide_t_max=None) for _ in range(args.repeats)]
    return ddim_row(f'guided DDIM-{args.ddim_steps}, every step', len(y), args, device, True, variant, flops, times,
                    schedule, None, scale, note)


def run_ddpm_steps(models, y, args, device, variant, flops) -> dict:
    "Guided DDPM: K steps of a K-step schedule on all images (the same work per step), extrapolated to 1000."
    from butterfly_diffusion.scheduler import NoiseSchedule
    k, T = args.ddpm_steps, args.timesteps
    gtm = None if args.guide_t_max is None else max(1, round(args.guide_t_max * k / T))   # same share of steps guided
    reset_peak(device)
    s = draw(models, NoiseSchedule(timesteps=k).to(device), y, args, device, guided=True, method='ddpm',
             guide_t_max=gtm)
    n_g = k if gtm is None else min(k, gtm)
    return dict(run=f'guided DDPM-{T}', variant=variant, images=len(y), batch=args.batch, steps=T,
                guided_steps=round(n_g * T / k), seconds=s * T / k, ms_per_image=1e3 * s * T / k / len(y),
                tflops=len(y) * (k * flops['unguided'] + n_g * (flops['guided'] - flops['unguided'])) / s / 1e12,
                peak_gib=peak_gib(device), kind=f'EXTRAPOLATED: {k} steps timed ({s:.1f} s) × {T}/{k}')


def run_ddpm_species(models, schedule, y_all, args, device, variant, flops) -> dict:
    "The real guided DDPM-1000 for the first `args.ddpm_species` species, measured; scaled linearly to all images."
    n, T = args.ddpm_species * args.per_species, args.timesteps
    y = y_all[:n]
    draw(models, schedule, y, args, device, guided=True, steps=2)   # warm-up at this batch size (cuDNN autotuning)
    reset_peak(device)
    s = draw(models, schedule, y, args, device, guided=True, method='ddpm', guide_t_max=args.guide_t_max)
    n_g = sum(1 for t in range(T) if args.guide_t_max is None or t < args.guide_t_max)
    return dict(run=f'guided DDPM-{T}, {args.ddpm_species} species', variant=variant, images=n,
                batch=min(args.batch, n), steps=T, guided_steps=n_g, seconds=s, ms_per_image=1e3 * s / n,
                tflops=n * (T * flops['unguided'] + n_g * (flops['guided'] - flops['unguided'])) / s / 1e12,
                peak_gib=peak_gib(device),
                kind=f'measured; × {len(y_all)}/{n} images ≈ {s * len(y_all) / n:.0f} s (EXTRAPOLATED, upper bound)')


@torch.no_grad()
def peer_step(which: str, args, device, deadline) -> dict:
    "Time of one denoising forward pass at batch `args.peer_batch`: our UNet or diffusers' UNet2DModel, eager."
    model = ours_unet(args.image_size) if which == 'ours' else diffusers_unet(args.image_size)
    model = model.to(device, memory_format=channels_last(device)).eval()
    x = torch.randn(args.peer_batch, 3, args.image_size, args.image_size, device=device)
    x = x.to(memory_format=channels_last(device))
    t = torch.randint(0, args.timesteps, (args.peer_batch,), device=device)
    def call():
        with autocast(device):
            out = model(x, t)
        return out if which == 'ours' else out.sample
    with FlopCounter() as counter: call()
    for _ in range(3 if device.type == 'cuda' else 0): call()   # CPU: the counted call was the warm-up
    times = []
    for _ in range(args.peer_reps):
        sync(device); t0 = time.perf_counter(); call(); sync(device); times.append(time.perf_counter() - t0)
        if not deadline.allows(args.reserve): break
    s = min(times) if device.type == 'cpu' else statistics.median(times)
    return dict(run=f'denoising step, batch {args.peer_batch}', variant='eager', model=which, images=args.peer_batch,
                batch=args.peer_batch, steps=1, seconds=s, ms_per_image=1e3 * s / args.peer_batch,
                tflops=counter.get_total_flops() / s / 1e12,
                kind=f'{"fastest" if device.type == "cpu" else "median"} of {len(times)}')


def summary(rows: list[dict], args) -> list[dict]:
    "The issue's targets (600 images under 15 s, overhead under 2×), DDPM-1000, and the ratio to diffusers' step."
    ok = [r for r in rows if 'error' not in r and 'seconds' in r]
    def find(run, var): return next((r for r in ok if r['run'] == run and r['variant'] == var), None)
    out, ddim, n = [], f'DDIM-{args.ddim_steps}', args.species * args.per_species
    full = n == 600 and args.image_size == 128
    for var in ('eager', 'compiled'):
        u = find(f'unguided {ddim}', var)
        for run, how in ((f'guided {ddim}', f'guide_t_max={args.guide_t_max}'),
                         (f'guided {ddim}, every step', 'every step')):
            g = find(run, var)
            if not g: continue
            ex = ' (EXTRAPOLATED)' if g['kind'].startswith('EXTRAPOLATED') else ''
            out.append(dict(what=f'guided {ddim} ({how}: {g["guided_steps"]} guided steps), {n} images, {var}{ex}',
                            value=g['seconds'], unit='s', target=15.0 if full else None,
                            met=('yes' if g['seconds'] < 15 else 'NO') if full else None))
            if u: out.append(dict(what=f'guidance overhead: guided ({how}) ÷ unguided {ddim}, {var}',
                                  value=g['seconds'] / u['seconds'], unit='×', target=2.0,
                                  met='yes' if g['seconds'] / u['seconds'] < 2 else 'NO'))
        if u: out.append(dict(what=f'unguided {ddim}, {n} images, {var}' +
                              (' (EXTRAPOLATED)' if u['kind'].startswith('EXTRAPOLATED') else ''),
                              value=u['seconds'], unit='s'))
    for r in ok:
        if r['run'].startswith('guided DDPM'):
            out.append(dict(what=f'{r["run"]}, {r["images"]} images, {r["variant"]}: {r["kind"]}',
                            value=r['seconds'], unit='s'))
    o = next((r for r in ok if r.get('model') == 'ours'), None)
    d = next((r for r in ok if r.get('model') == 'diffusers'), None)
    if o and d:
        out.append(dict(what=f'denoising step time, ours ÷ diffusers UNet2DModel, batch {args.peer_batch}, eager',
                        value=o['seconds'] / d['seconds'], unit='×'))
        out.append(dict(what=f'diffusers UNet2DModel, unguided {ddim} for {n} images, eager (EXTRAPOLATED: its step '
                             f'time × {args.ddim_steps} steps × {n}/{args.peer_batch} batches)',
                        value=d['seconds'] * args.ddim_steps * n / args.peer_batch, unit='s'))
    return out


def report(rows, summ, env, args, device) -> str:
    "The markdown tables: one row per measurement, then the summary."
    cuda = device.type == 'cuda'
    threads = env['cpu_threads']
    where = env.get('gpu', f"CPU ({threads} thread{'s' if threads > 1 else ''})")
    cols = [('run', 'run', 0), ('variant', 'variant', 0), ('model', 'network', 0), ('images', 'images', 0),
            ('batch', 'batch', 0), ('steps', 'steps', 0), ('guided_steps', 'guided steps', 0),
            ('seconds', 'seconds', 2), ('ms_per_image', 'ms/image', 2), ('tflops', 'TFLOP/s', 1 if cuda else 3),
            ('peak_gib', 'peak GiB', 1), ('warmup_s', 'warm-up s', 1), ('kind', 'how', 0), ('error', 'error', 0)]
    gf = env.get('gflop_per_image_step', {})
    prec = 'bf16 autocast, channels_last' if cuda else 'fp32'
    md = [f"## Sampling throughput — {where}, {args.image_size} px, {prec}",
          '', f"{args.species} species × {args.per_species} images, guidance scale {args.scale}, guide_t_max "
              f"{args.guide_t_max}; GFLOP per image and step: guided {gf.get('guided', math.nan):.2f}, unguided "
              f"{gf.get('unguided', math.nan):.2f}; torch {env['torch']}, diffusers {env.get('diffusers')}.", '',
          md_table(rows, cols)]
    if summ:
        md += ['', '### Summary', '', md_table(summ, [('what', 'what', 0), ('value', 'value', 2), ('unit', 'unit', 0),
                                                      ('target', 'target', 1), ('met', 'met', 0)])]
    return '\n'.join(md)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default=None, help='cuda, cpu, ... (default: cuda if available)')
    p.add_argument('--image-size', type=int, default=None, help='default: 128 on CUDA, 32 on CPU')
    p.add_argument('--species', type=int, default=None, help='default: 75 on CUDA, 4 on CPU')
    p.add_argument('--per-species', type=int, default=None, help='images per species (default: 8 on CUDA, 2 on CPU)')
    p.add_argument('--batch', type=int, default=None,
                   help='images per sample() call (default: 300 on CUDA, all on CPU); halved on out-of-memory')
    p.add_argument('--ddim-steps', type=int, default=None, help='default: 50 on CUDA, 10 on CPU')
    p.add_argument('--scale', type=float, default=None, help="guidance scale (default: the seed config's)")
    p.add_argument('--guide-t-max', type=int, default=-1,
                   help="guide only while t < this (default -1: the seed config's guidance_t_max; 0: every step)")
    p.add_argument('--every-step', action=argparse.BooleanOptionalAction, default=True,
                   help='also time guided DDIM with guidance at every step, when guide_t_max limits it (default: on)')
    p.add_argument('--variants', default=None,
                   help='comma list of compiled, eager, timed in this order (default: compiled,eager on CUDA, '
                        'eager on CPU)')
    p.add_argument('--ddpm-steps', type=int, default=None,
                   help='guided DDPM steps timed on all images, extrapolated to 1000 (0: skip; default 20 CUDA, 2 CPU)')
    p.add_argument('--ddpm-species', type=int, default=None,
                   help='species run through the real guided DDPM-1000, measured (default 0: skip)')
    p.add_argument('--no-ddpm', action='store_true', help='skip guided DDPM entirely')
    p.add_argument('--peer-batch', type=int, default=None,
                   help='batch of the denoising-step comparison with diffusers (default: 75 on CUDA, 8 on CPU)')
    p.add_argument('--peer-reps', type=int, default=None, help='timed repeats of that step (default: 10 CUDA, 3 CPU)')
    p.add_argument('--repeats', type=int, default=None,
                   help='runs of each DDIM measurement, fastest reported (default: 1 on CUDA, 3 on CPU)')
    p.add_argument('--quick', action='store_true', help='a smoke test: 2 species × 2 images, DDIM-4, no DDPM')
    p.add_argument('--time-limit', type=float, default=None, help='global budget (s); later measurements are skipped')
    p.add_argument('--compile-reserve', type=float, default=90, help='seconds the compiled variant needs to start')
    p.add_argument('--reserve', type=float, default=5, help='seconds kept in hand at the end')
    p.add_argument('--threads', type=int, default=1,
                   help='CPU threads (default 1: stable timings on shared cores; 0: PyTorch default)')
    p.add_argument('--out', default=None, help='folder for sample_throughput.json and .md')
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in (args.variants or '').split(',') if v.strip()]
    if set(args.variants) - {'eager', 'compiled'}: p.error(f'unknown --variants {args.variants}: use eager, compiled')
    return args


def defaults(args, cfg, cuda: bool):
    "Fill in the defaults that depend on the device (GPU: the issue's sizes; CPU: a small run of the same kind)."
    args.timesteps = cfg.timesteps
    args.image_size = args.image_size or (128 if cuda else 32)
    args.species = args.species or (75 if cuda else 4)
    args.per_species = args.per_species or (8 if cuda else 2)
    args.ddim_steps = args.ddim_steps or (50 if cuda else 10)
    args.scale = cfg.guidance_scale if args.scale is None else args.scale
    args.guide_t_max = getattr(cfg, 'guidance_t_max', None) if args.guide_t_max == -1 else (args.guide_t_max or None)
    args.peer_reps = args.peer_reps or (10 if cuda else 3)
    args.peer_batch = args.peer_batch or (75 if cuda else 8)
    args.repeats = args.repeats or (1 if cuda else 3)
    if args.quick: args.species, args.per_species, args.ddim_steps, args.no_ddpm, args.peer_reps = 2, 2, 4, True, 2
    args.batch = args.batch or (300 if cuda else args.species * args.per_species)
    if args.no_ddpm: args.ddpm_steps, args.ddpm_species = 0, 0
    args.ddpm_steps = (20 if cuda else 2) if args.ddpm_steps is None else args.ddpm_steps
    args.ddpm_species = 0 if args.ddpm_species is None else args.ddpm_species
    args.variants = args.variants or (['compiled', 'eager'] if cuda else ['eager'])   # in this order
    return args


def main(argv=None):
    args = parse(argv)
    device = pick_device(args.device)
    from butterfly_diffusion.core import get_config
    from butterfly_diffusion.scheduler import NoiseSchedule
    cfg = get_config('seed')
    defaults(args, cfg, device.type == 'cuda')
    deadline = Deadline(args.time_limit)
    set_fast_flags(device)
    set_threads(device, args.threads)
    env = environment(device)
    log('environment: ' + ', '.join(f'{k}={v}' for k, v in env.items()))

    schedule = NoiseSchedule.from_config(cfg).to(device)
    y = torch.arange(args.species, device=device).repeat_interleave(args.per_species)   # 8 of species 0, 8 of 1...
    fmt = channels_last(device)
    eager = (ours_unet(args.image_size).to(device, memory_format=fmt).eval(),
             ours_classifier(args.image_size, cfg.num_classes).to(device, memory_format=fmt).eval())
    rows, ready = [], {}

    def save():
        summ = summary(rows, args)
        write_results(args.out, 'sample_throughput', dict(environment=env, args=vars(args), rows=rows, summary=summ),
                      report(rows, summ, env, args, device))

    def task(name, need, fn, *a, **kw):
        "Run one measurement if the time limit allows; record a row either way."
        if not deadline.allows(need):
            log(f'--- {name}: skipped, {deadline.left():.0f} s left (needs ~{need:.0f} s)')
            rows.append(dict(run=name, error='skipped: time limit'))
            save()
            return None
        r = measure(rows, name, fn, *a, **kw)
        save()
        return r

    try:
        flops = dict(guided=step_flops(eager, schedule, y, args, device, True),
                     unguided=step_flops(eager, schedule, y, args, device, False))
    except Exception as e:  # noqa: BLE001
        log(f'FLOP count failed ({type(e).__name__}: {e}); TFLOP/s will read as missing')
        flops = dict(guided=math.nan, unguided=math.nan)
    env['gflop_per_image_step'] = {k: v / 1e9 for k, v in flops.items()}
    log(f"GFLOP per image and step: guided {flops['guided'] / 1e9:.2f}, unguided {flops['unguided'] / 1e9:.2f}")
    for which in ('ours', 'diffusers'):
        task(f'denoising step, batch {args.peer_batch}, {which}', 3 * args.reserve, peer_step, which, args, device,
             deadline)
        free(device)

    ddim = f'DDIM-{args.ddim_steps}'
    for variant in args.variants:
        need = args.compile_reserve if variant == 'compiled' else 3 * args.reserve
        models = eager if variant == 'eager' else (torch.compile(eager[0]), torch.compile(eager[1]))
        w = task(f'warm-up, {variant}', need,
                 lambda: dict(run='warm-up (2 guided + 2 unguided steps per batch size)', variant=variant,
                              batch=args.batch, warmup_s=warm_up(models, schedule, y, args, device)))
        if w is None or 'error' in w: continue
        ready[variant] = models
        task(f'guided and unguided {ddim}, {variant}', 3 * args.reserve, run_ddim_pair, models, schedule, y, args,
             device, variant, flops, deadline)
    fast = 'compiled' if 'compiled' in ready else 'eager'
    if args.ddpm_steps and fast in ready:
        task(f'guided DDPM, {args.ddpm_steps} steps, {fast}', 3 * args.reserve, run_ddpm_steps, ready[fast], y, args,
             device, fast, flops)
    if args.guide_t_max is not None and args.every_step and fast in ready:
        task(f'guided {ddim} at every step, {fast}', 3 * args.reserve, run_ddim_every_step, ready[fast], schedule, y,
             args, device, fast, flops, deadline)
    if args.ddpm_species and 'eager' in ready:
        task(f'guided DDPM-{args.timesteps}, {args.ddpm_species} species, eager', 25, run_ddpm_species,
             ready['eager'], schedule, y, args, device, 'eager', flops)
    summ = summary(rows, args)
    text = report(rows, summ, env, args, device)
    write_results(args.out, 'sample_throughput', dict(environment=env, args=vars(args), rows=rows, summary=summ), text)
    log('\n' + text + f'\n\n(total {deadline.elapsed():.0f} s)')
    return rows, summ


if __name__ == '__main__':
    main()
