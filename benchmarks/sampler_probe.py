"""Probe sampler variants on one checkpoint from the same noise: where to stop adding fresh noise, whether to
re-derive the noise from the clipped x0, normalised guidance, DPM-Solver++. Judge accuracy, judge-feature FID,
precision and recall, one judge.

The measurement behind the sampling rows of the recipe table in nbs/09_evaluation.ipynb:

    python benchmarks/sampler_probe.py runs/probe-base/s1400-ema0.995.pt --n_per_class 30
    python benchmarks/sampler_probe.py runs/cond/last.pt --variants eta1,unguided_below_100,eta0_below_200,steps_25
    python benchmarks/sampler_probe.py checkpoints/demo --variants eta1,stop_below_20,stop_below_40,stop_below_60,stop_below_100
    python benchmarks/sampler_probe.py checkpoints/demo --variants polish_20_1,polish_40_2
    python benchmarks/sampler_probe.py runs/probe-zi/s1400-ema0.995.pt --variants eta1,flip_below_200,flip_below_1000
    python benchmarks/sampler_probe.py runs/probe-zi/s1400-ema0.995.pt --variants gnorm_0.02,gnorm_0.04,dpm_25,dpmsde_25

Variants: `eta1` the preset's DDIM-50 with η = 1; `eta0_below_T` η = 0 (no fresh noise) once t < T, so the last
steps only denoise; `recompute` ε = (x_t − √ᾱ_t x̂0)/√(1−ᾱ_t) from the clipped x̂0, as diffusers does when it clips;
`unguided_below_T` no classifier gradient once t < T (where it could only add pixel-level detail); `steps_N` DDIM-N;
`flip_below_T` once t < T, ε averaged with the mirrored image's ε mirrored back (training flips images, so the true
ε is mirror-equivariant and the two estimates differ only by the network's error);
`gnorm_L` the guidance shift of ε, √(1−ᾱ_t)·grad, rescaled per sample to L times the size (RMS) of ε itself
(normalised gradients: the preset's shift is about 0.04 of ε at t = 400–500 and under 0.01 below t = 200);
`dpm_N` DPM-Solver++(2M) with N steps (`dpm1_N` first-order), `dpmsde_N` its SDE form (fresh noise each step;
`dpm_solver.py`); with `-log` (`dpm-log_N`, `dpmsde-log_N`, and `ddim-log_N`: the preset's DDIM, η = 1) the N steps
are evenly spaced in log-SNR instead of in t, and with `_noclip` (`dpm_noclip_N`) x̂0 is not clipped to [-1, 1];
`stop_below_T` the estimate x̂0 as the sample at the last step t >= T (the steps below T skipped); `polish_T_N` the
preset's samples, then N passes of the UNet told they are x_t at t = T (so it removes more noise than there is).
Each variant's grid (the first 8 samples of each species) goes to `--out`.
A class-conditional checkpoint is told each sample's species, as the pipeline does.
"""
import argparse, math, time
from pathlib import Path
import torch
from butterfly_diffusion.guidance import load_pipeline, noise_predictor, classifier_guidance
from butterfly_diffusion.evaluation import synthetic_reference, measure
from common import save_species_grid
from dpm_solver import dpm_solver_step, logsnr_timesteps

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('checkpoint'); p.add_argument('--n_per_class', type=int, default=30)
p.add_argument('--variants', default='eta1,recompute,eta0_below_100,eta0_below_200,eta0_below_300')
p.add_argument('--seed', type=int, default=123)
p.add_argument('--out', default='runs/sampler', help='folder for a grid of each variant')
p.add_argument('--guidance_share', action='store_true',
               help="print, every 100 steps of t, the median over samples of guidance's shift of ε as a share of ε")
a = p.parse_args()
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
pipe = load_pipeline(a.checkpoint); cfg, S = pipe.cfg, pipe.schedule
ref = synthetic_reference(len(pipe.classes), cfg.image_size, a.n_per_class, cfg.seed, dict(progress=False))
y = torch.arange(len(pipe.classes)).repeat_interleave(a.n_per_class)
x_T = torch.randn(len(y), 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(a.seed))
print(f'{len(y)} guided samples per variant; real images score FID {ref.floor()["fid"]:.3f} (the floor)')

def rms(v: torch.Tensor) -> torch.Tensor: return v.square().mean((1, 2, 3), keepdim=True).sqrt()   # per sample

@torch.no_grad()
def ddim(eta_below: int = 0, recompute: bool = False, guide_below: int = 0, steps: int | None = None,
         stop_below: int = 0, flip_below: int = 0, gnorm: float = 0.0, logsnr: bool = False) -> torch.Tensor:
    """Guided DDIM with the checkpoint's settings; η = 0 once t < `eta_below`; no guidance once t < `guide_below`;
    the estimate x̂0 as the sample once the next step would go below `stop_below`; ε averaged with its mirror image
    once t < `flip_below`; guidance's shift of ε set to `gnorm` of ε's size if `gnorm`; steps evenly spaced in
    log-SNR if `logsnr`."""
    g, xt = torch.Generator().manual_seed(a.seed + 1), x_T.clone()
    predict = noise_predictor(pipe.model_0, y)
    guide = classifier_guidance(pipe.model_1, y, cfg.guidance_scale, cfg.guidance_temperature, cfg.guidance_t_max)
    ts = logsnr_timesteps(S, steps or cfg.sample_steps) if logsnr else S.ddim_timesteps(steps or cfg.sample_steps)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        if t < stop_below: break
        if t_prev < stop_below: t_prev = -1
        tt = torch.full((len(y),), t, dtype=torch.long)
        eps, grad = predict(xt, tt), guide(xt, tt) if t >= guide_below else None
        if a.guidance_share and grad is not None and t % 100 == 0:
            print(f't = {t}: |√(1-ᾱ_t)·grad| / |ε| median {(math.sqrt(1 - S._host["alpha_bar"][t]) * rms(grad) / rms(eps)).median():.4f}')
        if gnorm and grad is not None:   # the guidance shift of ε, √(1-ᾱ_t)·grad, set to `gnorm` of ε's size, per sample
            grad = gnorm * rms(eps) * grad / (rms(grad) * math.sqrt(1 - S._host['alpha_bar'][t]) + 1e-12)
        if t < flip_below: eps = (eps + predict(xt.flip(-1), tt).flip(-1)) / 2   # trained on flips: ε is mirror-equivariant
        eta = cfg.sample_eta if t >= eta_below else 0.0
        if not recompute: xt = S.ddim_step(xt, t, t_prev, eps, eta=eta, grad=grad, generator=g); continue
        ab = S._host['alpha_bar'][t]
        eps = eps - math.sqrt(1 - ab) * grad if grad is not None else eps
        x0 = S.predict_x0(xt, t, eps).clamp(-1, 1)
        eps = (xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab)         # the noise the clipped x0 implies
        xt = S.ddim_step(xt, t, t_prev, eps, eta=eta, generator=g)
    return xt.clamp(-1, 1)

@torch.no_grad()
def polish(x: torch.Tensor, t: int, passes: int) -> torch.Tensor:
    "`passes` times, the UNet's estimate x̂0 of √ᾱ_t·x told it is x_t: a denoiser asked to remove more noise than there is."
    scale, predict = math.sqrt(S._host['alpha_bar'][t]), noise_predictor(pipe.model_0, y)
    tt = torch.full((len(y),), t, dtype=torch.long)
    for _ in range(passes):
        xt = scale * x                                    # x as if it were the noisy image at t
        x = S.predict_x0(xt, tt, predict(xt, tt)).clamp(-1, 1)
    return x

@torch.no_grad()
def dpm(steps: int, sde: bool, clip: bool = True, logsnr: bool = False, order: int = 2) -> torch.Tensor:
    """Guided sampling with DPM-Solver++(2M), or its SDE form if `sde`, on the preset's timesteps or on `steps` evenly
    spaced in log-SNR; x̂0 clipped unless `clip` is False; `order` 1: every step first-order, which is DDIM with η = 0
    taking its noise from the clipped x̂0."""
    g, xt, prev = torch.Generator().manual_seed(a.seed + 1), x_T.clone(), None
    ts = logsnr_timesteps(S, steps) if logsnr else S.ddim_timesteps(steps)
    predict = noise_predictor(pipe.model_0, y)
    guide = classifier_guidance(pipe.model_1, y, cfg.guidance_scale, cfg.guidance_temperature, cfg.guidance_t_max)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        tt = torch.full((len(y),), t, dtype=torch.long)
        xt, x0 = dpm_solver_step(S, xt, t, t_prev, predict(xt, tt), prev, guide(xt, tt), sde=sde, generator=g, clip_x0=clip)
        prev = (t, x0) if order == 2 else None
    return xt.clamp(-1, 1)

def draw(v: str) -> torch.Tensor:
    "The samples of variant `v`."
    if v.startswith('gnorm_'): return ddim(gnorm=float(v.split('_')[1]))
    if v.startswith('ddim-log_'): return ddim(steps=int(v.split('_')[1]), logsnr=True)
    if v.startswith('dpm'):   # dpm[1|sde][-log][_noclip]_N
        return dpm(int(v.rsplit('_', 1)[1]), sde=v.startswith('dpmsde'), clip='noclip' not in v, logsnr='-log' in v,
                   order=1 if v.startswith('dpm1') else 2)
    if v.startswith('polish_'): return polish(ddim(), *map(int, v.split('_')[1:]))   # polish_T_N
    n = int(v.rsplit('_', 1)[1]) if v.rsplit('_', 1)[-1].isdigit() and '_' in v else 0   # the T or N of the name
    return ddim(recompute=v == 'recompute', eta_below=n if v.startswith('eta0_below_') else 0,
                guide_below=n if v.startswith('unguided_below_') else 0, steps=n if v.startswith('steps_') else None,
                stop_below=n if v.startswith('stop_below_') else 0, flip_below=n if v.startswith('flip_below_') else 0)

for v in a.variants.split(','):
    t0 = time.time()
    x = draw(v)
    m = measure(ref, x, y)
    save_species_grid(x, a.n_per_class, out / f'{v}.png')
    print(f'{v:16s} accuracy {m["accuracy"]:.1%}  FID {m["fid"]:.2f}  precision {m["precision"]:.2f}  '
          f'recall {m["recall"]:.2f}  ({time.time() - t0:.0f} s)', flush=True)
