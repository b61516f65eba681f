"""Where an upsampler's detail comes from: draw held-out photos' detail back from their own detail noised to level t0.

An upsampler (chapter 8a) draws the detail x - B(A(x)) from noise, starting at t = detail_t_start (the preset: 999;
an upsampler trained only below detail_t_max, like the t < 500 one, at detail_t_max - 1). Here each
held-out photo's true detail is noised to level t0 (`q_sample`) and the network draws it back from there with DDIM
(a step every 25 levels), reading the photo's 32-px view noised to cond_t as in sampling. Printed for each t0: the
detail energy of the one-step estimate of x0 at t0 and of the drawing, as a share of the photos', and the drawing's
squared error. If the drawings keep the detail from t0 = the start but not from pure noise, the reverse process
starts where the detail is not yet drowned for the network. Measured on the t < 500 upsampler shipped at 9eaf52d
(chapter 9a):

    python experiments/upsampler_start.py butterflies-75-upsampler --data ../shared/data/butterflies-75 25 100 250 499
"""
import argparse
import torch
from butterfly_diffusion.cascade import load_upsampler, shrink, enlarge, condition
from common import held_out_photos

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('checkpoint', help="an upsampler's checkpoint, run folder or shipped weights")
p.add_argument('t0', type=int, nargs='+', help='noise levels to start from (below detail_t_max)')
p.add_argument('--data', required=True, help='the real dataset it was trained on (its validation split is held out)')
p.add_argument('--held_out', type=int, default=20)
p.add_argument('--seed', type=int, default=0)
a = p.parse_args()

up = load_upsampler(a.checkpoint, 'cpu')
cfg, S, net = up.cfg, up.schedule, up.unet
real = held_out_photos(a.data, cfg.high_size, cfg.seed, a.held_out)
low = shrink(real, cfg.low_size)
r = (real - enlarge(low, cfg.high_size)) * cfg.detail_scale            # the detail, as the network diffuses it
g = torch.Generator().manual_seed(a.seed)
level = torch.full((len(r),), cfg.cond_t, dtype=torch.long)
cond = condition(low, cfg.high_size, S, level, g)
energy = lambda d: (d / cfg.detail_scale).square().mean().item()
out_of = lambda x, t: torch.cat([net(x[i:i + 2], torch.full((len(x[i:i + 2]),), t), cond=cond[i:i + 2], cond_t=level[i:i + 2])
                                 for i in range(0, len(x), 2)])           # batches of 2: see `Upsampler`
eps_of = lambda x, t: S.eps_from_v(x, t, out_of(x, t)) if cfg.prediction == 'v' else out_of(x, t)   # the noise the steps read
print(f'{len(r)} held-out images; detail energy of the photos {energy(r):.4f}')
with torch.no_grad():
    for t0 in a.t0:
        if not 0 <= t0 < (cfg.detail_t_max or cfg.timesteps): p.error(f't0={t0}: the network trained below {cfg.detail_t_max}')
        x = S.q_sample(r, torch.full((len(r),), t0), torch.randn(r.shape, generator=g))
        one_step = S.predict_x0(x, t0, eps_of(x, t0))
        ts = torch.linspace(t0, 0, max(2, t0 // 25)).round().long().tolist()
        for t, t_prev in zip(ts, ts[1:] + [-1]):
            x = S.ddim_step(x, t, t_prev, eps_of(x, t), 0.0, clip_x0=False)
        print(f't0 {t0}: one-step estimate {energy(one_step) / energy(r):.0%} of the detail energy, drawing '
              f'{energy(x) / energy(r):.0%}, squared error {energy(x - r):.4f}', flush=True)
