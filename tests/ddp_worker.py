"""Run by tests/test_distributed.py: a few steps of the tiny preset in float64, either as one rank of a torchrun job
(`ranks`: each rank takes half of every batch) or alone (`alone`: the whole batch, its halves noised from the same two
per-rank streams the ranks use), so the two can be compared weight by weight.

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py ranks OUT     # vs
    python tests/ddp_worker.py alone OUT
"""
import sys
import torch
import butterfly_diffusion.training as tr
from butterfly_diffusion.step import noisy_batch
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.data import get_data, ButterflyData
from butterfly_diffusion.core import rank_seed
from butterfly_diffusion.unet import UNet, UNet_classifier

torch.set_num_threads(1)
CFG = get_config('tiny', batch_size=8, min_snr_gamma=5.0, log_every=2, checkpoint_every=100)
STEPS = 6


def float64_data() -> ButterflyData:
    "The tiny preset's built-in butterflies without random flips, as float64 tensors (no validation split)."
    d = get_data(image_size=CFG.image_size, num_classes=CFG.num_classes, n_per_class=CFG.n_per_class, batch_size=8,
                 num_workers=0, val_fraction=0.0, flip=False)
    x, y = zip(*(d.train_ds[i] for i in range(len(d.train_ds))))
    ds = torch.utils.data.TensorDataset(torch.stack(x).double(), torch.tensor(y))
    return ButterflyData(ds, None, None, None, d.classes, d.class_to_idx)


def alone_with_rank_noise() -> tr.Recipe:
    "A recipe whose single process draws each half of its batch's t and noise from rank 0's and rank 1's streams, as two ranks do."
    g1 = torch.Generator().manual_seed(rank_seed(CFG.seed, 1))
    def two_streams(schedule, x0, generator=None):
        h = len(x0) // 2
        halves = noisy_batch(schedule, x0[:h], generator), noisy_batch(schedule, x0[h:], g1)
        return tuple(torch.cat(p) for p in zip(*halves))
    return tr.Recipe(noisy_batch=two_streams)


if __name__ == '__main__':
    mode, out = sys.argv[1:3]
    seed_everything(0)
    m0, m1 = UNet.from_config(CFG).double(), UNet_classifier.from_config(CFG).double()
    tr.train_classifier_guidance(m0, m1, CFG.num_classes, data=float64_data(), cfg=CFG, steps=STEPS, out=out,
                                 progress=False, recipe=alone_with_rank_noise() if mode == 'alone' else None)
