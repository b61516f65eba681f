"""Train one candidate of the demo recipe: the `demo` preset (or --preset) with Config overrides, into runs/NAME.

The measurement behind the recipe table in nbs/09_evaluation.ipynb: each candidate changes one thing, trains with
the preset's budget, and is then measured by `butterfly-diffusion evaluate` on 500 samples per setting:

    python experiments/train_candidate.py base                                   # the preset as it is
    python experiments/train_candidate.py snr5 min_snr_gamma=5.0                 # one change
    butterfly-diffusion evaluate --checkpoint runs/snr5 --n_per_class 50 --out runs/snr5-eval
    python experiments/train_candidate.py wide --preset photos --data ../shared/data/butterflies-75 base_filters=24
"""
import argparse, ast, time
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.unet import UNet, UNet_classifier
from butterfly_diffusion.training import train_classifier_guidance

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('name', help='the run folder under runs/')
p.add_argument('overrides', nargs='*', help='Config fields as field=value (Python literals)')
p.add_argument('--preset', default='demo')
p.add_argument('--data', default=None, help='a real dataset (as `train --data`); default: the built-in butterflies')
a = p.parse_intermixed_args()   # overrides may come after the options
kw = {k: ast.literal_eval(v) for k, v in (s.split('=', 1) for s in a.overrides)}
cfg = get_config(a.preset, **kw)
seed_everything(cfg.seed)
t0 = time.time()
r = train_classifier_guidance(UNet.from_config(cfg), UNet_classifier.from_config(cfg), cfg.num_classes, cfg=cfg, data=a.data,
                              out=f'runs/{a.name}', progress=False)
h = r.history
print(f"{a.name} ({kw}): {h['step'][-1]} steps in {time.time() - t0:.0f} s, diffusion MSE {h['mse'][-1]:.4f}, "
      f"noisy classifier {sum(h['valid_acc_by_t'][:2]) / 2:.0%} on the validation split at t < 200")
