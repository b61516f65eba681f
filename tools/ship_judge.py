"""Train the judge of the built-in butterflies for the `demo` preset's recipe and write it into the package.

    python tools/ship_judge.py            # 10 species, 32 px, seed 0: butterfly_diffusion/weights/judges/

`train_judge` then loads it instead of training one (about half a minute on two CPU cores), and every FID of the
demo's models is measured with the same judge on every machine. Run it again whenever the drawing of the built-in
butterflies or the judge's recipe changes: tests/test_weights.py fails until then.
"""
import argparse
from butterfly_diffusion.evaluation import judge_recipe, ship_judge

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--num_classes', type=int, default=10); p.add_argument('--image_size', type=int, default=32)
p.add_argument('--seed', type=int, default=0)
a = p.parse_args()
path = ship_judge(judge_recipe(a.num_classes, a.image_size, seed=a.seed), progress=True)
print(f'wrote {path}')
