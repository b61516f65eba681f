"""DPM-Solver++(2M) and its SDE form (Lu et al. 2022), for `sampler_probe.py`: a candidate sampler, not the library's.

Measured against the preset's guided DDIM-50 (η = 1) in nbs/09_evaluation.ipynb, it did not win, so it stays here.
`tests/test_scheduler_peer.py` checks it against diffusers' `DPMSolverMultistepScheduler` (the same steps, to float32
rounding) and, on Gaussian data whose probability-flow ODE has a closed-form solution, that it converges at second
order where DDIM converges at first.

Notation: α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), λ_t = log(α_t/σ_t), which grows as t falls; h = λ_{t_prev} − λ_t > 0.
"""
from __future__ import annotations
import math
import torch
from butterfly_diffusion.scheduler import NoiseSchedule


def _lam(ab: float) -> float: return 0.5 * (math.log(ab) - math.log1p(-ab))


def dpm_solver_step(S: NoiseSchedule,
                    xt: torch.Tensor,                    # current samples x_t
                    t: int, t_prev: int,                 # this timestep and the next, t > t_prev >= -1 (-1: clean)
                    eps: torch.Tensor,                   # predicted noise ε_θ(x_t, t)
                    prev: tuple | None = None,           # (t, x̂0) of the step before; None: a first-order step
                    grad: torch.Tensor | None = None,    # classifier guidance s·∇log p(y|x_t), as in `ddim_step`
                    sde: bool = False,                   # the SDE form (fresh noise each step) instead of the ODE
                    generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                    clip_x0: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    "One DPM-Solver++(2M) step x_t -> x_{t_prev} (diffusers' 'midpoint' form); returns it and the x̂0 for the next step."
    ab = S._host['alpha_bar']
    a_t, s_t = math.sqrt(ab[t]), math.sqrt(1 - ab[t])
    if grad is not None: eps = eps - s_t * grad          # guidance shifts the noise estimate, as in DDIM
    x0 = (xt - s_t * eps) / a_t
    if clip_x0: x0 = x0.clamp(-1, 1)
    if t_prev < 0: return x0, x0                         # σ = 0: the last step lands on x̂0 (first order, as diffusers)
    a_p, s_p = math.sqrt(ab[t_prev]), math.sqrt(1 - ab[t_prev])
    h = _lam(ab[t_prev]) - _lam(ab[t])
    d = x0
    if prev is not None:                                 # second order: extrapolate x̂0 linearly in λ
        r = (_lam(ab[t]) - _lam(ab[prev[0]])) / h
        d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev[1]
    if not sde: return (s_p / s_t) * xt - a_p * math.expm1(-h) * d, x0
    if noise is None: noise = torch.randn(xt.shape, generator=generator, dtype=xt.dtype).to(xt.device)
    return (s_p / s_t) * math.exp(-h) * xt - a_p * math.expm1(-2 * h) * d + s_p * math.sqrt(-math.expm1(-2 * h)) * noise, x0


def logsnr_timesteps(S: NoiseSchedule, n: int) -> list[int]:
    "About `n` timesteps, noisiest first, evenly spaced in λ from t = T−1 to t = 0 (duplicates after rounding dropped)."
    lam = torch.tensor([_lam(a) for a in S._host['alpha_bar']], dtype=torch.float64)
    out = []
    for v in torch.linspace(float(lam[-1]), float(lam[0]), n, dtype=torch.float64):
        t = int((lam - v).abs().argmin())
        if not out or t < out[-1]: out.append(t)
    return out
