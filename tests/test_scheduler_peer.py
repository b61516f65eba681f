"""Peer check: our `NoiseSchedule` against diffusers' `DDPMScheduler` and `DDIMScheduler` on the same inputs.

diffusers is a test-only extra; without it these tests are skipped. Both schedulers are built with the seed's schedule
(1000 linear steps, 1e-4 -> 0.02) and diffusers' defaults otherwise: epsilon prediction, x0 clipped to [-1, 1],
`fixed_small` variance for DDPM, "leading" timestep spacing and `set_alpha_to_one=True` for DDIM.

Precision. diffusers builds its schedule in float32 and forms the DDPM step's β_t as 1 - ᾱ_t / ᾱ_{t-1}, a difference of
two float32 numbers close to 1; at small t that β_t is off by up to 4e-4 relative, and the step by up to ~6e-5. We
build the schedule in float64. So each step is compared three ways (the `case` fixture):
- `stock`:     diffusers as shipped vs ours, both on float32 inputs: agree to 1e-4 (diffusers' own rounding);
- `reference`: diffusers with its schedule rebuilt in float64, run on float64 inputs, vs ours on the same float32
               inputs: agree to 1e-5 — our float32 step is that close to the exact one;
- `float64`:   both in float64: agree to 1e-9 — same formulas, term by term.
"""

import pytest
import torch

pytest.importorskip('diffusers')
from diffusers import DDIMScheduler, DDPMScheduler

from butterfly_diffusion.scheduler import NoiseSchedule

T, BETA_START, BETA_END = 1000, 1e-4, 0.02
CONFIG = dict(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END, beta_schedule='linear',
              clip_sample=True)
SHAPE = (2, 3, 8, 8)
CASES = {'stock': (torch.float32, torch.float32, 1e-4),      # case: (our dtype, diffusers' dtype, tolerance)
         'reference': (torch.float32, torch.float64, 1e-5),
         'float64': (torch.float64, torch.float64, 1e-9)}


def in_float64(s):
    "The diffusers scheduler `s` with its schedule rebuilt in float64 (same formulas as its __init__)."
    s.betas = torch.linspace(BETA_START, BETA_END, T, dtype=torch.float64)
    s.alphas = 1.0 - s.betas
    s.alphas_cumprod = torch.cumprod(s.alphas, dim=0)
    s.one = s.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return s


def make_ddpm(dtype=torch.float32, **kw):
    s = DDPMScheduler(**{**CONFIG, **kw})
    return in_float64(s) if dtype == torch.float64 else s


def make_ddim(num_steps, dtype=torch.float32, **kw):
    s = DDIMScheduler(**{**CONFIG, **kw})
    s.set_timesteps(num_steps)
    return in_float64(s) if dtype == torch.float64 else s


@pytest.fixture(scope='module')
def ours(): return NoiseSchedule(T, BETA_START, BETA_END)


@pytest.fixture(params=list(CASES))
def case(request): return CASES[request.param]


def randn(seed, dtype=torch.float32, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_close(a, b, tol):
    err = (a.double() - b.double()).abs().max().item()
    assert err < tol, f'max abs difference {err:.3g} >= {tol:g}'


def test_schedule(ours):
    stock, exact = make_ddpm(), make_ddpm(torch.float64)
    assert_close(ours.beta, stock.betas, 5e-9)                       # float32 linspace vs float64 rounded: 1 ulp
    assert_close(ours.alpha, stock.alphas, 1e-7)
    assert_close(ours.alpha_bar, stock.alphas_cumprod, 1e-6)
    assert_close(ours.alpha_bar, exact.alphas_cumprod, 1e-7)
    ts = range(T)
    assert_close(ours.posterior_variance, torch.stack([stock._get_variance(t) for t in ts]), 2e-7)
    assert_close(ours.posterior_variance, torch.stack([exact._get_variance(t) for t in ts]), 1e-9)


@pytest.mark.parametrize('t', [999, 700, 300, 50, 1, 0])
def test_q_sample(ours, t):
    x0, eps, ts = randn(0).clamp(-1, 1), randn(1), torch.full((SHAPE[0],), t)
    assert_close(ours.q_sample(x0, ts, eps), make_ddpm().add_noise(x0, eps, ts), 1e-5)
    x0, eps = x0.double(), eps.double()
    assert_close(ours.q_sample(x0, ts, eps), make_ddpm(torch.float64).add_noise(x0, eps, ts), 1e-6)


@pytest.mark.parametrize('t', [999, 900, 500, 100, 10, 1, 0])
def test_ddpm_step(ours, case, t):
    "Same x_t, same predicted noise, same noise z: same x_{t-1} and the same (clipped) predicted x0."
    our_dtype, their_dtype, tol = case
    xt, eps = randn(0, our_dtype), randn(1, our_dtype)
    theirs = make_ddpm(their_dtype).step(eps.to(their_dtype), t, xt.to(their_dtype),
                                         generator=torch.Generator().manual_seed(7))
    z = randn(7, their_dtype).to(our_dtype)                  # the draw diffusers made with that generator
    assert_close(ours.ddpm_step(xt, t, eps, noise=z), theirs.prev_sample, tol)
    x0 = ours.predict_x0(xt.to(their_dtype), t, eps.to(their_dtype))   # in their dtype: x0 amplifies rounding by 1/√ᾱ_t
    assert_close(x0.clamp(-1, 1), theirs.pred_original_sample, tol)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_ddpm_step_generator(ours, dtype, t=300):
    "Our generator draws the same noise as diffusers' (CPU generator, draw on its device)."
    xt, eps = randn(0, dtype), randn(1, dtype)
    theirs = make_ddpm(dtype).step(eps, t, xt, generator=torch.Generator().manual_seed(3)).prev_sample
    assert_close(ours.ddpm_step(xt, t, eps, generator=torch.Generator().manual_seed(3)), theirs, CASES['stock'][2])


def test_ddpm_step_unclipped(ours, t=300):
    xt, eps = 3 * randn(0, torch.float64), randn(1, torch.float64)
    theirs = make_ddpm(torch.float64, clip_sample=False).step(eps, t, xt, generator=torch.Generator().manual_seed(3))
    assert_close(ours.ddpm_step(xt, t, eps, clip_x0=False, generator=torch.Generator().manual_seed(3)),
                 theirs.prev_sample, 1e-9)


@pytest.mark.parametrize('n', [1, 7, 10, 50, 333, 1000])
def test_ddim_timesteps(ours, n):
    assert ours.ddim_timesteps(n) == make_ddim(n).timesteps.tolist()
    assert ours.ddim_timesteps(n, spacing='trailing') == make_ddim(n, timestep_spacing='trailing').timesteps.tolist()


@pytest.mark.parametrize('eta', [0.0, 0.5, 1.0])
@pytest.mark.parametrize('t', [980, 500, 100, 20, 0])
def test_ddim_step(ours, case, t, eta):
    "diffusers steps from t to t - T // n (n = 50 here, so t - 20; -1 past the end); same x_t, eps and noise z."
    our_dtype, their_dtype, tol = case
    xt, eps, z = randn(0, our_dtype), randn(1, our_dtype), randn(2, our_dtype)
    theirs = make_ddim(50, their_dtype).step(eps.to(their_dtype), t, xt.to(their_dtype), eta=eta,
                                             variance_noise=z.to(their_dtype))
    mine = ours.ddim_step(xt, t, t - 20 if t >= 20 else -1, eps, eta=eta, noise=z)
    assert_close(mine, theirs.prev_sample, tol)
    x0 = ours.predict_x0(xt.to(their_dtype), t, eps.to(their_dtype))   # in their dtype: x0 amplifies rounding by 1/√ᾱ_t
    assert_close(x0.clamp(-1, 1), theirs.pred_original_sample, tol)


def test_ddim_step_generator(ours, t=500, eta=0.7):
    xt, eps = randn(0), randn(1)
    theirs = make_ddim(50).step(eps, t, xt, eta=eta, generator=torch.Generator().manual_seed(11)).prev_sample
    assert_close(ours.ddim_step(xt, t, t - 20, eps, eta=eta, generator=torch.Generator().manual_seed(11)), theirs,
                 CASES['stock'][2])


def test_ddim_chain(ours, n=10):
    "A whole deterministic 10-step chain with a made-up noise predictor stays on diffusers' (float64) path."
    s, fake_eps = make_ddim(n, torch.float64), lambda x, t: torch.tanh(x) * (t / T)
    theirs = randn(0, torch.float64)
    mine = theirs.float()
    ts = ours.ddim_timesteps(n)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        theirs = s.step(fake_eps(theirs, t), t, theirs).prev_sample
        mine = ours.ddim_step(mine, t, t_prev, fake_eps(mine, t))
    assert_close(mine, theirs, 1e-5)


@pytest.mark.parametrize('t', [999, 500, 50, 1, 0])
def test_ddpm_guidance_shifts_mean_by_variance_times_grad(ours, t):
    "Algorithm 1: guided - unguided = σ_t² · grad, σ_t² being diffusers' fixed_small variance (0 at t = 0)."
    xt, eps, grad, z = (randn(i, torch.float64) for i in range(4))
    shift = ours.ddpm_step(xt, t, eps, grad=grad, noise=z) - ours.ddpm_step(xt, t, eps, noise=z)
    variance = make_ddpm(torch.float64)._get_variance(t) if t > 0 else 0.0   # diffusers clamps 0 to 1e-20
    assert_close(shift, variance * grad, 1e-12)
    zero = ours.ddpm_step(xt, t, eps, grad=torch.zeros_like(grad), generator=torch.Generator().manual_seed(5))
    assert torch.equal(zero, ours.ddpm_step(xt, t, eps, generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize('t', [980, 500, 20, 0])
def test_ddim_guidance_is_a_shifted_noise_estimate(ours, case, t):
    "Algorithm 2: our guided step = diffusers' unguided step with ε' = ε - √(1-ᾱ_t) · grad."
    our_dtype, their_dtype, tol = case
    s = make_ddim(50, their_dtype)
    xt, eps, grad = randn(0, our_dtype), randn(1, our_dtype), randn(2, our_dtype)
    eps_guided = eps.to(their_dtype) - (1 - s.alphas_cumprod[t]).sqrt() * grad.to(their_dtype)
    t_prev = t - 20 if t >= 20 else -1
    assert_close(ours.ddim_step(xt, t, t_prev, eps, grad=grad), s.step(eps_guided, t, xt.to(their_dtype)).prev_sample,
                 tol)
    assert torch.equal(ours.ddim_step(xt, t, t_prev, eps, grad=torch.zeros_like(grad)),
                       ours.ddim_step(xt, t, t_prev, eps))
