"Bad input and edge cases of `butterfly_diffusion.data`: every failure names the problem and the fix."
import subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from butterfly_diffusion.data import (PICTURES, ImageListDataset, ImageReadError, SyntheticButterflies,
                                      get_data, get_data_from_config, list_images, load_image, make_example_dataset,
                                      stratified_split)
from butterfly_diffusion.synthetic import draw_butterfly, species_names
from butterfly_diffusion.core import get_config


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def check_image_tensor(x, size):
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1


# ---- the synthetic species --------------------------------------------------------------------------------------

def test_names_unique_and_readable():
    names = species_names(75)
    assert len(set(names)) == 75
    assert all(len(n.split()) == 3 and '-' in n.split()[1] for n in names)     # '<colour> <accent>-<pattern> <shape>'
    assert len(set(species_names(700))) == 700


def test_draw_butterfly_is_deterministic():
    a = np.asarray(draw_butterfly(7, 3, 40, seed=2))
    assert a.shape == (40, 40, 3) and a.dtype == np.uint8
    assert np.array_equal(a, np.asarray(draw_butterfly(7, 3, 40, seed=2)))
    assert not np.array_equal(a, np.asarray(draw_butterfly(7, 4, 40, seed=2)))
    assert not np.array_equal(a, np.asarray(draw_butterfly(8, 3, 40, seed=2)))


def test_synthetic_splits_share_no_pictures():
    data = get_data(image_size=16, num_classes=3, n_per_class=5, batch_size=4)
    held_out = SyntheticButterflies(3, 16, 5, first_index=PICTURES['judge'])
    train = {data.train_ds.load(i).numpy().tobytes() for i in range(len(data.train_ds))}
    valid = {data.valid_ds.load(i).numpy().tobytes() for i in range(len(data.valid_ds))}
    test = {held_out.load(i).numpy().tobytes() for i in range(len(held_out))}
    assert not train & valid and not train & test and not valid & test


def test_cache_is_filled_by_worker_processes():
    ds = SyntheticButterflies(2, 16, 6, cache=True)
    for _ in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2): pass
    assert bool(ds._ready.all())                                               # workers wrote into shared memory
    assert torch.equal(ds[7][0], ds.__class__(2, 16, 6, cache=False)[7][0])


# ---- images of any mode and size --------------------------------------------------------------------------------

@pytest.mark.parametrize('mode,ext,size', [('RGB', 'jpg', (50, 31)), ('RGBA', 'png', (17, 40)), ('L', 'png', (9, 9)),
                                           ('P', 'gif', (64, 20)), ('CMYK', 'jpg', (33, 33)), ('LA', 'png', (20, 30)),
                                           ('I;16', 'png', (25, 26)), ('1', 'bmp', (12, 40))])
def test_any_mode_and_size_becomes_rgb_square(tmp_path, mode, ext, size):
    path = tmp_path / f'img.{ext}'
    draw_butterfly(0, 0, max(size)).crop((0, 0, *size)).convert(mode).save(path)
    ds = ImageListDataset([path], [0], ['only'], image_size=24)
    check_image_tensor(ds[0][0], 24)


def test_transparent_pixels_become_white(tmp_path):
    Image.new('RGBA', (8, 8), (0, 0, 0, 0)).save(tmp_path / 'clear.png')
    assert load_image(tmp_path / 'clear.png', 4).min() == 255


# ---- the two layouts --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('layout', ['csv', 'folders'])
def test_both_layouts_load(tmp_path, layout):
    root = make_example_dataset(tmp_path / layout, layout, num_classes=3, n_per_class=5)
    data = get_data(root, image_size=20, batch_size=4, val_fraction=0.2)
    assert data.classes == sorted(species_names(3)) and data.num_classes == 3
    assert data.class_to_idx == {c: i for i, c in enumerate(data.classes)}
    assert (len(data.train_ds), len(data.valid_ds)) == (12, 3)
    x, y = next(iter(data.train_dl))
    assert x.shape == (4, 3, 20, 20) and x.min() >= -1 and x.max() <= 1 and y.max() < 3
    check_image_tensor(data.valid_ds[0][0], 20)


def test_kaggle_csv_can_be_passed_directly_and_images_may_sit_beside_it(tmp_path):
    for i in range(4): draw_butterfly(i % 2, i, 20).save(tmp_path / f'{i}.png')
    csv = write_csv(tmp_path / 'labels.csv', 'filename,label\n0.png,b\n1.png,a\n2.png,b\n3.png,a\n')
    files, labels = list_images(csv)
    assert [f.name for f in files] == ['0.png', '1.png', '2.png', '3.png'] and labels == ['b', 'a', 'b', 'a']
    assert get_data(csv, image_size=8, val_fraction=0.5).classes == ['a', 'b']


def test_split_is_stratified_and_deterministic(tmp_path):
    root = make_example_dataset(tmp_path / 'd', 'folders', num_classes=4, n_per_class=10)
    a = get_data(root, image_size=8, val_fraction=0.2, seed=1)
    b = get_data(root, image_size=8, val_fraction=0.2, seed=1)
    c = get_data(root, image_size=8, val_fraction=0.2, seed=2)
    assert a.valid_ds.files == b.valid_ds.files and a.valid_ds.files != c.valid_ds.files
    assert sorted(a.valid_ds.targets) == [0, 0, 1, 1, 2, 2, 3, 3]            # every class, 20% of each
    assert not set(a.valid_ds.files) & set(a.train_ds.files)
    targets = [0] * 3 + [1] * 7 + [2] * 100
    tr, va = stratified_split(targets, 0.1)
    assert sorted(tr + va) == list(range(110))
    assert [sum(targets[i] == c for i in va) for c in range(3)] == [1, 1, 10]   # each class, >= 1, ~10%
    assert {targets[i] for i in tr} == {0, 1, 2}


def test_flips_only_in_training():
    data = get_data(image_size=16, num_classes=2, n_per_class=4)
    assert data.train_ds.transform is not None and data.valid_ds.transform is None
    assert get_data(image_size=16, num_classes=2, n_per_class=4, flip=False).train_ds.transform is None


def test_get_data_from_config_uses_its_sizes():
    cfg = get_config('tiny')
    data = get_data_from_config(cfg, n_per_class=3)
    assert (data.num_classes, data.train_ds.image_size, data.batch_size) == \
           (cfg.num_classes, cfg.image_size, cfg.batch_size)


# ---- bad input: each error names the problem and the fix --------------------------------------------------------

def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'does not exist.*path=None for the built-in'):
        get_data(tmp_path / 'nowhere')


def test_csv_without_the_needed_columns(tmp_path):
    (tmp_path / 'train').mkdir()
    write_csv(tmp_path / 'Training_set.csv', 'image,species\na.jpg,x\n')
    with pytest.raises(ValueError, match=r"columns \['image', 'species'\] but needs 'filename' and 'label'"):
        get_data(tmp_path)


def test_files_listed_but_absent_are_named(tmp_path):
    (tmp_path / 'train').mkdir()
    draw_butterfly(0, 0, 16).save(tmp_path / 'train' / 'present.jpg')
    rows = ['present.jpg,a'] + [f'gone_{i}.jpg,a' for i in range(7)]
    write_csv(tmp_path / 'Training_set.csv', 'filename,label\n' + '\n'.join(rows) + '\n')
    with pytest.raises(FileNotFoundError) as e: get_data(tmp_path)
    msg = str(e.value)
    assert '7 of the 8 images' in msg and 'gone_0.jpg' in msg and 'gone_4.jpg' in msg and '...' in msg
    assert 'gone_6.jpg' not in msg and 'image_dir=' in msg


def test_csv_rows_without_a_label(tmp_path):
    write_csv(tmp_path / 'Training_set.csv', 'filename,label\na.jpg,x\nb.jpg,\n')
    with pytest.raises(ValueError, match=r'line\(s\) \[3\] lack a filename or a label'):
        get_data(tmp_path)


@pytest.mark.parametrize('kind', ['truncated', 'not an image'])
def test_unreadable_image_names_the_file(tmp_path, kind):
    root = make_example_dataset(tmp_path / 'd', 'folders', num_classes=2, n_per_class=3)
    victim = sorted(root.rglob('*.jpg'))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[:len(data) // 3] if kind == 'truncated' else b'this is not a picture')
    ds = get_data(root, image_size=16, val_fraction=0, batch_size=2, verify=False).train_ds   # met while training
    i = ds.files.index(victim)
    with pytest.raises(ImageReadError, match=rf'Cannot read image .*{victim.name}.*replace or delete it'):
        ds[i]


def test_unreadable_image_is_named_through_dataloader_workers(tmp_path):
    root = make_example_dataset(tmp_path / 'd', 'folders', num_classes=2, n_per_class=2)
    victim = sorted(root.rglob('*.jpg'))[0]
    victim.write_bytes(b'garbage')
    data = get_data(root, image_size=16, val_fraction=0, batch_size=4, num_workers=1, verify=False)
    with pytest.raises(ImageReadError, match=victim.name):
        list(data.train_dl)


@pytest.mark.parametrize('content', ['', 'filename,label\n'])
def test_empty_csv(tmp_path, content):
    write_csv(tmp_path / 'Training_set.csv', content)
    with pytest.raises(ValueError, match='empty'):
        get_data(tmp_path)


def test_folder_without_class_folders(tmp_path):
    draw_butterfly(0, 0, 16).save(tmp_path / 'loose.jpg')
    with pytest.raises(ValueError, match=r'no sub-folders.*<species>/<image>.jpg'):
        get_data(tmp_path)


def test_empty_class_folder(tmp_path):
    root = make_example_dataset(tmp_path / 'd', 'folders', num_classes=2, n_per_class=3)
    (root / 'moths').mkdir()
    (root / 'moths' / 'notes.txt').write_text('no pictures here')
    with pytest.raises(ValueError, match=r"moths has no images.*Add images of 'moths', or move that folder out of"):
        get_data(root)


def test_small_classes_train_on_all_their_images(tmp_path):
    "A species of 1 or 2 images gives none to validation: many of them would otherwise make validation half the data."
    root = make_example_dataset(tmp_path / 'd', 'folders', num_classes=2, n_per_class=3)
    lonely = root / 'lonely'; lonely.mkdir()
    draw_butterfly(5, 0, 16).save(lonely / 'one.png')
    data = get_data(root, image_size=16, val_fraction=0.2)
    lone = data.class_to_idx['lonely']
    assert lone in data.train_ds.targets and lone not in data.valid_ds.targets
    assert (len(data.train_ds), len(data.valid_ds)) == (5, 2)          # the two species of 3 give one each
    pairs = make_example_dataset(tmp_path / 'pairs', 'folders', num_classes=12, n_per_class=2)
    data = get_data(pairs, image_size=16)                              # 12 species of 2 images: all train
    assert (len(data.train_ds), data.valid_ds) == (24, None)


def test_num_classes_mismatch(tmp_path):
    root = make_example_dataset(tmp_path / 'd', 'csv', num_classes=3, n_per_class=2)
    with pytest.raises(ValueError, match=r'holds 3 species but num_classes=75: pass num_classes=3'):
        get_data(root, num_classes=75)


def test_empty_file_list_and_bad_labels():
    with pytest.raises(ValueError, match='empty'): ImageListDataset([], [], ['a'])
    with pytest.raises(ValueError, match=r'outside 0..0'): ImageListDataset(['x.jpg'], [3], ['a'])
    with pytest.raises(ValueError, match='one label per file'): ImageListDataset(['x.jpg'], [], ['a'])


def test_bad_arguments():
    with pytest.raises(ValueError, match=r'val_fraction must be in \[0, 1\)'): get_data(val_fraction=1)
    with pytest.raises(ValueError, match='num_classes >= 1'): SyntheticButterflies(0, 16, 4)
    with pytest.raises(ValueError, match='at least 1'): species_names(0)


# ---- tools/species_subset.py: a dataset of the first N species ---------------------------------------------------

def species_subset(*args):
    tool = Path(__file__).resolve().parent.parent / 'tools' / 'species_subset.py'
    return subprocess.run([sys.executable, str(tool), *map(str, args)], capture_output=True, text=True)

@pytest.mark.parametrize('layout', ['csv', 'folders'])
def test_species_subset_links_the_first_species_in_the_seeds_layout(tmp_path, layout):
    root = make_example_dataset(tmp_path / layout, layout, num_classes=4, n_per_class=3)
    r = species_subset(root, tmp_path / 'first2', '--species', 2)
    assert r.returncode == 0, r.stderr
    files, labels = list_images(tmp_path / 'first2')
    all_files, all_labels = list_images(root)
    keep = sorted(set(all_labels))[:2]
    assert sorted(set(labels)) == keep and len(files) == 6
    assert (tmp_path / 'first2' / 'Training_set.csv').exists() and all(f.is_symlink() for f in files)
    source = {f.resolve(): y for f, y in zip(all_files, all_labels)}      # each link: a photo of its own species
    assert all(source[f.resolve()] == y for f, y in zip(files, labels))
    assert get_data(tmp_path / 'first2', image_size=8, val_fraction=0.34).classes == keep

def test_species_subset_numbers_links_when_class_folders_reuse_a_file_name(tmp_path):
    for i, species in enumerate(['b', 'a', 'c']):
        (tmp_path / 'd' / species).mkdir(parents=True)
        draw_butterfly(i, 0, 16).save(tmp_path / 'd' / species / 'same.png')
    r = species_subset(tmp_path / 'd', tmp_path / 'first2', '--species', 2)
    assert r.returncode == 0, r.stderr
    files, labels = list_images(tmp_path / 'first2')
    assert sorted(labels) == ['a', 'b'] and len({f.name for f in files}) == 2
    assert all(f.resolve() == (tmp_path / 'd' / y / 'same.png').resolve() for f, y in zip(files, labels))

def test_species_subset_refuses_a_bad_count_or_an_existing_folder(tmp_path):
    root = make_example_dataset(tmp_path / 'd', 'csv', num_classes=3, n_per_class=2)
    r = species_subset(root, tmp_path / 'x', '--species', 4)
    assert r.returncode != 0 and '--species must be 1 to 3' in r.stderr and not (tmp_path / 'x').exists()
    (tmp_path / 'y').mkdir()
    r = species_subset(root, tmp_path / 'y', '--species', 2)
    assert r.returncode != 0 and 'exists' in r.stderr


# ---- photos as a viewer shows them; what unzip tools leave; labels -----------------------------------------------

def test_exif_orientation_is_applied(tmp_path):
    "A phone photo stored sideways with an EXIF orientation loads upright, as viewers show it."
    a = np.zeros((40, 40, 3), np.uint8); a[:20] = (255, 0, 0); a[20:] = (0, 0, 255)   # stored: red above blue
    exif = Image.Exif(); exif[0x0112] = 6                                              # view rotated 90° clockwise
    Image.fromarray(a).save(tmp_path / 'phone.jpg', exif=exif, quality=95)
    Image.fromarray(a).save(tmp_path / 'plain.jpg', quality=95)
    x, plain = load_image(tmp_path / 'phone.jpg', 16).float(), load_image(tmp_path / 'plain.jpg', 16).float()
    assert (plain[0, :6] - plain[0, -6:]).mean() > 200                        # without EXIF: red on top
    assert (x[0, :, -6:] - x[0, :, :6]).mean() > 200 and (x[0, :6] - x[0, -6:]).abs().mean() < 30   # upright: red on the right


@pytest.mark.parametrize('mode,value,expect', [('F', 0.5, 128), ('F', 1.0, 255), ('I;16', 32896, 128), ('I', 200, 200)])
def test_high_bit_depth_and_float_images_keep_their_brightness(tmp_path, mode, value, expect):
    "Float TIFFs hold [0, 1] and 16-bit images [0, 65535]: both load at the brightness a viewer shows, not black."
    f = tmp_path / f'grey-{mode.replace(";", "")}.{"tif" if mode != "I;16" else "png"}'
    dtype = {'F': np.float32, 'I;16': np.uint16, 'I': np.int32}[mode]
    img = Image.fromarray(np.full((24, 24), value, dtype)); assert img.mode == mode
    img.save(f)
    x = load_image(f, 8)
    assert x.dtype == torch.uint8 and abs(x.float().mean().item() - expect) <= 1, (mode, x.float().mean())


def test_what_unzip_tools_and_file_managers_leave_is_skipped(tmp_path):
    root = make_example_dataset(tmp_path / 'ds', layout='folders')
    species = sorted(p.name for p in root.iterdir())
    (root / '__MACOSX' / species[0]).mkdir(parents=True)
    (root / '__MACOSX' / species[0] / '._Image_1.jpg').write_bytes(b'\x00\x05\x16\x07 resource fork')
    (root / species[0] / '._Image_1.jpg').write_bytes(b'\x00\x05\x16\x07 resource fork')
    (root / species[1] / '.hidden').mkdir(); (root / species[1] / '.hidden' / 'x.jpg').write_bytes(b'not an image')
    (root / '.DS_Store').write_bytes(b'Bud1')
    files, labels = list_images(root)
    assert sorted(set(labels)) == species and not any(f.name.startswith('.') or '__MACOSX' in f.parts for f in files)
    assert len(get_data(root, image_size=16, val_fraction=0).train_ds) == len(files) == 15


def test_one_image_with_two_species_is_refused_and_repeated_rows_count_once(tmp_path):
    root = make_example_dataset(tmp_path / 'ds')
    csv = root / 'Training_set.csv'
    rows = csv.read_text().splitlines()
    first_file, first_label = rows[1].split(',')
    other = next(r.split(',')[1] for r in rows[1:] if r.split(',')[1] != first_label)
    csv.write_text('\n'.join(rows + [rows[1]]) + '\n')                      # the same row twice: counted once
    assert len(list_images(root)[0]) == len(rows) - 1
    csv.write_text('\n'.join(rows + [f'{first_file},{other}']) + '\n')       # one image, two species: refused
    with pytest.raises(ValueError, match=rf'gives 1 image\(s\) more than one species: {first_file} as'):
        list_images(root)


def test_labels_that_differ_only_in_unicode_form_are_one_species(tmp_path):
    "'Café' typed on two systems (é as one code point, or e plus a combining accent) is one species, in both layouts."
    nfc, nfd = 'Caf\u00e9 tiger', 'Cafe\u0301 tiger'
    rows = ['filename,label']
    for folder, n in ((nfc, 3), (nfd, 2), ('second', 3)):
        (tmp_path / 'folders' / folder).mkdir(parents=True); (tmp_path / 'csv' / 'train').mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = draw_butterfly(len(rows) % 2, i, 24)
            img.save(tmp_path / 'folders' / folder / f'{i}.png'); img.save(tmp_path / 'csv' / 'train' / f'{folder}-{i}.png')
            rows.append(f'{folder}-{i}.png,{folder}')
    (tmp_path / 'csv' / 'Training_set.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    for layout in ('folders', 'csv'):
        files, labels = list_images(tmp_path / layout)
        assert sorted(set(labels)) == sorted({nfc, 'second'}) and labels.count(nfc) == 5 and len(files) == 8, layout
