"""Training as a user meets it: interrupted runs lose nothing and resume exactly; bad input fails clearly."""
import os, signal
import pytest
import torch
import butterfly_diffusion.training as tr
from butterfly_diffusion.step import make_state, train_step
from butterfly_diffusion.core import get_config, seed_everything
from butterfly_diffusion.data import make_example_dataset
from butterfly_diffusion.unet import UNet, UNet_classifier

torch.set_num_threads(1)


def models(cfg, num_classes=None):
    seed_everything(0)
    return UNet.from_config(cfg), UNet_classifier(num_classes or cfg.num_classes, cfg.net)   # both from one NetConfig


def run(out, steps, cfg=None, resume=False, **kw):
    cfg = cfg or get_config('tiny', dropout=0.1)
    m0, m1 = models(cfg)
    return tr.train_classifier_guidance(m0, m1, cfg.num_classes, cfg=cfg, out=out, steps=steps, resume=resume,
                                        progress=False, **kw)


def assert_same_run(a, b):
    for k in ('unet', 'classifier', 'ema'):
        for name, w in a[k].items(): assert torch.equal(w, b[k][name]), (k, name)
    assert a['history']['step'] == b['history']['step']


def test_ctrl_c_finishes_the_step_saves_and_resumes_to_the_same_weights(tmp_path):
    straight = tr.read_checkpoint(run(tmp_path / 'a', 9).checkpoint)
    def ctrl_c_during_step_5(s, *a, **k):
        if s.step == 4: os.kill(os.getpid(), signal.SIGINT)   # arrives in the middle of step 5
        return train_step(s, *a, **k)
    with pytest.raises(KeyboardInterrupt, match='SIGINT'): run(tmp_path / 'b', 9, recipe=tr.Recipe(step=ctrl_c_during_step_5))
    assert os.listdir(tmp_path / 'b') == ['last.pt']            # saved, and no temp file left
    assert tr.read_checkpoint(tmp_path / 'b')['step'] == 5      # step 5 was finished, not torn
    assert_same_run(straight, tr.read_checkpoint(run(tmp_path / 'b', 9, resume=True).checkpoint))


def test_an_error_between_steps_saves_the_last_step_and_resumes_to_the_same_weights(tmp_path):
    straight = tr.read_checkpoint(run(tmp_path / 'a', 9).checkpoint)
    def unreadable_after_4(dl, start, seed):
        it = tr.batches(dl, start, seed)
        for _ in range(4): yield next(it)
        next(it)                                                # loading the 5th batch draws random flips...
        raise OSError('image file is truncated')                # ...then meets a corrupt file
    with pytest.raises(OSError, match='truncated'): run(tmp_path / 'b', 9, recipe=tr.Recipe(batches=unreadable_after_4))
    assert tr.read_checkpoint(tmp_path / 'b')['step'] == 4
    assert_same_run(straight, tr.read_checkpoint(run(tmp_path / 'b', 9, resume=True).checkpoint))


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run(tmp_path, 4)
    before = (tmp_path / 'last.pt').read_bytes()
    def broken_save(obj, f, *a, **k):
        f.write(b'half a checkpoint'); raise OSError('disk full')
    monkeypatch.setattr(torch, 'save', broken_save)
    s = make_state(*models(get_config('tiny')), get_config('tiny'), list('abcd'), torch.device('cpu'))
    with pytest.raises(OSError, match='disk full'): tr.save_checkpoint(s, tmp_path / 'last.pt')
    assert (tmp_path / 'last.pt').read_bytes() == before and os.listdir(tmp_path) == ['last.pt']


def test_checkpoints_load_with_weights_only(tmp_path):
    run(tmp_path, 2)
    ckpt = torch.load(tmp_path / 'last.pt', weights_only=True)   # no pickled code in a checkpoint
    assert ckpt['classes'] and ckpt['config']['name'] == 'tiny'


def test_resume_into_models_of_another_size_fails_clearly(tmp_path):
    run(tmp_path, 2)
    with pytest.raises(ValueError, match='different UNet'):
        run(tmp_path, 4, cfg=get_config('tiny', base_filters=8), resume=True)


def test_missing_checkpoint_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match='Train one first'): run(tmp_path, 4, resume=True)


def test_real_dataset_with_another_number_of_species_fails_clearly(tmp_path):
    root = make_example_dataset(tmp_path / 'data', layout='folders', num_classes=3, n_per_class=4)
    cfg = get_config('tiny')
    m0, m1 = models(cfg)
    with pytest.raises(ValueError, match='num_classes'):
        tr.train_classifier_guidance(m0, m1, 4, data=root, cfg=cfg, out=None, steps=2, progress=False)


def test_trains_on_a_real_dataset_layout(tmp_path):
    root = make_example_dataset(tmp_path / 'data', layout='csv', num_classes=4, n_per_class=6)
    cfg = get_config('tiny', batch_size=4)
    m0, m1 = models(cfg)
    r = tr.train_classifier_guidance(m0, m1, 4, data=root, cfg=cfg, out=tmp_path / 'ck', steps=3, progress=False)
    assert tr.read_checkpoint(r.checkpoint)['classes'] == r.classes and len(r.classes) == 4
