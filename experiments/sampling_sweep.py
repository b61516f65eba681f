"""Measure one trained model under several sampling settings, against one reference: a row per setting.

Each setting is `LABEL:field=value,field=value` with the sampling settings of `Pipeline.settings` (scale, temperature,
t_max, steps, eta, cfg_scale, cfg_t_max); the checkpoint's own settings fill the rest (to guide
at every step, give cfg_t_max=1000). All rows start from the same noise and are judged by the same judge, so their
differences are the settings' alone:

    python experiments/sampling_sweep.py runs/photos-long --data ../shared/data/butterflies-75 --n_per_class 10 \\
        --out experiments/results/cfg-interval.csv  default:  'w<600:cfg_t_max=600'  'w<400:cfg_t_max=400'
"""
import argparse
from pathlib import Path
from butterfly_diffusion.evaluation import reference_for, sweep
from butterfly_diffusion.guidance import load_pipeline
from common import setting

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('checkpoint', help='a checkpoint, a run folder, or shipped weights')
p.add_argument('settings', nargs='+', help='LABEL:field=value,... (nothing after the colon: the checkpoint\'s own settings)')
p.add_argument('--data', default=None, help='the real dataset it was trained on (default: the built-in butterflies)')
p.add_argument('--n_per_class', type=int, default=10, help='samples per species and setting (decide with >= 500 in all)')
p.add_argument('--seed', type=int, default=123)
p.add_argument('--out', default=None, help='a CSV file for the table')
a = p.parse_args()

def row(text: str) -> dict:
    label, kw = setting(text)
    if none := [k for k, v in kw.items() if v is None]:   # Pipeline.settings reads None as "the checkpoint's": say so
        p.error(f'{text!r}: {", ".join(none)}=None would keep the checkpoint\'s setting; leave the field out for that, '
                'or give a value (cfg_t_max=1000: guide at every step).')
    return dict(method=label, **kw)

pipe = load_pipeline(a.checkpoint, 'cpu')
settings = [dict(method=s.pop('method'), **pipe.settings(**s)) for s in map(row, a.settings)]   # each row's settings in full
ref = reference_for(a.data, pipe.cfg.image_size, pipe.classes, a.n_per_class, pipe.cfg.seed, progress=False)
floor = ref.floor()
df = sweep(settings, pipe, ref, a.n_per_class, seed=a.seed, progress=False)
df['fid_x_floor'] = df.fid / floor['fid']
print(f'{len(pipe.classes) * a.n_per_class} samples a row, seed {a.seed}; judge {ref.judge_accuracy:.1%}; real images (floor): '
      f'{floor["accuracy"]:.1%}, FID {floor["fid"]:.2f}, precision {floor["precision"]:.2f}, recall {floor["recall"]:.2f}')
print(df[['method', 'accuracy', 'fid', 'fid_x_floor', 'precision', 'recall', 'seconds']].round(3).to_string(index=False))
if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); df.to_csv(a.out, index=False)
