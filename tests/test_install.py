"""The package as a user gets it: a wheel built from this checkout without a warning works without nbdev and ships its console script."""
import shutil, subprocess, sys, zipfile
from pathlib import Path
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(tmp_path: Path) -> Path:
    "A wheel built from a copy of this checkout: tests building at once would otherwise share (and race in) ./build."
    src = tmp_path / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.venv', '.git', 'build', 'dist', 'runs', 'docs', 'checkpoints',
                                                             '*.egg-info', '__pycache__', 'conditional-sampling', 'nbs'))
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', tmp_path, src],
                       check=True, capture_output=True, text=True)
    assert 'warning' not in (r.stdout + r.stderr).lower(), f'building the package warns:\n{r.stdout}{r.stderr}'[-3000:]
    wheel, = tmp_path.glob('butterfly_diffusion-*.whl')
    return wheel


def test_wheel_installs_and_imports_without_nbdev(tmp_path):
    pytest.importorskip('setuptools', reason='builds without isolation, with the environment\'s setuptools')
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert 'butterfly_diffusion/guidance.py' in names and not any(n.startswith('nbs/') for n in names)
    entry = next(n for n in names if n.endswith('entry_points.txt'))
    assert 'butterfly-diffusion = butterfly_diffusion.__main__:run' in zipfile.ZipFile(wheel).read(entry).decode()
    site = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', site, wheel], check=True)
    code = ("import sys; sys.modules['nbdev'] = None; sys.path.insert(0, sys.argv[1]); "   # nbdev cannot be imported
            "import butterfly_diffusion as bd; assert bd.__file__.startswith(sys.argv[1]), bd.__file__; "
            "m = bd.UNet_classifier(num_classes=3, image_size=16, base_filters=8, channel_mults=(1, 2), "
            "num_res_blocks=1, attn_resolutions=(8,), num_heads=2); import torch; "
            "print(m(torch.zeros(2, 3, 16, 16), torch.tensor([0, 999])).shape)")
    out = subprocess.run([sys.executable, '-c', code, site], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == 'torch.Size([2, 3])'


def test_the_wheel_draws_from_its_shipped_weights_offline(tmp_path):
    """After `pip install`, with no checkpoint anywhere: the seed's call draws from the shipped demo weights, and every
    shipped model samples. Two pictures a species instead of the default eight: the same path (the shipped base and
    upsampler, 128-px grids, the overview) at a quarter of the time."""
    pytest.importorskip('setuptools', reason='builds without isolation, with the environment\'s setuptools')
    shipped = sorted(p.stem for p in (ROOT / 'butterfly_diffusion' / 'weights').glob('*.pt'))
    if 'demo' not in shipped: pytest.skip('no demo weights in this checkout')
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for name in shipped: assert {f'butterfly_diffusion/weights/{name}.pt', f'butterfly_diffusion/weights/{name}.md'} <= set(names)
    print(f'wheel: {wheel.stat().st_size / 1e6:.1f} MB')
    site, work = tmp_path / 'site', tmp_path / 'work'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', site, wheel], check=True)
    work.mkdir()
    code = ("import sys, time; sys.modules['nbdev'] = None; sys.path.insert(0, sys.argv[1]); import matplotlib; "
            "matplotlib.use('Agg'); import butterfly_diffusion as bd; t0 = time.time(); "
            "r = bd.generate_and_save_images(NUM_CLASSES=10, display=False, progress=False, n_per_class=2); "
            "print('seconds', round(time.time() - t0, 1)); print('grids', len(r['paths']), r['overview'].exists()); "
            "up = lambda n: n.endswith('-upsampler'); "      # a second stage samples through its base model
            "[print('sampled', n, tuple((bd.load_pipeline(n[:-10], upsampler=n) if up(n) else bd.load_pipeline(n))"
            "(range(4), steps=10).shape)) for n in bd.shipped_weights()]")
    out = subprocess.run([sys.executable, '-c', code, site], capture_output=True, text=True, cwd=work)
    assert out.returncode == 0, out.stderr[-3000:]
    print(out.stdout)
    assert "using the 'demo' weights that ship with the package" in out.stdout and 'grids 10 True' in out.stdout
    grids = sorted((work / 'conditional-sampling').glob('*.png'))
    assert len(grids) == 11                                                          # 10 species and the overview
    assert 'demo-upsampler' in shipped and Image.open(grids[0]).size[1] >= 128, Image.open(grids[0]).size   # 128 px
    for name in shipped: assert f'sampled {name} (4, 3, {128 if name.endswith("-upsampler") else 32}, ' in out.stdout, out.stdout
