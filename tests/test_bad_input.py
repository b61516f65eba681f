"""Every row of issue 12's table of hostile but realistic input, as a user meets it (tiny preset): each error names
the problem and the fix, and leaves everything on disk as it was."""
import hashlib, os, pickle, shutil, warnings
from pathlib import Path
import pytest
import torch
from PIL import Image
import butterfly_diffusion.training as tr
from butterfly_diffusion.step import train_step
from butterfly_diffusion.cli import main
from butterfly_diffusion.core import Config, NetConfig, get_config, get_device, seed_everything
from butterfly_diffusion.data import get_data, list_images, make_example_dataset
from butterfly_diffusion.synthetic import draw_butterfly
from butterfly_diffusion.guidance import generate_and_save_images
from butterfly_diffusion.unet import UNet, UNet_classifier

torch.set_num_threads(1)


def snapshot(root: Path) -> dict:
    "Every file under `root` with its size, modification time and content hash: what 'nothing changed' compares."
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(Path(root).rglob('*')) if p.is_file()}


def cli(capsys, *args):
    "Run the console script's `main` in-process; return (exit status, stdout, stderr)."
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def user_error(capsys, *args) -> str:
    "Run the CLI, expect a user error: exit 2, one line on stderr, no traceback; return that line."
    rc, _, err = cli(capsys, *args)
    lines = [l for l in err.splitlines() if 'error:' in l]
    assert rc == 2 and len(lines) == 1 and 'Traceback' not in err, (rc, err)
    return lines[0]


def models(cfg):
    seed_everything(0)
    return UNet.from_config(cfg), UNet_classifier.from_config(cfg)


def train(out, steps=2, cfg=None, data=None, **kw):
    cfg = cfg or get_config('tiny')
    return tr.train_classifier_guidance(*models(cfg), cfg.num_classes, cfg=cfg, data=data, out=out, steps=steps,
                                        progress=False, **kw)


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    "A tiny run of 2 steps on the built-in butterflies, made once; tests copy it."
    ck = tmp_path_factory.mktemp('base') / 'ck'
    train(ck)
    return ck


@pytest.fixture
def ck(base, tmp_path):
    shutil.copytree(base, tmp_path / 'ck')
    return tmp_path / 'ck'


# ---- train --out ck twice without --resume ----------------------------------------------------------------------

HOLDS_A_RUN = 'already holds a training run. Continue it with resume=True (--resume), start again over it with overwrite=True (--overwrite)'

@pytest.mark.parametrize('again,problem', [([], HOLDS_A_RUN), (['--steps', 1], HOLDS_A_RUN),
                                           (['--steps', 6, '--batch_size', 4], HOLDS_A_RUN),
                                           (['--steps', -5], '--steps -5: a count must be a whole number >= 1')])
def test_training_twice_into_one_folder_needs_resume_or_overwrite(capsys, ck, again, problem):
    before = snapshot(ck)
    line = user_error(capsys, 'train', '--preset', 'tiny', '--out', ck, '--device', 'cpu', *again)
    assert problem in line and snapshot(ck) == before


def test_overwrite_starts_a_new_run_and_resume_continues(capsys, ck):
    assert cli(capsys, 'train', '--preset', 'tiny', '--out', ck, '--device', 'cpu', '--steps', 3, '--overwrite')[0] == 0
    assert tr.read_checkpoint(ck)['history']['step'][0] == 3         # a fresh run: its first log is at its end
    assert cli(capsys, 'train', '--preset', 'tiny', '--out', ck, '--device', 'cpu', '--steps', 4, '--resume')[0] == 0
    assert tr.read_checkpoint(ck)['step'] == 4


def test_resume_and_overwrite_together_is_an_error(capsys, ck):
    before = snapshot(ck)
    line = user_error(capsys, 'train', '--preset', 'tiny', '--out', ck, '--resume', '--overwrite')
    assert 'exclude each other' in line and snapshot(ck) == before


# ---- --out under a file / not writable: found before any work --------------------------------------------------

@pytest.mark.parametrize('command', ['train', 'sample', 'demo'])
def test_output_folder_under_a_file(capsys, ck, tmp_path, command):
    (tmp_path / 'file').write_text('x')
    before = snapshot(tmp_path)
    args = {'train': ['--preset', 'tiny', '--out', tmp_path / 'file' / 'ck'],
            'sample': ['--checkpoint', ck, '--out', tmp_path / 'file' / 's'],
            'demo': ['--preset', 'tiny', '--out', ck, '--samples', tmp_path / 'file' / 's']}[command]
    line = user_error(capsys, command, *args)
    assert f'{tmp_path / "file"} is a file, not a folder' in line and 'Choose another folder' in line
    assert snapshot(tmp_path) == before


def test_output_folder_not_writable(capsys, tmp_path, monkeypatch):
    locked = tmp_path / 'locked'; locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: False if Path(p) == locked else real(p, mode))   # root writes anywhere
    line = user_error(capsys, 'train', '--preset', 'tiny', '--out', locked / 'ck')
    assert 'is not writable' in line and 'Choose a folder you can write to' in line
    assert os.listdir(locked) == []


# ---- resume with another dataset, class list, noise schedule, batch size or seed -------------------------------

@pytest.mark.parametrize('change,shown', [
    (dict(n_per_class=30), 'images: 128 in the checkpoint, 120 now'),
    (dict(timesteps=500), 'timesteps: 1000 in the checkpoint, 500 now'),
    (dict(beta_end=0.03), 'beta_end: 0.02 in the checkpoint, 0.03 now'),
    (dict(batch_size=4), 'batch_size: 8 in the checkpoint, 4 now'),
    (dict(seed=1), 'seed: 0 in the checkpoint, 1 now'),
    (dict(lr=2e-3), 'lr: 0.001 in the checkpoint, 0.002 now'),
    (dict(lr_decay_to=0.1), 'lr_decay_to: 1.0 in the checkpoint, 0.1 now')])
def test_resume_of_another_run_lists_the_differences(ck, change, shown):
    before = snapshot(ck)
    with pytest.raises(ValueError) as e: train(ck, 4, cfg=get_config('tiny', **change), resume=True)
    assert shown in str(e.value) and 'start a new run' in str(e.value) and 'Only the budget (steps) and the folder of the data' in str(e.value)
    assert snapshot(ck) == before


@pytest.mark.parametrize('other', ['more images', 'other species', 'other files'])
def test_resume_on_another_real_dataset(tmp_path, other):
    cfg = get_config('tiny', num_classes=3, batch_size=4)
    data = make_example_dataset(tmp_path / 'd', 'folders', num_classes=3, n_per_class=5)
    train(tmp_path / 'ck', cfg=cfg, data=data)
    before = snapshot(tmp_path)
    if other == 'more images': data2 = make_example_dataset(tmp_path / 'd2', 'folders', num_classes=3, n_per_class=6)
    elif other == 'other species': data2 = make_example_dataset(tmp_path / 'd2', 'folders', num_classes=3, n_per_class=5, seed=1)
    else:
        data2 = Path(shutil.copytree(data, tmp_path / 'd2'))
        f = sorted(data2.rglob('*.png'))[0]; f.rename(f.with_name('renamed.png'))
    before = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith('d2')}
    with pytest.raises(ValueError) as e: train(tmp_path / 'ck', 4, cfg=cfg, data=data2, resume=True)
    shown = {'more images': 'images: 12 in the checkpoint, 15 now', 'other species': 'classes: 3 classes',
             'other files': 'files_sha256'}[other]
    assert shown in str(e.value) and 'Cannot resume' in str(e.value)
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith('d2')} == before


def test_a_longer_budget_may_change_and_says_what_it_does_to_a_decaying_rate(tmp_path):
    cfg = get_config('tiny', lr_decay_to=0.1)
    train(tmp_path / 'ck', 2, cfg=cfg)
    with pytest.warns(UserWarning, match='cosine .* now spans 4 steps'): train(tmp_path / 'ck', 4, cfg=cfg, resume=True)
    assert tr.read_checkpoint(tmp_path / 'ck')['run']['steps'] == 4


def test_resume_past_the_checkpoint_is_an_error(ck):
    with pytest.raises(ValueError, match='at step 2, past steps=1: ask for steps >= 2'): train(ck, 1, resume=True)


# ---- data that means what the user thinks -----------------------------------------------------------------------

def test_a_folder_with_one_csv_of_any_name_is_the_csv_layout(tmp_path):
    root = make_example_dataset(tmp_path / 'd', 'csv', num_classes=3, n_per_class=2)
    (root / 'Training_set.csv').rename(root / 'labels.csv')
    files, labels = list_images(root)
    assert len(set(labels)) == 3 and 'train' not in labels and all(f.parent.name == 'train' for f in files)


def csv_dataset(tmp_path, rows, encoding='utf-8'):
    (tmp_path / 'train').mkdir(parents=True)
    for name, _ in rows: draw_butterfly(0, 0, 16).save(tmp_path / 'train' / name)
    text = 'filename,label\n' + ''.join(f'{n},{l}\n' for n, l in rows)
    (tmp_path / 'labels.csv').write_bytes(text.encode(encoding))
    return tmp_path


@pytest.mark.parametrize('rows,problem,fix', [
    ([('a.png', 'Monarch'), ('b.png', '   '), ('c.png', 'Admiral'), ('d.png', ' ')], 'line(s) [3, 5] lack a filename or a label (or have only spaces)', 'Fill them in or delete them'),
    ([('a.png', 'Monarch'), ('b.png', 'monarch '), ('c.png', 'Admiral')], "'Monarch' and 'monarch'", 'Spell each species one way'),
    ([('a.png', 'Red admiral'), ('b.png', 'red  Admiral'), ('c.png', 'Monarch')], "'Red admiral' and 'red  Admiral'", 'Spell each species one way'),
    ([('a.png', 'Monarch'), ('b.png', 'Monarch')], "holds 1 species ('Monarch'); guidance needs at least 2", 'Add images of other species'),
    ([('a.png', 'Glasswing'), ('b.png', 'Mariposa Monarca'), ('c.png', 'Pequeño')], 'is not UTF-8 text', 'save it as UTF-8'),
])
def test_labels_that_would_mislead(capsys, tmp_path, rows, problem, fix):
    root = csv_dataset(tmp_path / 'd', rows, encoding='cp1252' if 'UTF-8' in problem else 'utf-8')
    before = snapshot(tmp_path)
    line = user_error(capsys, 'train', '--preset', 'tiny', '--data', root, '--out', tmp_path / 'ck')
    assert problem in line and fix in line and 'labels.csv' in line
    assert snapshot(tmp_path) == before


def test_unreadable_images_are_all_listed_before_training(capsys, tmp_path):
    root = make_example_dataset(tmp_path / 'd', 'folders', num_classes=2, n_per_class=4)
    victims = sorted(root.rglob('*.jpg'))[:2] + sorted(root.rglob('*.png'))[:1]
    for v in victims: v.write_bytes(v.read_bytes()[:len(v.read_bytes()) // 3])
    before = snapshot(tmp_path)
    line = user_error(capsys, 'train', '--preset', 'tiny', '--data', root, '--out', tmp_path / 'ck', '--steps', 2)
    assert '3 of the 8 images cannot be read' in line and all(str(v) in line for v in victims)
    assert 'Replace or delete them' in line and snapshot(tmp_path) == before      # nothing trained, nothing saved


def test_an_image_over_pils_limit_says_so(tmp_path, monkeypatch):
    root = make_example_dataset(tmp_path / 'd', 'folders', num_classes=2, n_per_class=2)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 400)                # the example images are 1350+ pixels
    with pytest.raises(ValueError) as e: get_data(root)
    assert 'too large for PIL' in str(e.value) and 'raise PIL.Image.MAX_IMAGE_PIXELS' in str(e.value)
    assert 'corrupt' not in str(e.value).split('cannot be read')[1].split(':', 1)[1].split('Replace')[0]


# ---- numbers that make sense -------------------------------------------------------------------------------------

@pytest.mark.parametrize('flag,value,problem', [('--scale', 'nan', '--scale nan (must be a finite number'),
                                                ('--scale', 'inf', '--scale inf (must be a finite number'),
                                                ('--scale', '1e30', '--scale 1e+30 (must be a finite number, |s| <= 1000)'),
                                                ('--temperature', 'inf', '--temperature inf (must be a number in [0.01, 1000]'),
                                                ('--temperature', '0', '--temperature 0.0 (must be a number in [0.01, 1000]'),
                                                ('--temperature', '1e-300', '--temperature 1e-300 (must be a number in [0.01, 1000]')])
def test_absurd_guidance_is_refused_before_sampling(capsys, ck, tmp_path, flag, value, problem):
    before = snapshot(tmp_path)
    line = user_error(capsys, 'sample', '--checkpoint', ck, '--out', tmp_path / 's', flag, value)
    assert problem in line and 'Sampling settings that make no sense' in line and snapshot(tmp_path) == before


def test_absurd_guidance_in_the_api(ck, tmp_path):
    for kw in (dict(scale=float('nan')), dict(temperature=float('inf'))):
        with pytest.raises(ValueError, match='Sampling settings that make no sense'):
            generate_and_save_images(2, display=False, checkpoint=ck, out=tmp_path / 's', steps=2, **kw)
    assert not (tmp_path / 's').exists()


def test_no_image_with_a_non_finite_pixel_is_written(ck, tmp_path):
    c = tr.read_checkpoint(ck)
    for k in c['ema']:
        if c['ema'][k].is_floating_point(): c['ema'][k].fill_(float('nan'))
    torch.save(c, tmp_path / 'nan.pt')                                 # as a broken training run could have left it
    with pytest.raises(FloatingPointError, match='NaN or infinite pixels, so nothing was written'):
        generate_and_save_images(2, display=False, checkpoint=tmp_path / 'nan.pt', out=tmp_path / 's', steps=2)
    assert not (tmp_path / 's').exists()


@pytest.mark.parametrize('lr', [float('inf'), float('nan'), 1e30, 0.0, -1e-3])
def test_absurd_learning_rate(ck, lr):
    with pytest.raises(ValueError, match=r"Config 'tiny': lr=.* \(must be a finite number in \(0, 1\]"):
        train(ck.parent / 'new', cfg=get_config('tiny', lr=lr))
    assert not (ck.parent / 'new').exists()


def test_a_loss_that_turns_non_finite_stops_training_and_keeps_the_last_finite_checkpoint(tmp_path):
    def diverge_at_step_3(s, *a, **k):
        if s.step == 2:
            with torch.no_grad(): next(s.unet.parameters()).fill_(float('nan'))
        return train_step(s, *a, **k)
    cfg = get_config('tiny', checkpoint_every=1, log_every=1)
    with pytest.raises(tr.NonFiniteError) as e: train(tmp_path, 6, cfg=cfg, recipe=tr.Recipe(step=diverge_at_step_3))
    assert 'between steps 3 and 3' in str(e.value) and 'Lower the learning rate' in str(e.value)
    c = tr.read_checkpoint(tmp_path)
    assert c['step'] == 2 and all(torch.isfinite(w).all() for w in c['unet'].values() if w.is_floating_point())
    assert os.listdir(tmp_path) == ['last.pt']


@pytest.mark.parametrize('args,problem', [
    (['train', '--steps', 0], '--steps 0'), (['train', '--steps', -5], '--steps -5'),
    (['train', '--batch_size', 0], '--batch_size 0'), (['train', '--num_classes', 0], '--num_classes 0'),
    (['train', '--num_classes', 1], 'num_classes=1 (must be a whole number >= 2'),
    (['sample', '--steps', 0], '--steps 0'), (['sample', '--n_per_class', 0], '--n_per_class 0'),
    (['sample', '--n_per_class', -1], '--n_per_class -1'), (['sample', '--num_classes', 0], '--num_classes 0'),
    (['sample', '--num_classes', -3], '--num_classes -3'), (['demo', '--steps', 0], '--steps 0'),
    (['demo', '--judged', 0], '--judged 0')])
def test_zero_and_negative_counts_are_errors_not_the_presets_value(capsys, ck, tmp_path, args, problem):
    where = {'train': ['--preset', 'tiny', '--out', tmp_path / 'new'], 'sample': ['--checkpoint', ck, '--out', tmp_path / 's'],
             'demo': ['--preset', 'tiny', '--out', tmp_path / 'new', '--samples', tmp_path / 's']}[args[0]]
    before = snapshot(tmp_path)
    line = user_error(capsys, *args, *where)
    assert problem in line and ('leave it out for the default' in line or 'Fix these fields' in line)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize('NUM_CLASSES,n_per_class', [(0, None), (-2, None), (2, 0), (2, -1)])
def test_zero_and_negative_counts_in_the_api(ck, tmp_path, NUM_CLASSES, n_per_class):
    with pytest.raises(ValueError, match='a count must be a whole number >= 1'):
        generate_and_save_images(NUM_CLASSES, display=False, checkpoint=ck, n_per_class=n_per_class, out=tmp_path / 's')
    assert not (tmp_path / 's').exists()


@pytest.mark.parametrize('field,value', [('image_size', 0), ('timesteps', 0), ('ema_decay', 1.5), ('checkpoint_every', 0),
                                         ('log_every', 0), ('batch_size', -1), ('num_classes', 0), ('lr', float('nan')),
                                         ('dropout', 1.0), ('sample_eta', float('inf')), ('num_workers', -1)])
def test_config_checks_every_range(field, value):
    made = NetConfig if field in NetConfig.__dataclass_fields__ else Config   # the network's fields are its own
    with pytest.raises(ValueError, match=rf"{field}={value!r} \(must be .*\)\. Fix these fields"): made(**{field: value})
    with pytest.raises(ValueError, match=rf'{field}='): get_config('tiny', **{field: value})


def test_a_device_that_is_not_there(capsys, tmp_path):
    asked = 'cuda:99' if torch.cuda.is_available() else 'cuda'
    with pytest.raises(ValueError) as e: get_device(asked)
    assert f"Device '{asked}' is not available here" in str(e.value) and 'the devices here are: ' in str(e.value)
    assert 'cpu' in str(e.value).split('the devices here are: ')[1]
    line = user_error(capsys, 'train', '--preset', 'tiny', '--device', asked, '--out', tmp_path / 'ck')
    assert 'is not available here' in line and '--device cpu' in line and os.listdir(tmp_path) == []


# ---- checkpoints that are not what they seem --------------------------------------------------------------------

@pytest.mark.parametrize('kind,problem', [('truncated', 'is truncated, or not a PyTorch checkpoint'), ('empty', 'is empty (0 bytes)'),
                                          ('foreign pickle', 'holds objects other than tensors'),
                                          ('foreign tensors', 'is not a butterfly_diffusion checkpoint')])
@pytest.mark.parametrize('command', ['sample', 'train --resume'])
def test_a_broken_or_foreign_checkpoint_names_its_path(capsys, ck, kind, problem, command):
    last = ck / 'last.pt'
    content = {'truncated': last.read_bytes()[:1000], 'empty': b'', 'foreign pickle': pickle.dumps({'w': {1, 2}})}
    if kind in content: last.write_bytes(content[kind])
    else: torch.save({'state_dict': {'w': torch.zeros(2)}}, last)
    before = snapshot(ck)
    args = (['sample', '--checkpoint', ck, '--out', ck / 's'] if command == 'sample'
            else ['train', '--preset', 'tiny', '--out', ck, '--resume', '--steps', 4])
    line = user_error(capsys, *args)
    assert str(last) in line and problem in line and 'weights_only' not in line
    assert snapshot(ck) == before


# ---- leftovers of a killed save -----------------------------------------------------------------------------------

def test_stale_temporary_files_are_removed_at_the_next_start(ck):
    (ck / 'last.pt.4242.0badcafe.tmp').write_bytes(b'half a checkpoint')
    train(ck, 3, resume=True)
    assert os.listdir(ck) == ['last.pt']


def test_checkpoints_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try: train(tmp_path / 'ck', 1)
    finally: os.umask(old)
    assert (tmp_path / 'ck' / 'last.pt').stat().st_mode & 0o777 == 0o640


# ---- a CLI that speaks to people ----------------------------------------------------------------------------------

def test_user_errors_are_one_line_and_debug_shows_the_traceback(capsys, tmp_path):
    line = user_error(capsys, 'sample', '--checkpoint', tmp_path / 'none')
    assert 'No checkpoint (last.pt) found' in line and 'Train one first' in line
    rc, _, err = cli(capsys, 'sample', '--checkpoint', tmp_path / 'none', '--debug')
    assert rc == 2 and 'Traceback' in err and 'FileNotFoundError' in err


def test_sample_says_which_checkpoint_and_defaults_to_the_species_it_has(capsys, ck, tmp_path):
    rc, out, err = cli(capsys, 'sample', '--checkpoint', ck.parent, '--out', tmp_path / 's', '--steps', 2, '--n_per_class', 1)
    assert rc == 0, err
    assert f'sampling from {ck / "last.pt"}' in out and '4 species' in out     # tiny has 4 species, fewer than 10
    assert len(list((tmp_path / 's').glob('*.png'))) == 5                   # four grids and the overview


@pytest.mark.parametrize('args,problem', [(['--n_per_class', 0], '--n_per_class 0'), (['--scale', 'inf'], '--scale inf (must be'),
                                          (['--t_max', -3], '--t_max -3 (must be a whole number >= 0)'),
                                          (['--seed', -1], '--seed -1 (must be a whole number in [0, 2**63))'),
                                          (['--seed', 2 ** 64], f'--seed {2 ** 64} (must be'),
                                          (['--n_per_class', 10 ** 9], 'GiB is free here. Give a smaller --n_per_class')])
def test_evaluate_checks_its_numbers_before_any_work(capsys, ck, tmp_path, args, problem):
    before = snapshot(tmp_path)
    line = user_error(capsys, 'evaluate', '--checkpoint', ck, '--out', tmp_path / 'e', *args)
    assert problem in line and snapshot(tmp_path) == before


@pytest.mark.parametrize('args,problem', [(['--seed', -1], '--seed -1 (must be a whole number in [0, 2**63))'),
                                          (['--n_per_class', 10 ** 9], 'GiB is free here. Ask for fewer samples per species (--n_per_class)')])
def test_sample_refuses_a_seed_out_of_range_and_more_samples_than_memory_holds(capsys, ck, tmp_path, args, problem):
    before = snapshot(tmp_path)
    line = user_error(capsys, 'sample', '--checkpoint', ck, '--out', tmp_path / 's', '--steps', 2, *args)
    assert problem in line and snapshot(tmp_path) == before
