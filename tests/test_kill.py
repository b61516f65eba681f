"""SIGKILL a tiny training run (a checkpoint every step) at random moments, saves included, ten times: after each
kill the checkpoint on disk is a whole one, equal in every tensor to a straight run's at that step; the next start
removes what the killed save left and continues; and the run ends exactly where the straight run ends."""
import multiprocessing, os, random, shutil, time
from pathlib import Path
import torch
import butterfly_diffusion.training as tr
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.unet import UNet, UNet_classifier

torch.set_num_threads(1)
CFG = get_config('tiny', dropout=0.1, checkpoint_every=1, log_every=1)   # dropout on: the global RNG matters too
STEPS, KILLS = 24, 10


def run(out: Path, recipe=None):
    "Start (or, if a checkpoint is there, resume) the run into `out`, as a user would after a crash."
    seed_everything(0)
    m0, m1 = UNet.from_config(CFG), UNet_classifier.from_config(CFG)
    tr.train_classifier_guidance(m0, m1, CFG.num_classes, cfg=CFG, out=out, steps=STEPS,
                                 resume=(out / 'last.pt').exists(), progress=False, recipe=recipe)


def assert_equal(a, b, where='checkpoint'):
    "Every tensor equal (torch.equal), every other value equal, except the wall-clock times in the history."
    if isinstance(a, torch.Tensor): assert torch.equal(a, b), where; return
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if k != 'seconds': assert_equal(a[k], b[k], f'{where}/{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)): assert_equal(u, v, f'{where}[{i}]')
    else: assert a == b or (a != a and b != b), (where, a, b)          # (NaN == NaN for the accuracy bins)


def straight_run(folder: Path) -> tuple[dict, float]:
    "The uninterrupted run, keeping a copy of its checkpoint at every step (a checkpoint every step); and how long it took."
    keep = lambda s: shutil.copy(folder / 'ck' / 'last.pt', folder / f'step-{s.step}.pt')   # after the step's save
    t0 = time.time()
    run(folder / 'ck', tr.Recipe(callbacks=(keep,)))
    return {k: tr.read_checkpoint(folder / f'step-{k}.pt') for k in range(1, STEPS + 1)}, time.time() - t0


def test_sigkill_at_random_moments_resumes_exactly(tmp_path):
    straight, seconds = straight_run(tmp_path)
    out, rng, fork = tmp_path / 'killed', random.Random(12), multiprocessing.get_context('fork')
    reached, kills = [], 0
    while kills < KILLS or (not reached and kills < 3 * KILLS):      # a loaded machine may need more tries to save once
        p = fork.Process(target=run, args=(out,))
        p.start()
        time.sleep(rng.uniform(0.02, 0.3) * seconds * (1 + kills // KILLS))   # anywhere: starting, stepping or saving
        kills += 1
        p.kill(); p.join()
        if (out / 'last.pt').exists():
            ckpt = tr.read_checkpoint(out)                              # always a whole checkpoint...
            assert_equal({k: v for k, v in ckpt.items() if k != 'history'},
                         {k: v for k, v in straight[ckpt['step']].items() if k != 'history'}, f'step {ckpt["step"]}')
            reached.append(ckpt['step'])                               # ...equal to the straight run's at its step
    run(out)                                                            # the last start runs to the end
    assert_equal(tr.read_checkpoint(out), tr.read_checkpoint(tmp_path / 'ck'))
    assert os.listdir(out) == ['last.pt']                              # no temporary file left behind
    assert reached and reached == sorted(reached) and reached[-1] < STEPS + 1, reached
