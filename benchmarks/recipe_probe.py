"""Probe training changes that are not `Config` fields, from one run: EMA profiles of both models, LR warm-up, a
log-normal distribution of training noise levels, PyTorch's default initialisation in place of `zero_init`, Adam's
β2; weights files at chosen steps, for `butterfly-diffusion evaluate`.

The measurement behind the "probes" rows of the recipe table in nbs/09_evaluation.ipynb:

    python benchmarks/recipe_probe.py base --snapshots 1400 --ema 0.995,w1,p3,p1.5      # EMA profiles of one run
    python benchmarks/recipe_probe.py lr2w lr=2e-3 --warmup 200 --classifier_ema 0.995  # LR warm-up; classifier EMA
    python benchmarks/recipe_probe.py tln --t_lognormal 0,1.4                           # where training spends t
    python benchmarks/recipe_probe.py half --classifier_share 0.5                       # the classifier on half a batch
    python benchmarks/recipe_probe.py torchinit --torch_init                            # residual branches not zeroed
    python benchmarks/recipe_probe.py b2 --beta2 0.99                                   # Adam's second moment shorter
    butterfly-diffusion evaluate --checkpoint runs/probe-base/s1400-ema0.995.pt --n_per_class 50

EMA profiles: `0.995` a constant decay; `wD` the warm-up decay min(D, (1 + s)/(10 + s)); `pG` the power-function EMA
of Karras et al. (2024), decay (1 - 1/(s + 1))^(G + 1), whose average covers a fixed share of the run. Each file
holds one EMA of the UNet and the classifier as trained (or, with --classifier_ema, also files with its EMAs).
"""
import argparse, ast, time
from pathlib import Path
import torch
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.unet import UNet, UNet_classifier
from butterfly_diffusion.blocks import zeroed_layers
from butterfly_diffusion.data import get_data, train_loader
from butterfly_diffusion.scheduler import NoiseSchedule
from butterfly_diffusion.checkpoint import CHECKPOINT_FORMAT, atomic_save
import butterfly_diffusion.training as training

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('name', help='the run folder is runs/probe-NAME')
p.add_argument('overrides', nargs='*', help='Config fields as field=value (Python literals)')
p.add_argument('--preset', default='demo')
p.add_argument('--snapshots', default=None, help='steps at which to write weights files (default: the last)')
p.add_argument('--ema', default='0.995', help='EMA profiles of the UNet, comma-separated: 0.995, w0.999, p3')
p.add_argument('--classifier_ema', default='', help='EMA profiles of the classifier (default: none, as trained)')
p.add_argument('--warmup', type=int, default=0, help='steps of linear learning-rate warm-up')
p.add_argument('--t_lognormal', default=None, help='MEAN,STD of ln sigma_t to draw training timesteps from')
p.add_argument('--classifier_share', type=float, default=1.0, help='share of each batch the classifier trains on')
p.add_argument('--torch_init', action='store_true', help="PyTorch's default initialisation for the layers `zero_init` zeroes")
p.add_argument('--beta2', type=float, default=None, help="Adam's second-moment decay for both networks (PyTorch's default: 0.999)")
a = p.parse_args()

def decay(profile: str, step: int) -> float:
    "The EMA decay of `profile` after `step` updates."
    if profile.startswith('p'): return (1 - 1 / (step + 1)) ** (float(profile[1:]) + 1)
    if profile.startswith('w'): return min(float(profile[1:]), (1 + step) / (10 + step))
    return float(profile)

def lognormal_t(mean: float, std: float):
    "A `noisy_batch` drawing t so that ln σ_t ~ N(mean, std), σ_t = √((1-ᾱ_t)/ᾱ_t), instead of t uniform."
    def noisy_batch(schedule, x0, generator=None):
        sigma = (1 / schedule.alpha_bar - 1).sqrt()                       # increasing in t
        z = torch.randn(x0.shape[0], generator=generator, device=x0.device)
        t = torch.searchsorted(sigma, (mean + std * z).exp()).clamp(0, len(sigma) - 1)
        eps = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)
        return schedule.q_sample(x0, t, eps), t, eps
    return noisy_batch

def classifier_on_share(share: float):
    "A `train_step` whose classifier trains on the first `share` of each noisy batch (the UNet, as ever, on all of it)."
    def train_step(s, schedule, x0, y, p_uncond=0.1):
        s.model_0.train(); s.model_1.train()
        xt, t, eps = training.noisy_batch(schedule, x0, s.generator)
        weight = training.min_snr_weight(schedule, t, cfg.min_snr_gamma) if cfg.min_snr_gamma else None
        k = max(1, round(len(y) * share))
        drop = torch.rand(y.shape, generator=s.generator) < p_uncond      # label dropout, as in joint_losses
        y0 = torch.where(drop, torch.full_like(y, s.model_0.num_classes), y) if s.model_0.num_classes else None
        err = (s.model_0(xt, t, y0) - eps).square().mean((1, 2, 3))
        loss_0 = (err if weight is None else weight * err).mean()
        loss_1 = torch.nn.functional.cross_entropy(s.model_1(xt[:k], t[:k]), y[:k])
        for opt, loss in ((s.opt_0, loss_0), (s.opt_1, loss_1)):
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        s.ema.update_parameters(s.model_0); s.step += 1
    return train_step

kw = {k: ast.literal_eval(v) for k, v in (s.split('=', 1) for s in a.overrides)}
cfg = get_config(a.preset, **kw)
steps = cfg.steps
snapshots = sorted({int(s) for s in a.snapshots.split(',')}) if a.snapshots else [steps]
if a.classifier_share < 1: training.train_step = classifier_on_share(a.classifier_share)   # what the loop below calls
if a.t_lognormal: training.noisy_batch = lognormal_t(*map(float, a.t_lognormal.split(',')))   # what train_step calls
seed_everything(cfg.seed)
model_0, model_1 = (m.to(memory_format=torch.channels_last) for m in (UNet.from_config(cfg), UNet_classifier.from_config(cfg)))
if a.torch_init:   # the preset before zero_init: every residual branch and both output layers drawn at random
    for m in [*zeroed_layers(model_0), *zeroed_layers(model_1)]: m.reset_parameters()
data = get_data(image_size=cfg.image_size, num_classes=cfg.num_classes, batch_size=cfg.batch_size,
                num_workers=cfg.num_workers, seed=cfg.seed, n_per_class=cfg.n_per_class)
s = training.make_state(model_0, model_1, cfg, data.classes, torch.device('cpu'))
if a.beta2 is not None:
    for group in (*s.opt_0.param_groups, *s.opt_1.param_groups): group['betas'] = (group['betas'][0], a.beta2)
schedule, out = NoiseSchedule.from_config(cfg), Path('runs') / f'probe-{a.name}'
copies = {(m, e): {k: v.detach().clone() for k, v in net.state_dict().items()}
          for m, net, profiles in ((0, model_0, a.ema), (1, model_1, a.classifier_ema)) for e in filter(None, profiles.split(','))}
it, t0 = training.batches(train_loader(data.train_ds, cfg.batch_size, cfg.num_workers), 0, cfg.seed), time.time()

def save(name: str, weights_0: dict, weights_1: dict):
    atomic_save(dict(format=CHECKPOINT_FORMAT, config=cfg.to_dict(), model_0_classes=model_0.num_classes, classes=s.classes, step=s.step,
                     history={}, model_0=weights_0, model_1=weights_1), out / f's{s.step}-{name}.pt')

while s.step < snapshots[-1]:
    x0, y = next(it)
    training.set_lr(s, training.lr_at(cfg, s.step, steps) * (min(1.0, (s.step + 1) / a.warmup) if a.warmup else 1.0))
    training.train_step(s, schedule, x0.to(memory_format=torch.channels_last), y)
    with torch.no_grad():
        for (m, e), copy in copies.items():
            now, d = (model_0, model_1)[m].state_dict(), decay(e, s.step - 1)
            for k, v in copy.items(): v.lerp_(now[k], 1 - d) if v.is_floating_point() else v.copy_(now[k])
    if s.step in snapshots:
        first = a.ema.split(',')[0]          # the UNet EMA that files of classifier EMAs pair with
        for (m, e), copy in copies.items():
            if m == 0: save(f'ema{e}', copy, model_1.state_dict())
            else: save(f'ema{first}-classifier_ema{e}', copies[0, first], copy)
        print(f'{a.name} ({kw}): step {s.step}, {time.time() - t0:.0f} s, weights in {out}/s{s.step}-*.pt', flush=True)
