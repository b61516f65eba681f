#!/usr/bin/env python3
"""Make a dataset of the first N species (sorted names) of a real dataset, to train and measure on fewer species.

    python tools/species_subset.py ../shared/data/butterflies-75 first10 --species 10
    butterfly-diffusion train --preset demo --data first10 --out runs/first10
    butterfly-diffusion evaluate --checkpoint runs/first10 --data first10 --n_per_class 50

Reads either layout `--data` takes (the seed's CSV, or class folders) and writes the seed's layout:
DEST/Training_set.csv (filename,label, in the source's order) and DEST/train/ holding symbolic links to the photos,
which stay where they are.
"""
import argparse, csv, os
from pathlib import Path
from butterfly_diffusion.data import list_images

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('source', help='a real dataset: Training_set.csv (or its folder) or class folders')
p.add_argument('dest', help='the folder to create')
p.add_argument('--species', type=int, required=True, help='how many species, counted in sorted order')
a = p.parse_args()

files, labels = list_images(a.source)
names = sorted(set(labels))
if not 1 <= a.species <= len(names):
    raise SystemExit(f'--species must be 1 to {len(names)}: {a.source} holds {len(names)} species.')
dest = Path(a.dest)
if dest.exists(): raise SystemExit(f'{dest} exists: pick a new folder (or remove it first).')
keep = set(names[:a.species])
rows = [(f, y) for f, y in zip(files, labels) if y in keep]
unique = len({f.name for f, _ in rows}) == len(rows)   # class folders may reuse a file name: then number the links
links = [f.name if unique else f'{i}-{f.name}' for i, (f, _) in enumerate(rows)]
(dest / 'train').mkdir(parents=True)
for (f, _), name in zip(rows, links): os.symlink(f.resolve(), dest / 'train' / name)
with open(dest / 'Training_set.csv', 'w', newline='') as out:
    csv.writer(out, lineterminator='\n').writerows([('filename', 'label'), *zip(links, (y for _, y in rows))])
print(f'{dest}: {len(rows)} photos of {a.species} species ({", ".join(names[:a.species])})')
