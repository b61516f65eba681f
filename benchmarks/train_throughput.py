"""Training throughput: our `seed` UNet, our joint step (UNet + noisy classifier) and diffusers' UNet2DModel of the
same size, side by side in one process.

For each model, batch size and variant (eager; `torch.compile`) it runs full optimizer steps on random data and
reports images/s, the achieved TFLOP/s (FLOPs of one forward+backward step counted by
`torch.utils.flop_counter.FlopCounterMode`, divided by the measured step time), peak memory and, for compiled
variants, the compile warm-up. On CUDA every model runs the fast path: bf16 autocast, channels_last, fused Adam(W),
cuDNN autotuning. On the CPU: fp32, default layout, one thread. It ends with the ratios ours / diffusers, including
the matched-FLOPs comparison (achieved FLOP/s of ours over diffusers': >= 1 means our step is no slower per FLOP).

    python benchmarks/train_throughput.py                     # CPU: 32 px, batch 8, eager, under a minute
    python benchmarks/train_throughput.py --out runs/bench    # GPU: 128 px, batch 128 and 32, eager + compiled
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (Deadline, FlopCounter, autocast, channels_last, diffusers_unet, environment, free, log, md_table,
                    measure, n_params, ours_classifier, ours_unet, peak_gib, pick_device, reset_peak, set_fast_flags,
                    set_threads, sync, write_results)

MODELS = {'ours': 'ours: UNet (seed)',
          'diffusers': 'diffusers: UNet2DModel',
          'joint': 'ours: joint step (UNet + classifier)',
          'ours_fp32_norm': 'ours: UNet with nn.GroupNorm (float32 norms under autocast)',
          'ours_default_layout': "ours: UNet, compiled without the library's COMPILE_OPTIONS",
          'diffusers_forced_layout': "diffusers: UNet2DModel, compiled with our COMPILE_OPTIONS"}


def random_batches(n: int, batch: int, image_size: int, num_classes: int, device: torch.device, seed: int = 0):
    "`n` batches of (x0, t, eps, y) on the device; images in channels_last on CUDA."
    g, fmt, out = torch.Generator().manual_seed(seed), channels_last(device), []
    for _ in range(n):
        x0 = torch.rand(batch, 3, image_size, image_size, generator=g) * 2 - 1
        eps = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (batch,), generator=g)
        y = torch.randint(0, num_classes, (batch,), generator=g)
        out.append((x0.to(device, memory_format=fmt), t.to(device), eps.to(device, memory_format=fmt), y.to(device)))
    return out


def diffusion_step(model, opt, schedule, device: torch.device, peer: bool):
    "One optimizer step of a noise-predicting UNet: MSE between its prediction for x_t and the noise."
    def step(x0, t, eps, y):
        xt = schedule.q_sample(x0, t, eps)
        with autocast(device):
            out = model(xt, t)
        loss = F.mse_loss((out.sample if peer else out).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def plain_group_norms(model: torch.nn.Module) -> torch.nn.Module:
    "Turn the library's `AmpGroupNorm`s back into plain `nn.GroupNorm` (float32 output under autocast), in place."
    for m in model.modules():
        if isinstance(m, torch.nn.GroupNorm): m.__class__ = torch.nn.GroupNorm
    return model


@torch.no_grad()
def numerics(image_size: int, device: torch.device) -> dict:
    "Relative error of our UNet's bf16-autocast output against float32, with AmpGroupNorm and with nn.GroupNorm."
    torch.manual_seed(0)
    model = ours_unet(image_size).to(device, memory_format=channels_last(device)).eval()
    x = torch.randn(8, 3, image_size, image_size, device=device).to(memory_format=channels_last(device))
    t = torch.randint(0, 1000, (8,), device=device)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False   # a true float32 reference
    try: ref = model(x, t).double()
    finally: torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    rel = lambda out: ((out.double() - ref).norm() / ref.norm()).item()
    with autocast(device): amp = rel(model(x, t))
    plain_group_norms(model)
    with autocast(device): plain = rel(model(x, t))
    return dict(rel_err_amp_group_norm=amp, rel_err_plain_group_norm=plain)


def build(which: str, image_size: int, num_classes: int, device: torch.device, lr: float = 2e-4):
    "(step builder taking `compiled`, parameter count in millions) for one of MODELS."
    from butterfly_diffusion.scheduler import NoiseSchedule
    schedule, fused, fmt = NoiseSchedule().to(device), device.type == 'cuda', channels_last(device)
    if which == 'joint':   # the library's own step: both models, two Adams, the EMA, as in training
        from butterfly_diffusion.core import get_config
        from butterfly_diffusion.training import compile_models
        from butterfly_diffusion.step import make_state, train_step
        m0 = ours_unet(image_size).to(device, memory_format=fmt)
        m1 = ours_classifier(image_size, num_classes).to(device, memory_format=fmt)
        cfg = get_config('seed', image_size=image_size, num_classes=num_classes)
        state = make_state(m0, m1, cfg, [str(i) for i in range(num_classes)], device)
        def make_step(compiled: bool):
            if compiled: compile_models(state)     # what train_classifier_guidance does by default on CUDA
            return lambda x0, t, eps, y: train_step(state, schedule, x0, y)
        return make_step, n_params(m0) + n_params(m1)
    from butterfly_diffusion.training import compile_model
    peer = which.startswith('diffusers')
    model = diffusers_unet(image_size) if peer else ours_unet(image_size)
    model = model.to(device, memory_format=fmt).train()
    if which == 'ours_fp32_norm': plain_group_norms(model)
    adam = torch.optim.AdamW if peer else torch.optim.Adam
    opt = adam(model.parameters(), lr=lr, fused=fused)
    # compiled as the library compiles for training (COMPILE_OPTIONS); diffusers with torch.compile's defaults
    compiler = compile_model if which in ('ours', 'diffusers_forced_layout') else torch.compile
    def make_step(compiled: bool):
        return diffusion_step(compiler(model) if compiled else model, opt, schedule, device, peer)
    return make_step, n_params(model)


def prepare(which: str, variant: str, batch: int, args, device: torch.device) -> dict:
    "Build one model and its step, count the FLOPs of one eager step, compile if asked, and warm up."
    make_step, params = build(which, args.image_size, args.num_classes, device)
    data = random_batches(2, batch, args.image_size, args.num_classes, device)
    step = make_step(False)
    with FlopCounter() as counter:                      # one eager step: the same math as the compiled one
        step(*data[0])
    sync(device)
    if variant == 'compiled': step = make_step(True)
    reset_peak(device)
    first_s = None
    if variant == 'compiled' or device.type == 'cuda':  # on the CPU the counted step was the warm-up
        t0 = time.perf_counter()
        step(*data[1]); sync(device)                    # first call: compiles, or autotunes cuDNN
        first_s = time.perf_counter() - t0
    for i in range(args.warmup - 1): step(*data[i % 2])
    sync(device)
    flops = counter.get_total_flops()
    attn = sum(v for k, v in counter.get_flop_counts().get('Global', {}).items() if 'attention' in str(k))
    return dict(params_m=params, gflop_per_image=flops / batch / 1e9, attn_gflop_per_image=attn / batch / 1e9,
                warmup_s=first_s if variant == 'compiled' else None, _step=step, _data=data, _flops=flops)


def time_steps(prepared: list[dict], args, device: torch.device, deadline: Deadline):
    "Time `args.steps` steps of each prepared model, round-robin. CUDA: mean step; CPU: fastest step (shared cores)."
    times = {id(p): [] for p in prepared}
    live, n, t_all = list(prepared), 0, time.perf_counter()
    while n < args.steps and live:
        for p in list(live):
            t0 = time.perf_counter()
            try:
                p['_step'](*p['_data'][n % 2])
            except Exception as e:  # noqa: BLE001 - one model failing must not stop the others
                p['error'] = f'{type(e).__name__}: {str(e)[:300]}'
                live.remove(p)
                log(f'    {p["model"]}: {p["error"]}')
                continue
            if device.type == 'cpu': times[id(p)].append(time.perf_counter() - t0)
        n += 1
        if n >= 2 and not deadline.allows(args.reserve):
            log(f'    time limit: stopping after {n} steps')
            break
    sync(device)
    total = time.perf_counter() - t_all
    for p in live:
        step_s = min(times[id(p)]) if device.type == 'cpu' else total / n
        p.update(steps=n, step_ms=1e3 * step_s, images_per_s=p['batch'] / step_s, tflops=p['_flops'] / step_s / 1e12,
                 peak_gib=peak_gib(device))


def profile(p: dict, args, device: torch.device):
    "Profile 3 more steps of a measured model; write the kernels that took the most device time to a text file."
    from torch.profiler import ProfilerActivity, profile as torch_profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with torch_profile(activities=acts) as prof:
        for i in range(3): p['_step'](*p['_data'][i % 2])
        sync(device)
    key = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    table = prof.key_averages().table(sort_by=key, row_limit=args.profile_rows, max_name_column_width=70)
    name = f"profile_{p['key']}_{p['variant']}_{p['batch']}"
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f'{name}.txt').write_text(f"{p['name']}, 3 steps\n{table}\n")
    log(f"    {name}: top kernels by {key}\n" + '\n'.join(table.splitlines()[:args.profile_rows + 4]))


def run_group(rows: list, group: list[tuple], args, device: torch.device, deadline: Deadline):
    "Prepare and time a group of (model, variant, batch) measurements together; one row each, errors included."
    prepared = []
    for which, variant, batch in group:
        name = f'{MODELS[which]} | {variant} | batch {batch}'
        base = dict(name=name, model=MODELS[which], key=which, variant=variant, batch=batch)
        p = measure([], name, prepare, which, variant, batch, args, device)
        if p is None or 'error' in p: rows.append({**base, 'error': (p or {}).get('error', 'failed')})
        else: prepared.append({**p, **base})
    if prepared:
        try: time_steps(prepared, args, device, deadline)
        except Exception as e:  # noqa: BLE001
            for p in prepared: p.setdefault('error', f'{type(e).__name__}: {str(e)[:300]}')
    for p in prepared:
        if p['variant'] in args.profile and 'error' not in p and deadline.allows(10 + args.reserve):
            try: profile(p, args, device)
            except Exception as e: log(f'    profiling failed: {type(e).__name__}: {e}')  # noqa: BLE001
        row = {k: v for k, v in p.items() if not k.startswith('_')}
        rows.append(row)
        log('    ' + ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in row.items()))


def ratios(rows: list[dict], device: torch.device) -> list[dict]:
    "ours ÷ diffusers at the same batch and variant; on CUDA also against diffusers compiled, and the norm check."
    ok = [r for r in rows if 'error' not in r]
    def find(key, var, b): return next((r for r in ok if (r['key'], r['variant'], r['batch']) == (key, var, b)), None)
    out, cpu = [], device.type == 'cpu'
    def add(o, d, comparison, target=None, note=''):
        if not (o and d): return
        tflops = o['tflops'] / d['tflops']
        met = None if target is None else ('yes' if tflops >= target else 'NO')
        out.append(dict(comparison=comparison, images_per_s=o['images_per_s'] / d['images_per_s'], tflops=tflops,
                        target=target, met=met, note=note))
    for b in sorted({r['batch'] for r in ok}, reverse=True):
        for var in ('eager', 'compiled'):
            d = find('diffusers', var, b)
            target = 1.25 if var == 'compiled' and not cpu else 1.0
            add(find('ours', var, b), d, f'ours UNet ÷ diffusers, {var}, batch {b}', target,
                'matched FLOPs: achieved FLOP/s ratio (>= 1: ours no slower per FLOP)' if cpu else 'TFLOP/s ratio')
            add(find('joint', var, b), d, f'ours joint step ÷ diffusers UNet, {var}, batch {b}',
                note='the joint step trains two networks; for reference')
        if not cpu:
            add(find('ours', 'eager', b), find('diffusers', 'compiled', b),
                f'ours eager ÷ diffusers compiled, batch {b}', note='for reference')
            add(find('ours', 'eager', b), find('ours_fp32_norm', 'eager', b),
                f'ours (AmpGroupNorm) ÷ ours with nn.GroupNorm, eager, batch {b}', note='what the bf16 norms bring')
            add(find('ours', 'compiled', b), find('ours_default_layout', 'compiled', b),
                f'ours compiled with ÷ without COMPILE_OPTIONS, batch {b}', note='what forcing channels-last brings')
            add(find('ours', 'compiled', b), find('diffusers_forced_layout', 'compiled', b),
                f'ours ÷ diffusers, both compiled with COMPILE_OPTIONS, batch {b}', note='for reference')
    return out


def report(rows, rat, env, args, device) -> str:
    "The markdown tables: one row per measurement, then the ratios."
    cuda = device.type == 'cuda'
    cols = [('model', 'model', 0), ('variant', 'variant', 0), ('batch', 'batch', 0), ('images_per_s', 'images/s', 1),
            ('step_ms', 'step ms', 1), ('gflop_per_image', 'GFLOP/image', 1),
            ('attn_gflop_per_image', 'of which attention', 1), ('tflops', 'TFLOP/s', 1 if cuda else 3),
            ('peak_gib', 'peak GiB', 1), ('warmup_s', 'compile warm-up s', 1), ('steps', 'steps timed', 0),
            ('error', 'error', 0)]
    threads = env['cpu_threads']
    where = env.get('gpu', f"CPU ({threads} thread{'s' if threads > 1 else ''})")
    prec = 'bf16 autocast, channels_last, fused Adam/AdamW, cudnn.benchmark' if cuda else 'fp32'
    md = [f'## Training throughput — {where}, {args.image_size} px, {prec}', '',
          f"torch {env['torch']}, diffusers {env.get('diffusers')}; FLOPs: FlopCounterMode on one forward+backward "
          f"step; time: {'mean of the timed steps' if cuda else 'fastest timed step, models round-robin'}.", '',
          md_table(rows, cols)]
    if 'numerics' in env:
        md += ['', 'bf16 autocast against float32, relative error of our UNet output (batch 8): ' +
               ', '.join(f'{k} {v:.2e}' if isinstance(v, float) else f'{k} {v}' for k, v in env['numerics'].items())]
    if rat:
        md += ['', '### Ratios (ours ÷ diffusers)', '',
               md_table(rat, [('comparison', 'comparison', 0), ('images_per_s', 'images/s ratio', 2),
                              ('tflops', 'TFLOP/s ratio', 2), ('target', 'target', 2), ('met', 'met', 0),
                              ('note', 'note', 0)])]
    return '\n'.join(md)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default=None, help='cuda, cpu, ... (default: cuda if available)')
    p.add_argument('--batch', type=int, nargs='+', default=None, help='batch sizes (default: 128 32 on CUDA, 8 on CPU)')
    p.add_argument('--image-size', type=int, default=None, help='default: 128 on CUDA, 32 on CPU')
    p.add_argument('--num-classes', type=int, default=75, help="the classifier's classes in the joint step")
    p.add_argument('--models', default='ours,diffusers,joint', help=f'comma list of: {", ".join(MODELS)}')
    p.add_argument('--norm-check', action=argparse.BooleanOptionalAction, default=True,
                   help='CUDA: also time our UNet with plain nn.GroupNorm (eager, first batch size) and compare bf16 '
                        'numerics with float32 (default: on)')
    p.add_argument('--compile', action=argparse.BooleanOptionalAction, default=None,
                   help='also time torch.compile variants (default: on for CUDA, off for CPU)')
    p.add_argument('--eager', action=argparse.BooleanOptionalAction, default=True,
                   help='time the eager variants (--no-eager: compiled ones only, when the eager rows are known)')
    p.add_argument('--compile-batch', type=int, nargs='+', default=None,
                   help='batches to compile at (default: the first of --batch)')
    p.add_argument('--compile-models', default='diffusers,ours',
                   help='models to compile, in this order (also: ours_default_layout, diffusers_forced_layout)')
    p.add_argument('--steps', type=int, default=None, help='timed steps per measurement (default: 10 CUDA, 3 CPU)')
    p.add_argument('--warmup', type=int, default=None,
                   help='warm-up steps after the FLOP-counting step (default: 3 CUDA; CPU: 1, the counted step)')
    p.add_argument('--quick', action='store_true', help='two timed steps, one batch size: a smoke test')
    p.add_argument('--time-limit', type=float, default=None, help='global budget (s); later measurements are skipped')
    p.add_argument('--compile-reserve', type=float, default=90, help='seconds a compiled measurement needs to start')
    p.add_argument('--reserve', type=float, default=5, help='stop timing a measurement when fewer seconds remain')
    p.add_argument('--threads', type=int, default=1,
                   help='CPU threads (default 1: stable timings on shared cores; 0: PyTorch default)')
    p.add_argument('--profile', default='', help='comma list of variants (eager, compiled) to profile for 3 more '
                   'steps after timing; the top kernels go to the log and to <out>/profile_*.txt')
    p.add_argument('--profile-rows', type=int, default=25, help='kernels listed per profile')
    p.add_argument('--out', default=None, help='folder for train_throughput.json and .md')
    args = p.parse_args(argv)
    args.profile = [v.strip() for v in args.profile.split(',') if v.strip()]
    bad = [m for m in args.models.split(',') if m.strip() and m.strip() not in MODELS]
    if bad: p.error(f'unknown --models {bad}; choose from {list(MODELS)}')
    return args


def main(argv=None):
    args = parse(argv)
    device = pick_device(args.device)
    cuda = device.type == 'cuda'
    args.image_size = args.image_size or (128 if cuda else 32)
    args.batch = args.batch or ([128, 32] if cuda else [8])
    if args.quick: args.batch = args.batch[:1]
    args.steps = 2 if args.quick else args.steps or (10 if cuda else 3)
    args.warmup = 1 if args.quick else args.warmup or (3 if cuda else 1)
    args.compile = cuda if args.compile is None else args.compile
    args.compile_batch = args.compile_batch or args.batch[:1]
    deadline = Deadline(args.time_limit)
    set_fast_flags(device)
    set_threads(device, args.threads)
    env = environment(device)
    log('environment: ' + ', '.join(f'{k}={v}' for k, v in env.items()))
    if cuda and args.norm_check:
        num = measure([], 'numerics: bf16 autocast vs float32, our UNet, batch 8', numerics, args.image_size, device)
        if num: env['numerics'] = {k: v for k, v in num.items() if k != 'name'}

    # in order of importance, so that a time limit drops the least useful: eager at the first batch size, the
    # compiled variants, then eager at the other batch sizes
    models = [m.strip() for m in args.models.split(',') if m.strip()]
    plan = [(m, 'eager', args.batch[0]) for m in models] if args.eager else []
    if cuda and args.norm_check: plan.append(('ours_fp32_norm', 'eager', args.batch[0]))
    if args.compile:
        plan += [(m.strip(), 'compiled', b) for b in args.compile_batch for m in args.compile_models.split(',')
                 if m.strip() in models or m.strip() in ('ours_default_layout', 'diffusers_forced_layout')]
    plan += [(m, 'eager', b) for b in args.batch[1:] for m in models] if args.eager else []
    # CUDA: one measurement at a time (clean peak memory); CPU: a batch's eager models together, round-robin
    eager_groups = [[x for x in plan if x[1] == 'eager' and x[2] == b] for b in args.batch]
    groups = [[x] for x in plan] if cuda else eager_groups + [[x] for x in plan if x[1] == 'compiled']
    rows = []
    for group in groups:
        need = sum(args.compile_reserve if v == 'compiled' else 3 * args.reserve for _, v, _ in group)
        if not deadline.allows(need):
            for which, variant, batch in group:
                name = f'{MODELS[which]} | {variant} | batch {batch}'
                log(f'--- {name}: skipped, {deadline.left():.0f} s left of the time limit (needs ~{need:.0f} s)')
                rows.append(dict(name=name, model=MODELS[which], key=which, variant=variant, batch=batch,
                                 error='skipped: time limit'))
            continue
        run_group(rows, group, args, device, deadline)
        free(device)
        rat = ratios(rows, device)
        write_results(args.out, 'train_throughput', dict(environment=env, args=vars(args), rows=rows, ratios=rat),
                      report(rows, rat, env, args, device))
    rat = ratios(rows, device)
    text = report(rows, rat, env, args, device)
    write_results(args.out, 'train_throughput', dict(environment=env, args=vars(args), rows=rows, ratios=rat), text)
    log('\n' + text + f'\n\n(total {deadline.elapsed():.0f} s)')
    return rows, rat


if __name__ == '__main__':
    main()
