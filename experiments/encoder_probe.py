"""How well a trained UNet's own encoder features tell the species of a noisy photo: a linear probe beside the noisy classifier.

The premise of #32's "classifier reading the diffusion model's encoder features": the UNet's encoder (told the
"no class" label, so the species cannot leak in) is frozen, and a head like the classifier's (group norm in 8
groups, SiLU, average pool, linear) over its middle output, or a linear layer over every level pooled, is trained on
noisy training photos; both are then scored beside the run's own noisy classifier on the same noisy validation
photos, by noise level:

    python experiments/encoder_probe.py runs/photos --data ../shared/data/butterflies-75
"""
import argparse, time
import torch, torch.nn as nn, torch.nn.functional as F
from butterfly_diffusion.checkpoint import load_models, resolve_weights
from butterfly_diffusion.data import get_data
from butterfly_diffusion.scheduler import NoiseSchedule

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('checkpoint'); p.add_argument('--data', required=True)
p.add_argument('--epochs', type=int, default=40); p.add_argument('--seed', type=int, default=0)
a = p.parse_args()
torch.manual_seed(a.seed)
unet, classifier, cfg, classes = load_models(resolve_weights(a.checkpoint), 'cpu')   # a run, or shipped weights by name
unet.eval(); classifier.eval()
sched = NoiseSchedule.from_config(cfg)
data = get_data(a.data, image_size=cfg.image_size, seed=cfg.seed, flip=False, verify=False)
stack = lambda ds: (torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor([int(ds[i][1]) for i in range(len(ds))]))
xtr, ytr = stack(data.train_ds); xva, yva = stack(data.valid_ds)
print(f'{len(xtr)} training, {len(xva)} validation photos, {len(classes)} species')

@torch.no_grad()
def features(x, t):
    emb = unet.time_embed(t)
    if unet.num_classes: emb = emb + unet.label_embed(torch.full((len(x),), unet.num_classes))   # the "no class" token
    h, skips = unet.encoder(x, emb)
    return h, torch.cat([s.mean((2, 3)) for s in skips] + [h.mean((2, 3))], 1)   # middle map; every level pooled

def noisy(x, t, g=None):
    eps = torch.randn(x.shape, generator=g)
    return sched.q_sample(x, t, eps)

ch = unet.encoder.out_channels
with torch.no_grad(): d_all = features(xtr[:2], torch.zeros(2, dtype=torch.long))[1].shape[1]
heads = {'middle': nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, len(classes))),
         'every level': nn.Sequential(nn.LayerNorm(d_all), nn.Linear(d_all, len(classes)))}
opts = {k: torch.optim.Adam(h.parameters(), 1e-3) for k, h in heads.items()}
t0 = time.time()
for ep in range(a.epochs):
    perm = torch.randperm(len(xtr))
    for i in range(0, len(xtr), 128):
        idx = perm[i:i + 128]; x = torch.where(torch.rand(len(idx), 1, 1, 1) < .5, xtr[idx].flip(-1), xtr[idx])
        t = torch.randint(0, cfg.timesteps, (len(idx),))
        mid, pooled = features(noisy(x, t), t)
        for k, inp in (('middle', mid), ('every level', pooled)):
            loss = F.cross_entropy(heads[k](inp), ytr[idx]); opts[k].zero_grad(); loss.backward(); opts[k].step()
print(f'heads trained: {a.epochs} epochs in {time.time() - t0:.0f} s')

g = torch.Generator().manual_seed(123)
buckets = [(0, 200), (200, 400), (400, 600), (600, 1000)]
rows = {k: [] for k in ('noisy classifier', 'middle', 'every level')}
with torch.no_grad():
    for lo, hi in buckets:
        t = torch.randint(lo, hi, (len(xva),), generator=g); xt = noisy(xva, t, g)
        mid, pooled = features(xt, t)
        rows['noisy classifier'].append((classifier(xt, t).argmax(1) == yva).float().mean().item())
        rows['middle'].append((heads['middle'](mid).argmax(1) == yva).float().mean().item())
        rows['every level'].append((heads['every level'](pooled).argmax(1) == yva).float().mean().item())
print('accuracy on noisy validation photos, by t:', '  '.join(f'[{lo}, {hi})' for lo, hi in buckets))
for k, v in rows.items(): print(f'{k:>17}: ' + '  '.join(f'{x:8.1%}' for x in v))
