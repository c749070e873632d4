import contextlib
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import cv2
import numpy as np
import pytest

from mmreid.datasets import synthetic, synthetic_render, synthetic_store
from mmreid.datasets.market1501 import Market1501
from mmreid.datasets.synthetic import (SYNTHREID_PRESETS, SYSU_INFRARED_CAMS,
                                       SynthReID, generate_synthreid,
                                       get_domain_styles, identity_attributes,
                                       render_image)
from mmreid.datasets.synthetic_plan import _added_test_pids, _plan_market
from mmreid.registry import DATASETS

# Stricter than the parser: 4-digit pids (or -1), 6-digit frame, 2-digit box.
MARKET_NAME = re.compile(r'^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$')
SYSU_PATH = re.compile(r'^cam(\d)/(\d{4})/(\d{4})\.jpg$')


def tree_digest(root):
    """sha256 over every relative path and file content under ``root``."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(folder, name)
            digest.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def market_names(root, domain, folder):
    return sorted(os.listdir(osp.join(root, domain, folder)))


def test_market_layout_parses(tmp_path):
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(root, domains=2, size='tiny')
    assert sorted(os.listdir(root)) == ['d0', 'd1', 'synthreid.json']
    num_cams = manifest['params']['num_cams']
    for domain in ('d0', 'd1'):
        for folder in ('bounding_box_train', 'bounding_box_test', 'query'):
            for name in market_names(root, domain, folder):
                match = MARKET_NAME.match(name)
                assert match, name
                assert 1 <= int(match.group(2)) <= num_cams
                assert 1 <= int(match.group(3)) <= 6
        # The real parser reads it; train pids are relabelled 0..N-1.
        train = Market1501(data_root=osp.join(root, domain), split='train')
        files = market_names(root, domain, 'bounding_box_train')
        assert len(train) == len(files)
        pids = sorted(set(train.get_pids()))
        assert pids == list(range(manifest['params']['num_ids_train']))
        test = Market1501(data_root=osp.join(root, domain), split='test')
        roles = [test.get_data_info(i)['role'] for i in range(len(test))]
        assert roles == sorted(roles, key=['query', 'gallery'].index)
        test_pids = {test.get_data_info(i)['pid']
                     for i in range(len(test))} - {0}
        assert len(test_pids) == manifest['params']['num_ids_test']
        # Counts in the manifest agree with the files.
        counts = manifest['counts'][domain]
        for folder, c in counts.items():
            assert c['images'] == len(market_names(root, domain, folder))


def test_image_size_and_aspect(tmp_path):
    root = str(tmp_path / 'default')
    generate_synthreid(root, domains=1, size='tiny')
    folder = osp.join(root, 'd0', 'query')
    img = cv2.imread(osp.join(folder, os.listdir(folder)[0]))
    assert img.shape == (128, 64, 3)
    root = str(tmp_path / 'small_img')
    generate_synthreid(root, domains=1, size='tiny', img_size=(64, 32))
    for folder in ('bounding_box_train', 'bounding_box_test', 'query'):
        path = osp.join(root, 'd0', folder)
        for name in os.listdir(path):
            assert cv2.imread(osp.join(path, name)).shape == (64, 32, 3)


def test_deterministic(tmp_path):
    kwargs = dict(domains=2, size='tiny')
    a = generate_synthreid(str(tmp_path / 'a'), seed=3, **kwargs)
    b = generate_synthreid(str(tmp_path / 'b'), seed=3, **kwargs)
    assert a == b
    assert tree_digest(tmp_path / 'a') == tree_digest(tmp_path / 'b')
    generate_synthreid(str(tmp_path / 'c'), seed=4, **kwargs)
    assert tree_digest(tmp_path / 'a') != tree_digest(tmp_path / 'c')
    # Images of one seed share no bytes with the other seed's images.
    query = osp.join(tmp_path, 'a', 'd0', 'query')
    other = osp.join(tmp_path, 'c', 'd0', 'query')
    read = [open(osp.join(query, n), 'rb').read() for n in os.listdir(query)]
    for name in os.listdir(other):
        assert open(osp.join(other, name), 'rb').read() not in read


def test_render_does_not_depend_on_order():
    style = get_domain_styles(2, 0)[0]
    first = render_image(0, 0, 17, 2, 1, (64, 32), style)
    for pid in range(5):
        render_image(0, 1, pid, 1, 0, (64, 32), style)
    np.testing.assert_array_equal(
        render_image(0, 0, 17, 2, 1, (64, 32), style), first)
    assert not np.array_equal(
        render_image(0, 0, 17, 2, 2, (64, 32), style), first)


@pytest.mark.parametrize('infrared', [False, True])
def test_cached_attributes_are_not_changed_by_rendering(infrared):
    # The renderer caches identities, cameras and styles per process; an
    # image rendered with a warm cache equals the one rendered cold.
    for cached in (synthetic_render._person, synthetic_render._camera_of,
                   synthetic_render._domain_style):
        cached.cache_clear()
    style = get_domain_styles(1, 0)[0]
    cam = 3 if infrared else 1
    kwargs = dict(infrared=infrared, ir_mode='dye', ir_luminance=0.5)
    cold = render_image(0, 0, 17, cam, 0, (64, 32), style, **kwargs)
    for index in range(1, 6):
        render_image(0, 0, 17, cam, index, (64, 32), style, **kwargs)
    assert synthetic_render._person.cache_info().hits >= 5
    assert synthetic_render._camera_of.cache_info().hits >= 5
    warm = render_image(0, 0, 17, cam, 0, (64, 32), style, **kwargs)
    np.testing.assert_array_equal(warm, cold)
    # And equals the uncached attributes of the public functions.
    assert synthetic_render._person(0, 0, 17, 'dye', 0.5) == \
        synthetic_render.identity_attributes(0, 0, 17, 'dye', 0.5)


def test_domains_have_disjoint_identities(tmp_path):
    root = str(tmp_path / 'synth')
    generate_synthreid(root, domains=3, size='tiny')
    pid_sets = []
    for domain in ('d0', 'd1', 'd2'):
        pids = set()
        for folder in ('bounding_box_train', 'bounding_box_test', 'query'):
            pids |= {
                int(n.split('_')[0])
                for n in market_names(root, domain, folder)
            }
        pid_sets.append(pids - {0, -1})
    for i in range(3):
        for j in range(i + 1, 3):
            assert not pid_sets[i] & pid_sets[j]
    # The same pid number in two domains is two different people.
    assert identity_attributes(0, 0, 5) != identity_attributes(0, 1, 5)
    assert identity_attributes(0, 0, 5) == identity_attributes(0, 0, 5)


def test_domain_styles():
    styles = get_domain_styles(4, seed=0)
    assert [s['name'] for s in styles] == ['d0', 'd1', 'd2', 'd3']
    assert [s['unseen'] for s in styles] == [False, False, False, True]
    assert len({s['look'] for s in styles}) == 4
    assert styles == get_domain_styles(4, seed=0)
    assert styles != get_domain_styles(4, seed=1)

    # The unseen style is further from every training style than those
    # are from each other (red/blue gain ratio and saturation).
    def key(s):
        return np.array([s['gain'][0] / s['gain'][2], s['saturation']])

    seen = [key(s) for s in styles[:3]]
    spread = max(np.abs(a - b).max() for a in seen for b in seen)
    gap = min(np.abs(key(styles[3]) - a).max() for a in seen)
    assert gap > spread
    assert get_domain_styles(1)[0]['unseen'] is False


def test_junk_and_distractors(tmp_path):
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(root, domains=1, size='tiny')
    gallery = market_names(root, 'd0', 'bounding_box_test')
    junk = [n for n in gallery if n.startswith('-1_')]
    distractors = [n for n in gallery if n.startswith('0000_')]
    assert len(junk) == manifest['params']['num_junk'] > 0
    assert len(distractors) == manifest['params']['num_distractors'] > 0
    for folder in ('bounding_box_train', 'query'):
        names = market_names(root, 'd0', folder)
        assert not [n for n in names if n.startswith(('-1_', '0000_'))]
    test = SynthReID(root, domain=0, num_domains=1, split='test', size='tiny')
    infos = [test.get_data_info(i) for i in range(len(test))]
    assert all(info['pid'] != -1 for info in infos)
    assert len(infos) == len(gallery) + len(market_names(root, 'd0',
                                                         'query')) - len(junk)
    zero_roles = {info['role'] for info in infos if info['pid'] == 0}
    assert zero_roles == {'gallery'}
    train = SynthReID(root, domain=0, num_domains=1, size='tiny')
    assert len(train) == len(market_names(root, 'd0', 'bounding_box_train'))


@pytest.mark.parametrize('imgs_per_cam', [1, 2])
def test_every_query_has_cross_camera_match(tmp_path, imgs_per_cam):
    root = str(tmp_path / 'synth')
    test = SynthReID(
        root,
        domain=0,
        num_domains=2,
        split='test',
        size='tiny',
        num_ids_test=8,
        imgs_per_cam=imgs_per_cam)
    infos = [test.get_data_info(i) for i in range(len(test))]
    gallery = {(i['pid'], i['camid']) for i in infos if i['role'] == 'gallery'}
    queries = [i for i in infos if i['role'] == 'query']
    assert len({q['pid'] for q in queries}) == 8
    for q in queries:
        # The Market rule removes same pid and same camera.
        assert any(pid == q['pid'] and cam != q['camid']
                   for pid, cam in gallery), q


def test_synthreid_dataset(tmp_path):
    root = str(tmp_path / 'synth')
    cfg = dict(type='SynthReID', data_root=root, size='tiny')
    train = DATASETS.build(dict(cfg, domain=1))
    assert isinstance(train, Market1501)
    assert train.dataset_name == 'synthreid-d1'
    assert train.metainfo['domain_style'] == get_domain_styles()[1]['look']
    assert {r['dataset']
            for r in map(train.get_data_info, range(len(train)))
            } == {'synthreid-d1'}
    assert sorted(set(train.get_pids())) == list(range(4))
    assert osp.isfile(osp.join(root, 'synthreid.json'))
    unseen = SynthReID(root, domain=-1, split='test', size='tiny')
    assert unseen.dataset_name == 'synthreid-d3'
    assert unseen.metainfo['domain_style'] == 'unseen'
    by_name = SynthReID(root, domain='d3', split='test', size='tiny')
    assert len(by_name) == len(unseen)
    with pytest.raises(ValueError, match='d7'):
        SynthReID(root, domain='d7', size='tiny')
    with pytest.raises(ValueError, match='out of range'):
        SynthReID(root, domain=4, size='tiny')
    with pytest.raises(TypeError, match='num_ids'):
        SynthReID(root, size='tiny', overrides=dict(num_idz=3))
    # lazy_init generates on first access only.
    lazy_root = str(tmp_path / 'lazy')
    lazy = SynthReID(lazy_root, size='tiny', lazy_init=True)
    assert not osp.exists(lazy_root)
    assert len(lazy) > 0 and osp.isdir(lazy_root)


def test_reuse_and_manifest_mismatch(tmp_path):
    root = str(tmp_path / 'synth')
    first = generate_synthreid(root, domains=1, size='tiny')
    with open(osp.join(root, 'synthreid.json')) as f:
        assert json.load(f) == first
    path = osp.join(root, 'd0', 'query',
                    os.listdir(osp.join(root, 'd0', 'query'))[0])
    mtime = os.stat(path).st_mtime_ns
    assert generate_synthreid(root, domains=1, size='tiny') == first
    assert os.stat(path).st_mtime_ns == mtime
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(root, domains=1, size='tiny', seed=1)
    message = str(error.value)
    assert root in message and 'Delete' in message
    assert "'seed': 0" in message and "'seed': 1" in message
    with pytest.raises(FileExistsError, match='num_ids_train'):
        generate_synthreid(root, domains=1, size='tiny', num_ids_train=5)
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='synthreid.json'):
        generate_synthreid(str(foreign), size='tiny')
    # An empty folder is fine (e.g. made by a launcher).
    empty = tmp_path / 'empty'
    empty.mkdir()
    generate_synthreid(str(empty), domains=1, size='tiny')
    assert osp.isfile(empty / 'synthreid.json')


@pytest.mark.parametrize('cut', ['half', 'list', 'binary'])
def test_a_corrupt_manifest_is_named(tmp_path, cut):
    root = tmp_path / 'synth'
    kwargs = dict(domains=1, size='tiny', img_size=(32, 16))
    generate_synthreid(str(root), **kwargs)
    path = root / 'synthreid.json'
    text = path.read_bytes()
    path.write_bytes(
        dict(half=text[:len(text) // 2], list=b'[]', binary=b'\xff\xfe')[cut])
    # A bare JSONDecodeError named no file.
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(str(root), **kwargs)
    message = str(error.value)
    assert f'the manifest {str(path)!r}' in message
    assert 'truncated or corrupt' in message
    assert f'Delete {str(root)!r}' in message
    with pytest.raises(FileExistsError, match='truncated or corrupt'):
        SynthReID(str(root), num_domains=1, size='tiny', img_size=(32, 16))


def test_bad_arguments(tmp_path):
    root = str(tmp_path / 'synth')
    with pytest.raises(ValueError, match='size'):
        generate_synthreid(root, size='huge')
    with pytest.raises(TypeError, match='num_ids_val'):
        generate_synthreid(root, size='tiny', num_ids_val=2)
    with pytest.raises(ValueError, match='single domain'):
        generate_synthreid(root, size='tiny', modality='vi', domains=2)
    with pytest.raises(ValueError, match='num_cams'):
        generate_synthreid(root, size='tiny', num_cams=1)
    assert not osp.exists(root)


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    real = synthetic._write_image
    calls = []

    def failing(path, img):
        calls.append(path)
        if len(calls) == 10:
            raise RuntimeError('disk full')
        real(path, img)

    monkeypatch.setattr(synthetic, '_write_image', failing)
    root = tmp_path / 'synth'
    with pytest.raises(RuntimeError, match='disk full'):
        generate_synthreid(str(root), domains=2, size='tiny')
    assert len(calls) == 10
    assert os.listdir(tmp_path) == []
    # A retry starts from scratch and succeeds.
    monkeypatch.setattr(synthetic, '_write_image', real)
    generate_synthreid(str(root), domains=2, size='tiny')
    assert sorted(os.listdir(tmp_path)) == ['synth']


def test_a_file_removed_while_rendering_is_not_renamed_into_place(
        tmp_path, monkeypatch):
    """One written image removed from the temporary tree (a clean-up of
    another process) before the rename: the rendered tree is compared
    with the plan, the generation fails naming the file, and ``root`` is
    not written (docs/datasets.md: "a folder cannot be stale or
    partial")."""
    real = synthetic._write_image
    written = []

    def removing(path, img):
        real(path, img)
        written.append(path)
        if len(written) == 12:
            os.remove(written[3])

    monkeypatch.setattr(synthetic, '_write_image', removing)
    root = tmp_path / 'synth'
    with pytest.raises(FileNotFoundError) as error:
        generate_synthreid(str(root), domains=1, size='tiny')
    rel = osp.relpath(written[3], osp.dirname(written[3]))
    assert 'missing: d0/' in str(error.value) and rel in str(error.value)
    assert os.listdir(tmp_path) == []


def test_a_root_that_is_not_a_folder_is_refused_before_rendering(tmp_path):
    """A ``data_root`` that is a file, or a link to one, is refused naming
    it (and the link's target) before anything is rendered."""
    target = tmp_path / 'file'
    target.write_text('')
    link = tmp_path / 'link'
    link.symlink_to(target)
    with pytest.raises(FileExistsError, match='is not a folder'):
        generate_synthreid(str(target), domains=1, size='tiny')
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(str(link), domains=1, size='tiny')
    assert f"{str(link)!r} (a link to {str(target)!r})" in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ['file', 'link']


@contextlib.contextmanager
def no_locks(parent, base):
    """A file system where ``flock`` is not available."""
    yield False


def test_concurrent_generation(tmp_path, monkeypatch):
    """The process that renames second discards its copy without error.

    Only where locks are unavailable: otherwise the second process waits
    (see ``test_one_process_renders_the_others_wait``).
    """
    root = str(tmp_path / 'synth')
    real = synthetic._write_tree
    temps = []

    def racing(folder, params, **kwargs):
        temps.append(folder)
        if len(temps) == 1:
            # Another rank finishes first, while this one is writing.
            monkeypatch.setattr(synthetic, '_write_tree', real)
            generate_synthreid(root, domains=1, size='tiny')
            winner = tree_digest(root)
            temps.append(winner)
        return real(folder, params, **kwargs)

    monkeypatch.setattr(synthetic, '_generation_lock', no_locks)
    monkeypatch.setattr(synthetic, '_write_tree', racing)
    manifest = generate_synthreid(root, domains=1, size='tiny')
    assert temps[0] != root and osp.dirname(temps[0]) == str(tmp_path)
    assert manifest['params']['domains'] == 1
    assert os.listdir(tmp_path) == ['synth']
    assert tree_digest(root) == temps[1]


def read_sysu(root):
    """(cam, pid, path) of every image under SYSU-MM01."""
    base = osp.join(root, 'SYSU-MM01')
    items = []
    for cam in sorted(os.listdir(base)):
        if cam == 'exp':
            continue
        for pid in sorted(os.listdir(osp.join(base, cam))):
            for name in sorted(os.listdir(osp.join(base, cam, pid))):
                match = SYSU_PATH.match(f'{cam}/{pid}/{name}')
                assert match, (cam, pid, name)
                items.append((int(match.group(1)), int(match.group(2)),
                              osp.join(base, cam, pid, name)))
    return items


def test_vi_layout(tmp_path):
    root = str(tmp_path / 'vi')
    manifest = generate_synthreid(root, modality='vi', size='tiny')
    assert sorted(os.listdir(root)) == ['SYSU-MM01', 'synthreid.json']
    ids = {}
    for split in ('train', 'val', 'test'):
        with open(osp.join(root, 'SYSU-MM01', 'exp', f'{split}_id.txt')) as f:
            lines = f.read().splitlines()
        assert len(lines) == 1
        ids[split] = [int(x) for x in lines[0].split(',')]
        assert len(ids[split]) == manifest['params'][f'num_ids_{split}']
    all_ids = ids['train'] + ids['val'] + ids['test']
    assert len(set(all_ids)) == len(all_ids)
    items = read_sysu(root)
    assert {pid for _, pid, _ in items} == set(all_ids)
    assert {cam for cam, _, _ in items} <= set(range(1, 7))
    for pid in all_ids:
        cams = {cam for cam, p, _ in items if p == pid}
        assert cams & {1, 2, 4, 5} and cams & {3, 6}
    for cam, _, path in items:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        assert img.shape == (128, 64, 3)
        equal = (img[..., 0] == img[..., 1]).all() and (img[..., 1]
                                                        == img[..., 2]).all()
        assert equal == (cam in (3, 6)), path


def discordant_fraction(root, margin=30):
    """How often IR intensity orders two identities against their colour.

    For each identity, the median chest intensity over its visible images
    (luminance) and over its infrared images. Among pairs of identities
    that differ by more than ``margin`` grey levels in both modalities,
    returns the fraction ordered oppositely: about 0 if the infrared were a
    monotone function of the garment colour.
    """
    vis, ir = {}, {}
    for cam, pid, path in read_sysu(root):
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        value = np.median(img[36:54, 27:37])  # chest of a 128x64 crop
        (ir if cam in (3, 6) else vis).setdefault(pid, []).append(value)
    pids = sorted(vis)
    a = np.array([np.median(vis[p]) for p in pids])
    b = np.array([np.median(ir[p]) for p in pids])
    i, j = np.triu_indices(len(pids), 1)
    da, db = a[i] - a[j], b[i] - b[j]
    strong = (np.abs(da) > margin) & (np.abs(db) > margin)
    assert strong.sum() >= 50  # enough pairs to judge
    return float(np.mean(np.sign(da[strong]) != np.sign(db[strong])))


def test_infrared_is_not_grey_of_colour(tmp_path, monkeypatch):
    # The first release's infrared (v2, the default, follows the dyes).
    kwargs = dict(
        modality='vi',
        size='tiny',
        ir_mode='hard',
        num_ids_train=16,
        num_ids_test=8)
    generate_synthreid(str(tmp_path / 'vi'), **kwargs)
    assert discordant_fraction(str(tmp_path / 'vi')) > 0.2

    # Control: had the infrared been the luminance of the garment colours,
    # the same measurement would find (almost) no discordant pairs.
    def grey(ident, infrared):
        if not infrared:
            return ident['colour']
        return {
            k: (int(0.299 * r + 0.587 * g + 0.114 * b), ) * 3
            for k, (r, g, b) in ident['colour'].items()
        }

    monkeypatch.setattr(synthetic_render, '_colours', grey)
    generate_synthreid(str(tmp_path / 'grey'), **kwargs)
    assert discordant_fraction(str(tmp_path / 'grey')) < 0.12


def test_editing_the_source_does_not_invalidate_folders(tmp_path, monkeypatch):
    """A folder is identified by its format version, not a source hash."""
    root = str(tmp_path / 'synth')
    first = generate_synthreid(root, domains=1, size='tiny')
    # What an edited comment in synthetic.py did to the first release: a
    # new source digest, and every cached folder was refused.
    monkeypatch.setattr(synthetic, 'SOURCE_DIGEST', '0' * 16, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert generate_synthreid(root, domains=1, size='tiny') == first


def test_other_format_version_is_refused(tmp_path):
    root = str(tmp_path / 'synth')
    generate_synthreid(root, domains=1, size='tiny')
    path = osp.join(root, synthetic.MANIFEST)
    with open(path) as f:
        on_disk = json.load(f)
    on_disk['params']['version'] = synthetic.SYNTHREID_VERSION - 1
    with open(path, 'w') as f:
        json.dump(on_disk, f)
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(root, domains=1, size='tiny')
    message = str(error.value)
    assert f'format version {synthetic.SYNTHREID_VERSION - 1}' in message
    assert f'writes version {synthetic.SYNTHREID_VERSION}' in message
    assert 'Delete' in message and root in message


def renderer_changed(monkeypatch):
    """Forget the canary digests this process rendered: a test that
    changes the renderer stands for another installation, which a real
    change of the renderer always is (another process)."""
    monkeypatch.setattr(synthetic, '_CANARY_DIGESTS', {})


def draw_one_grey_level_otherwise(monkeypatch):
    """The renderer of another numpy/OpenCV or CPU: one pixel differs."""
    renderer_changed(monkeypatch)
    real = synthetic.render_image

    def drifted(*args, **kwargs):
        img = real(*args, **kwargs)
        img[0, 0] ^= 1
        return img

    monkeypatch.setattr(synthetic, 'render_image', drifted)


def test_each_canary_is_rendered_once_per_process(tmp_path, monkeypatch):
    """Every dataset of a config (train, query, gallery, each target)
    checks its folder: the canaries are rendered for the first check of
    the process only, and a second folder of the same parameters is
    checked against the same digests."""
    renderer_changed(monkeypatch)
    first = generate_synthreid(str(tmp_path / 'a'), domains=1, size='tiny')
    copy = str(tmp_path / 'b')
    shutil.copytree(str(tmp_path / 'a'), copy)
    rendered = []
    real = synthetic.render_image

    def counted(*args, **kwargs):
        rendered.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, 'render_image', counted)
    for root in (str(tmp_path / 'a'), str(tmp_path / 'a'), copy):
        assert generate_synthreid(root, domains=1, size='tiny') == first
    assert len(rendered) == len(first['canaries'])
    # A canary whose stored digest is another is still refused.
    manifest_path = osp.join(copy, synthetic.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest['canaries'][0]['sha256'] = '0' * 64
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f)
    with pytest.raises(FileExistsError, match='is stale'):
        generate_synthreid(copy, domains=1, size='tiny')


def test_canaries_of_other_parameters_are_rendered_for_them(
        tmp_path, monkeypatch):
    """Two folders whose canaries are the same jobs (paths, identities,
    cameras) under another seed or image size: each is checked against
    its own rendering, not the one kept for the other."""
    renderer_changed(monkeypatch)
    options = [dict(seed=0), dict(seed=1), dict(img_size=(64, 32))]
    roots = [str(tmp_path / str(i)) for i in range(len(options))]
    for root, kwargs in zip(roots, options):
        generate_synthreid(root, domains=1, size='tiny', **kwargs)
    renderer_changed(monkeypatch)  # the checks below render them all
    for root, kwargs in zip(roots, options):
        generate_synthreid(root, domains=1, size='tiny', **kwargs)


def test_canaries_are_rerendered_at_load(tmp_path, monkeypatch):
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(root, domains=2, size='tiny')
    canaries = manifest['canaries']
    # One per camera of every split folder of every domain, one
    # distractor, one junk box.
    cams = range(1, manifest['params']['num_cams'] + 1)
    assert sorted(
        (c['path'].rsplit('/', 1)[0], c['cam']) for c in canaries
        if c['kind'] == 'person') == sorted(
            (f'd{d}/{folder}', cam) for d in range(2)
            for folder in ('bounding_box_test', 'bounding_box_train', 'query')
            for cam in cams)
    assert sorted(c['kind'] for c in canaries
                  if c['kind'] != 'person') == ['distractor', 'junk']
    assert manifest['renderer'] == dict(
        numpy=np.__version__,
        opencv=cv2.__version__,
        cpu=synthetic_store._cpu_features())
    # The stored digest is the digest of the rendered pixels of that file:
    # encoded, they give the file's bytes.
    for canary in canaries:
        img = synthetic._render_job(manifest['params'], canary)
        assert synthetic._pixel_digest(img) == canary['sha256']
        synthetic._write_image(str(tmp_path / 'again.jpg'), img)
        with open(osp.join(root, canary['path']), 'rb') as f:
            assert f.read() == (tmp_path / 'again.jpg').read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        generate_synthreid(root, domains=2, size='tiny')
    # Another numpy/OpenCV that draws one grey level differently: the
    # folder is used, with a warning naming both version pairs.
    draw_one_grey_level_otherwise(monkeypatch)
    monkeypatch.setattr(
        synthetic, '_renderer_versions',
        lambda: dict(numpy='9.9.9', opencv='9.9.9', cpu='x86_64 AVX2'))
    with pytest.warns(RuntimeWarning) as record:
        assert generate_synthreid(root, domains=2, size='tiny') == manifest
    message = str(record[0].message)
    assert canaries[0]['path'] in message and root in message
    assert f'numpy {np.__version__}' in message
    assert f'OpenCV {cv2.__version__}' in message
    assert 'numpy 9.9.9, OpenCV 9.9.9, CPU x86_64 AVX2' in message


def test_another_class_of_cpu_warns_instead_of_refusing(
        tmp_path, monkeypatch):
    # The same numpy and OpenCV on a CPU without AVX-512 may round numpy's
    # vectorised functions differently: a folder written on this CPU is
    # then used with a warning, as with other versions, not refused as
    # stale (the refusal would stop every run on a shared data folder).
    # It warns once per folder, not for each dataset of a config.
    root = str(tmp_path / 'synth')
    generate_synthreid(root, domains=1, size='tiny')
    draw_one_grey_level_otherwise(monkeypatch)
    monkeypatch.setattr(synthetic, '_WARNED', set())
    now = synthetic_store._renderer_versions()
    monkeypatch.setattr(synthetic, '_renderer_versions',
                        lambda: dict(now, cpu='x86_64 AVX,AVX2,FMA3'))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        for _ in range(3):  # a config's train, query and gallery datasets
            generate_synthreid(root, domains=1, size='tiny')
    (drift, ) = [w for w in shown if issubclass(w.category, RuntimeWarning)]
    assert 'CPU x86_64 AVX,AVX2,FMA3' in str(drift.message)
    monkeypatch.setattr(synthetic, '_renderer_versions', lambda: now)
    monkeypatch.setattr(synthetic, '_WARNED', set())
    with pytest.raises(FileExistsError, match='is stale'):
        generate_synthreid(root, domains=1, size='tiny')


def gamma_of_d1_changed(monkeypatch):
    """A change of the renderer that touches d1's images only."""
    renderer_changed(monkeypatch)
    real = synthetic._domain_style

    def changed(num_domains, seed, domain):
        style = dict(real(num_domains, seed, domain))
        if domain == 1:
            style['gamma'] *= 1.3
        return style

    monkeypatch.setattr(synthetic, '_domain_style', changed)


def test_a_renderer_change_with_the_same_versions_is_refused(
        tmp_path, monkeypatch):
    """Before, three canaries (d0 query, d3 gallery, one control) were
    compared, and a warning was the most a difference gave: a change of
    d1's tone curve reused the stale folder in silence."""
    root = str(tmp_path / 'synth')
    kwargs = dict(domains=4, size='tiny', style_control=True)
    generate_synthreid(root, **kwargs)
    gamma_of_d1_changed(monkeypatch)
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(root, **kwargs)
    message = str(error.value)
    assert 'is stale' in message and "'d1/bounding_box_train/" in message
    assert f'same numpy {np.__version__} and OpenCV {cv2.__version__}' \
        in message
    assert f'Delete {root!r}' in message


def test_a_renderer_change_in_one_camera_is_refused(tmp_path, monkeypatch):
    """The canaries were the first file of each split folder, all of one
    or two cameras: a change to another camera's rendering (its light)
    reused the stale folder without a word."""
    root = str(tmp_path / 'synth')
    kwargs = dict(domains=2, size='tiny')
    manifest = generate_synthreid(root, **kwargs)
    last = manifest['params']['num_cams']
    real = synthetic_render._camera_of

    def changed(seed, domain, cam, *args, **kwargs):
        camera = dict(real(seed, domain, cam, *args, **kwargs))
        if cam == last:
            camera['light'] = camera['light'] * 1.5
        return camera

    renderer_changed(monkeypatch)
    monkeypatch.setattr(synthetic_render, '_camera_of', changed)
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(root, **kwargs)
    assert 'is stale' in str(error.value)
    assert f'_c{last}s' in str(error.value)


def test_a_plan_change_is_refused(tmp_path, monkeypatch):
    """Same names, same counts, same canaries: only the plan digest sees
    that a file now stands for another image of its track."""
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(root, domains=1, size='tiny')
    assert len(manifest.get('plan_sha256', '')) == 64
    real = synthetic._plan_jobs

    def replanned(params):
        jobs, counts, ids = real(params)
        jobs[-1] = dict(jobs[-1], index=jobs[-1]['index'] + 1)
        return jobs, counts, ids

    monkeypatch.setattr(synthetic, '_plan_jobs', replanned)
    monkeypatch.setattr(synthetic, '_PLANS', {})
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(root, domains=1, size='tiny')
    message = str(error.value)
    assert 'another file plan' in message
    assert manifest['plan_sha256'][:12] in message
    assert f'Delete {root!r}' in message


def as_previous_release(root, keep_canary=None) -> dict:
    """Rewrite ``root``'s manifest as the previous release wrote it: no
    plan digest, no CPU in ``renderer``, and only the canaries that
    ``keep_canary`` accepts (all without it); returns it."""
    path = osp.join(root, synthetic.MANIFEST)
    with open(path) as f:
        old = json.load(f)
    old.pop('plan_sha256', None)
    del old['renderer']['cpu']
    if keep_canary is not None:
        old['canaries'] = [c for c in old['canaries'] if keep_canary(c)]
    with open(path, 'w') as f:
        json.dump(old, f)
    return old


def test_a_manifest_without_plan_digest_is_checked_by_its_files(
        tmp_path, monkeypatch):
    """A manifest of the previous release (no plan digest, three
    canaries, no CPU in ``renderer``) still loads; its files are compared
    with the plan and the canaries of this release with their files. The
    test kept ``renderer['cpu']``, which no such manifest has: with it
    dropped, the unrecorded CPU counted as another one and a stale folder
    (the d1 change below) was accepted without a word."""
    root = str(tmp_path / 'synth')
    kwargs = dict(domains=4, size='tiny')
    generate_synthreid(root, **kwargs)
    old = as_previous_release(
        root, lambda c: c['path'].split('/')[:2] in (
            ['d0', 'query'], ['d3', 'bounding_box_test']))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert generate_synthreid(root, **kwargs) == old
    # A file renamed (another camera; the counts stay) is seen.
    folder = osp.join(root, 'd2', 'bounding_box_train')
    name = sorted(os.listdir(folder))[0]
    renamed = name[:6] + '9' + name[7:]
    os.rename(osp.join(folder, name), osp.join(folder, renamed))
    with pytest.raises(FileExistsError) as error:
        generate_synthreid(root, **kwargs)
    message = str(error.value)
    assert f'missing: d2/bounding_box_train/{name}' in message
    assert f'not planned: d2/bounding_box_train/{renamed}' in message
    assert 'no plan digest' in message and f'Delete {root!r}' in message
    os.rename(osp.join(folder, renamed), osp.join(folder, name))
    # A renderer change in d1, which none of the old canaries shows.
    gamma_of_d1_changed(monkeypatch)
    with pytest.raises(
            FileExistsError,
            match="is stale or was written on another class of CPU.*'d1/"):
        generate_synthreid(root, **kwargs)


def test_an_old_vi_manifest_with_other_sysu_id_lists_is_refused(tmp_path):
    """Without a plan digest (a manifest of the previous release) the SYSU
    id lists are compared with the plan too: a ``val_id.txt`` that lists
    other identities splits the training set otherwise than this mmreid
    does, so the folder is refused, naming the file."""
    root = str(tmp_path / 'vi')
    kwargs = dict(modality='vi', size='tiny', img_size=(32, 16))
    generate_synthreid(root, **kwargs)
    old = as_previous_release(root)
    assert generate_synthreid(root, **kwargs) == old
    val = osp.join(root, 'SYSU-MM01', 'exp', 'val_id.txt')
    with open(val) as f:
        pids = f.read().strip().split(',')
    with open(val, 'w') as f:
        f.write(','.join(pids[1:]) + '\n')
    with pytest.raises(FileExistsError, match=f'{val} lists other '
                       'identities.*no plan digest'):
        generate_synthreid(root, **kwargs)


def test_vi_canaries_cover_every_split_and_sensor(tmp_path):
    manifest = generate_synthreid(
        str(tmp_path / 'vi'), modality='vi', size='tiny', img_size=(32, 16))
    split_of = {}
    for split in ('train', 'val', 'test'):
        with open(tmp_path / 'vi' / 'SYSU-MM01' / 'exp' /
                  f'{split}_id.txt') as f:
            split_of.update(
                (int(pid), split) for pid in f.read().strip().split(','))
    # Every camera that holds images of an id list (so both sensors).
    held = set()
    base = tmp_path / 'vi' / 'SYSU-MM01'
    for path in base.glob('cam*/*/*.jpg'):
        cam = int(path.parent.parent.name[3:])
        held.add((split_of[int(path.parent.name)], cam, cam
                  in SYSU_INFRARED_CAMS))
    assert {split for split, _, _ in held} == {'train', 'val', 'test'}
    assert {infrared for _, _, infrared in held} == {False, True}
    assert sorted((split_of[c['pid']], c['cam'], c['infrared'])
                  for c in manifest['canaries']) == sorted(held)


def remove_one(folder):
    name = sorted(os.listdir(folder))[0]
    os.remove(osp.join(folder, name))
    return name


def test_manifest_counts_are_compared_with_the_parsed_splits(tmp_path):
    root = str(tmp_path / 'synth')
    kwargs = dict(num_domains=2, size='tiny')
    manifest = generate_synthreid(root, domains=2, size='tiny')
    counts = manifest['counts']['d0']
    assert counts['bounding_box_test']['junk'] == 2
    assert counts['bounding_box_test']['distractors'] == 2
    # A deleted query image.
    num_query = counts['query']['images']
    remove_one(osp.join(root, 'd0', 'query'))
    with pytest.raises(RuntimeError) as error:
        SynthReID(root, domain=0, split='test', **kwargs)
    message = str(error.value)
    assert "synthreid-d0 split 'test'" in message
    assert f'query files: found {num_query - 1}, manifest lists ' \
           f'{num_query}' in message
    assert 'Delete' in message
    # The training split of that domain is intact and loads.
    assert len(SynthReID(root, domain=0, split='train', **kwargs)) == \
        counts['bounding_box_train']['images']
    # A stray image in another domain's training folder.
    train = osp.join(root, 'd1', 'bounding_box_train')
    name = sorted(os.listdir(train))[0]
    num_train = len(os.listdir(train))
    shutil.copy(
        osp.join(train, name), osp.join(train, '0001_c1s1_000001_00.jpg'))
    with pytest.raises(
            RuntimeError,
            match=f"split 'train'.*found "
            f'{num_train + 1}, manifest lists {num_train}'):
        SynthReID(root, domain=1, split='train', **kwargs)
    # A stray junk image changes no record but is still caught.
    gallery = osp.join(root, 'd1', 'bounding_box_test')
    shutil.copy(
        osp.join(train, name), osp.join(gallery, '-1_c1s1_000001_00.jpg'))
    with pytest.raises(RuntimeError, match='bounding_box_test files'):
        SynthReID(root, domain=1, split='test', **kwargs)


def test_vi_counts_are_compared_with_the_parsed_splits(tmp_path):
    from mmreid.datasets import SynthReIDVI
    root = str(tmp_path / 'vi')
    kwargs = dict(size='tiny', img_size=(32, 16))
    test = SynthReIDVI(root, split='test', **kwargs)
    manifest = generate_synthreid(
        root, modality='vi', size='tiny', img_size=(32, 16))
    images = manifest['counts']['SYSU-MM01']['images']
    assert sum(r['role'] == 'query'
               for r in map(test.get_data_info, range(len(test)))) == sum(
                   images['test'].get(f'cam{c}', 0) for c in (3, 6))
    with open(osp.join(root, 'SYSU-MM01', 'exp', 'test_id.txt')) as f:
        pid = int(f.read().split(',')[0])
    cams = [
        c for c in ('cam3', 'cam6')
        if osp.isdir(osp.join(root, 'SYSU-MM01', c, f'{pid:04d}'))
    ]
    remove_one(osp.join(root, 'SYSU-MM01', cams[0], f'{pid:04d}'))
    with pytest.raises(RuntimeError, match="synthreid-vi-all split 'test'"):
        SynthReIDVI(root, split='test', **kwargs)
    SynthReIDVI(root, split='train', **kwargs)


def test_progress_is_shown(tmp_path, capsys):
    root = str(tmp_path / 'synth')
    generate_synthreid(root, domains=1, size='tiny')
    total = sum(c['images'] for c in json.load(
        open(osp.join(root, 'synthreid.json')))['counts']['d0'].values())
    out = capsys.readouterr().out
    assert f'rendering {total} images' in out
    assert f'SynthReID: {total}/{total} images' in out
    # About ten lines, not one per image, in a log that is not a terminal.
    assert out.count('images, ') <= 11
    # A reused folder prints nothing.
    generate_synthreid(root, domains=1, size='tiny')
    assert capsys.readouterr().out == ''
    generate_synthreid(str(tmp_path / 'quiet'), size='tiny', progress=False)
    assert capsys.readouterr().out == ''


def test_a_relative_root_says_where_it_is_generated(tmp_path, monkeypatch,
                                                    capsys):
    """A SynthReID config run from another folder than the repository root
    rendered a second copy under <cwd>/data/ with only 'rendering N images
    into <temporary folder>': it still renders (generated on first use),
    and says why there."""
    import mmreid
    checkout = osp.dirname(osp.dirname(osp.abspath(mmreid.__file__)))
    monkeypatch.chdir(tmp_path)
    generate_synthreid(osp.join('data', 'synth'), domains=1, size='tiny')
    assert osp.isfile(tmp_path / 'data' / 'synth' / 'synthreid.json')
    out = capsys.readouterr().out
    assert out.startswith(
        "SynthReID: 'data/synth' was not found relative to the current "
        f"directory {str(tmp_path)!r}, so it is generated there, in "
        f"{str(tmp_path / 'data' / 'synth')!r}; mmreid's configs give "
        f'data_root relative to the repository root {checkout!r}: to use the '
        'copy there, stop and run from it, or give an absolute data_root.\n'
        'SynthReID: rendering ')
    # From the repository root, the quick start's first use: the usual
    # lines only.
    monkeypatch.chdir(checkout)
    assert synthetic._relative_root_notice(
        osp.join('data', 'synth'), osp.join(checkout, 'data', 'synth')) == ''


def temp_folders(parent):
    return sorted(n for n in os.listdir(parent) if '.tmp-' in n)


def dead_pid():
    proc = subprocess.run(
        [sys.executable, '-c', 'import os;print(os.getpid())'],
        capture_output=True,
        text=True,
        check=True)
    return int(proc.stdout)


def test_stale_temporary_folders_are_removed(tmp_path):
    host = socket.gethostname()
    dead = dead_pid()
    stale = [
        f'.synth.tmp-{host}-{dead}-{"a" * 32}',
        f'.synth.tmp-{dead}-{"b" * 32}',  # named by the first release
        f'.synth.tmp-other-host-{os.getpid()}-{"c" * 32}',
    ]
    # Being written by a live process of this host: kept.
    live = f'.synth.tmp-{host}-{os.getpid()}-{"d" * 32}'
    unrelated = [f'.other.tmp-{host}-{dead}-{"e" * 32}', 'notes']
    for name in stale + [live] + unrelated:
        (tmp_path / name).mkdir()
        (tmp_path / name / 'x.jpg').write_bytes(b'x')
    generate_synthreid(str(tmp_path / 'synth'), domains=1, size='tiny')
    assert temp_folders(tmp_path) == sorted([live, unrelated[0]])
    assert sorted(os.listdir(tmp_path)) == sorted([live, 'synth'] + unrelated)


KILLED_GENERATION = """
import sys, time
from mmreid.datasets import synthetic
real = synthetic._write_image
def slow(path, img):
    real(path, img)
    time.sleep(0.05)
synthetic._write_image = slow
synthetic.generate_synthreid(sys.argv[1], domains=1, size='tiny')
"""


def test_generation_killed_by_sigkill_is_cleaned_up(tmp_path):
    root = tmp_path / 'synth'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, '-c', KILLED_GENERATION,
         str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            temps = temp_folders(tmp_path)
            if temps and any(files
                             for _, _, files in os.walk(tmp_path / temps[0])):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    (temp, ) = temp_folders(tmp_path)
    assert not root.exists()
    manifest = generate_synthreid(str(root), domains=1, size='tiny')
    assert temp_folders(tmp_path) == []
    # Nothing else is left next to it either (the lock file is removed).
    assert os.listdir(tmp_path) == ['synth']
    assert manifest['params']['domains'] == 1


def test_one_process_renders_the_others_wait(tmp_path, monkeypatch):
    """Ranks that generate the same folder at once: one renders."""
    root = str(tmp_path / 'synth')
    real = synthetic._write_tree
    rendered = []

    def slow(folder, params, **kwargs):
        rendered.append(folder)
        time.sleep(0.5)  # the others arrive while this one writes
        return real(folder, params, **kwargs)

    monkeypatch.setattr(synthetic, '_write_tree', slow)
    results, errors = [], []

    def rank():
        try:
            results.append(generate_synthreid(root, domains=1, size='tiny'))
        except Exception as error:  # pragma: no cover
            errors.append(error)

    threads = [threading.Thread(target=rank) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(rendered) == 1
    assert len(results) == 3 and results[1] == results[0] == results[2]
    assert os.listdir(tmp_path) == ['synth']


def test_synthreid_vi_generates_on_first_use_and_parses_as_sysu(tmp_path):
    from mmreid.datasets import SynthReIDVI
    root = str(tmp_path / 'synth-vi')
    train = SynthReIDVI(root, split='train', size='tiny', img_size=(32, 16))
    test = SynthReIDVI(root, split='test', size='tiny', img_size=(32, 16))
    records = [train.get_data_info(i) for i in range(len(train))]
    # tiny: 4 train + 1 val ids, all used for training, relabelled 0..4.
    assert sorted({r['pid'] for r in records}) == list(range(5))
    assert {r['modality'] for r in records} == {0, 1}
    for r in records:
        cam = int(r['img_path'].split('cam')[-1].split('/')[0])
        assert r['modality'] == (1 if cam in (3, 6) else 0)
    roles = {test.get_data_info(i)['role'] for i in range(len(test))}
    assert roles == {'query', 'gallery'}
    assert train.metainfo['dataset_name'] == 'synthreid-vi'
    assert test.metainfo['dataset_name'] == 'synthreid-vi-all'


# ---------------------------------------------------------------------------
# SynthReID v2 options (issue 16): all opt-in, defaults unchanged
# ---------------------------------------------------------------------------
def ir_pairs(mode, num=300, **kwargs):
    """(visible luminance, infrared) of the upper garment of many ids."""
    lum, ir = [], []
    for pid in range(1, num + 1):
        attrs = identity_attributes(0, 0, pid, ir_mode=mode, **kwargs)
        r, g, b = attrs['colour']['upper']
        lum.append(0.299 * r + 0.587 * g + 0.114 * b)
        ir.append(attrs['ir']['upper'])
    return np.array(lum), np.array(ir), [
        identity_attributes(0, 0, pid, ir_mode=mode, **kwargs)
        for pid in range(1, num + 1)
    ]


def test_dye_mode_infrared_follows_the_dye():
    # Identities whose garments have nearly the same colour (the same dye,
    # jittered) have nearly the same infrared intensity in 'dye' mode, and
    # unrelated ones in 'hard' mode.
    def spread(mode, **kwargs):
        _, ir, attrs = ir_pairs(mode, **kwargs)
        colour = np.array([a['colour']['upper'] for a in attrs])
        i, j = np.triu_indices(len(attrs), 1)
        alike = np.abs(colour[i] - colour[j]).max(1) <= 8
        assert alike.sum() > 100
        return np.abs(ir[i] - ir[j])[alike]

    assert np.percentile(spread('dye'), 95) <= 16
    assert np.percentile(spread('hard'), 50) > 30

    # Not the grey image: the order of intensities does not follow the
    # luminance (alike or inverted dyes) unless ir_luminance says so.
    def discordant(**kwargs):
        lum, ir, _ = ir_pairs('dye', **kwargs)
        i, j = np.triu_indices(len(lum), 1)
        strong = (np.abs(lum[i] - lum[j]) > 30) & (np.abs(ir[i] - ir[j]) > 30)
        return np.mean(
            np.sign(lum[i] - lum[j])[strong] != np.sign(ir[i] - ir[j])[strong])

    assert discordant() > 0.2
    assert discordant(ir_luminance=1.0) < 0.02
    # One mapping per dataset seed: another seed maps the dyes anew.
    assert not np.allclose(
        synthetic_render.infrared_response(0)['palette'],
        synthetic_render.infrared_response(1)['palette'])


def test_dye_mode_shape_cues_survive_small_images():
    hard = [identity_attributes(0, 0, pid) for pid in range(1, 200)]
    dye = [identity_attributes(0, 0, pid, 'dye') for pid in range(1, 200)]
    # Same clothes, accessories and build in both modes.
    for a, b in zip(hard, dye):
        assert a['colour'] == b['colour'] and a['pattern'] == b['pattern']
        assert a['height'] == b['height'] and a['bag'] == b['bag']
    assert max(a['period'] for a in hard) < 0.08
    assert min(b['period'] for b in dye) >= 0.1
    # The same draw, mapped from 0.045-0.075 onto 0.10-0.16, and larger
    # prints.
    for a, b in zip(hard, dye):
        assert (b['period'] - 0.10) / 0.06 == pytest.approx(
            (a['period'] - 0.045) / 0.03)
        assert b['print_size'] > a['print_size']
    # A print shows from the back in 'dye' mode only.
    pid = next(p for p, a in enumerate(dye, 1) if a['pattern'] == 'logo')
    for mode, shows in (('hard', False), ('dye', True)):
        ident = identity_attributes(0, 0, pid, mode)
        plain = dict(ident, pattern='plain')
        view = dict(
            hp=110.0,
            cx=32.0,
            top=8.0,
            shear=0.0,
            mirror=1,
            facing='back',
            spread=0.05,
            swing=0.0)
        imgs = []
        for attrs in (ident, plain):
            img = np.zeros((128, 64, 3), np.uint8)
            synthetic_render._draw_person(img, attrs, view, attrs['colour'])
            imgs.append(img)
        assert (not np.array_equal(*imgs)) == shows, mode
    # Infrared cameras are sharper in 'dye' mode.
    for cam in (3, 6):
        for d in range(5):
            hard_cam = synthetic_render._camera(0, d, cam, True)
            dye_cam = synthetic_render._camera(0, d, cam, True, 'dye')
            assert dye_cam['lowres'] <= 1.5
            assert dye_cam['lowres'] - 1 == pytest.approx(
                (hard_cam['lowres'] - 1) / 4)


def test_ir_options_keep_the_defaults_and_validate(tmp_path):
    style = get_domain_styles(1, 0)[0]
    for infrared in (False, True):
        args = (0, 0, 17, 3, 1, (64, 32), style, infrared)
        default = render_image(*args)
        np.testing.assert_array_equal(
            render_image(*args, ir_mode='hard', ir_gap=0.0), default)
        assert not np.array_equal(render_image(*args, ir_mode='dye'), default)
    # ir_gap changes infrared images only.
    args = (0, 0, 17, 2, 1, (64, 32), style, False)
    np.testing.assert_array_equal(
        render_image(*args, ir_gap=1.0), render_image(*args))
    root = str(tmp_path / 'vi')
    manifest = generate_synthreid(
        root, modality='vi', size='tiny', img_size=(32, 16), ir_mode='hard')
    # Options at the first release's values are not recorded: folders
    # written before they existed keep loading, and keep their meaning.
    assert not set(synthetic.SYNTHREID_OPTIONS) & set(manifest['params'])
    # v2 is the default of modality='vi': such a folder is not reused for it.
    for v2 in (dict(), dict(ir_mode='dye')):
        with pytest.raises(FileExistsError,
                           match="ir_mode: 'hard' on disk, 'dye'"):
            generate_synthreid(
                root, modality='vi', size='tiny', img_size=(32, 16), **v2)
    v2_root = str(tmp_path / 'vi-v2')
    default = generate_synthreid(
        v2_root, modality='vi', size='tiny', img_size=(32, 16))
    assert default['params']['ir_mode'] == 'dye'
    # v2.2's value (issue 16's acceptance run chose it; v2 and v2.1: 0.5).
    assert default['params']['ir_luminance'] == 0.7
    assert generate_synthreid(
        v2_root,
        modality='vi',
        size='tiny',
        img_size=(32, 16),
        ir_mode='dye',
        ir_luminance=0.7) == default
    with pytest.raises(
            FileExistsError, match='ir_luminance: 0.7 on disk, 0.0 requested'):
        generate_synthreid(
            v2_root,
            modality='vi',
            size='tiny',
            img_size=(32, 16),
            ir_luminance=0.0)
    # A v2.1 folder (0.5) is not reused for the default either.
    v21_root = str(tmp_path / 'vi-v2.1')
    generate_synthreid(
        v21_root,
        modality='vi',
        size='tiny',
        img_size=(32, 16),
        ir_luminance=0.5)
    with pytest.raises(
            FileExistsError, match='ir_luminance: 0.5 on disk, 0.7 requested'):
        generate_synthreid(
            v21_root, modality='vi', size='tiny', img_size=(32, 16))
    with pytest.raises(ValueError, match='ir_mode must be one of'):
        generate_synthreid(root, modality='vi', size='tiny', ir_mode='soft')
    with pytest.raises(ValueError, match='ir_luminance needs'):
        generate_synthreid(
            root, modality='vi', size='tiny', ir_mode='hard', ir_luminance=0.5)
    with pytest.raises(ValueError, match='need modality="vi"'):
        generate_synthreid(root, size='tiny', ir_gap=0.5)
    with pytest.raises(ValueError, match='ir_gap must be >= 0'):
        generate_synthreid(root, modality='vi', size='tiny', ir_gap=-1)
    with pytest.raises(ValueError, match='style_control needs'):
        generate_synthreid(
            root, modality='vi', size='tiny', style_control=True)


@pytest.mark.parametrize(
    'options, match',
    [
        # NaN passed ``ir_gap < 0`` and rendered no gap; inf rendered noise.
        (dict(ir_gap=float('nan')), 'ir_gap must be a finite number, got nan'),
        (dict(ir_gap=float('inf')), 'ir_gap must be a finite number, got inf'),
        (dict(ir_gap='0.5'), r"ir_gap must be a number, got '0.5' \(str\)"),
        (dict(ir_contrast=True), r'ir_contrast must be a number, got True'),
        (dict(ir_luminance=np.bool_(True)), 'ir_luminance must be a number'),
        (dict(ir_luminance=2.0), r'ir_luminance must be in \[0, 1\], got 2.0'),
    ])
def test_float_options_must_be_finite_numbers(tmp_path, options, match):
    root = tmp_path / 'x'
    with pytest.raises(ValueError, match=match):
        generate_synthreid(str(root), modality='vi', size='tiny', **options)
    assert not root.exists()
    # A direct caller of the renderer meets the same rule.
    with pytest.raises(ValueError, match=match):
        render_image(0, 0, 1, 1, 0, infrared=True, ir_mode='dye', **options)


def test_style_control_must_be_a_bool(tmp_path):
    # A string is truthy: 'False' used to write the controls.
    with pytest.raises(
            ValueError,
            match=r"style_control must be True or False, got 'False' \(str"):
        generate_synthreid(
            str(tmp_path / 'x'), size='tiny', domains=2, style_control='False')
    assert not (tmp_path / 'x').exists()


def test_valid_float_options_resolve_as_before():
    # An int or a numpy float is a valid value and is recorded as a float
    # (the manifest's params are compared on load).
    params = synthetic._resolve_params(
        'tiny', 'vi', None, 0, (32, 16), {},
        dict(ir_gap=1, ir_contrast=np.float32(0.5), ir_luminance=1))
    assert params['ir_gap'] == 1.0 and type(params['ir_gap']) is float
    assert params['ir_contrast'] == 0.5
    assert type(params['ir_contrast']) is float
    assert params['ir_luminance'] == 1.0
    assert type(params['ir_luminance']) is float


def test_ir_gap_adds_the_sensor_model():
    size = (128, 64)

    def ir(index, gap):
        return render_image(
            0,
            0,
            40 + index,
            3,
            index,
            size,
            None,
            True,
            ir_mode='dye',
            ir_luminance=0.5,
            ir_gap=gap).astype(np.float64)

    for index in range(3):
        clean, sensed = ir(index, 0.0), ir(index, 1.0)
        # The tone curve, a power law with exponent 1 + 1.5 * gap ...
        toned = 255 * (clean / 255)**2.5
        residual = (sensed - toned)[:, :]
        inside = (toned > 40) & (toned < 215) & (sensed > 0) & (sensed < 255)
        # ... plus noise constant over blocks of 2x2 pixels (1/64 of the
        # height): both pixels of a block agree up to rounding, pixels of
        # neighbouring blocks do not.
        pairs_in = inside[:, 0::2] & inside[:, 1::2]
        pairs_out = inside[:, 1:-1:2] & inside[:, 2::2]
        within = (residual[:, 0::2] - residual[:, 1::2])[pairs_in]
        across = (residual[:, 1:-1:2] - residual[:, 2::2])[pairs_out]
        assert np.abs(within).max() <= 1.5
        assert across.std() > 15  # two independent draws of std 15
        # The noise std is 15 * gap.
        assert residual[inside].std() == pytest.approx(15, rel=0.25)
    # Half the gap: exponent 1.75, noise std 7.5, the same draws.
    clean, half = ir(0, 0.0), ir(0, 0.5)
    toned = 255 * (clean / 255)**1.75
    inside = (toned > 40) & (toned < 215)
    full = ir(0, 1.0) - 255 * (clean / 255)**2.5
    half_noise = (half - toned)[inside]
    assert np.corrcoef(half_noise, full[inside])[0, 1] > 0.9
    assert half_noise.std() == pytest.approx(7.5, rel=0.25)


def test_a_folder_of_the_first_ir_gap_is_refused(tmp_path):
    root = str(tmp_path / 'vi')
    kwargs = dict(modality='vi', size='tiny', img_size=(32, 16), ir_gap=0.5)
    manifest = generate_synthreid(root, **kwargs)
    assert manifest['params']['ir_gap_version'] == 2
    assert 'ir_gap_version' not in generate_synthreid(
        str(tmp_path / 'vi0'), modality='vi', size='tiny',
        img_size=(32, 16))['params']
    # A folder written by the first ir_gap (halo, blur, fixed-pattern
    # noise, warm backgrounds) recorded no version: it is not reused.
    path = osp.join(root, synthetic.MANIFEST)
    with open(path) as f:
        on_disk = json.load(f)
    del on_disk['params']['ir_gap_version']
    with open(path, 'w') as f:
        json.dump(on_disk, f)
    with pytest.raises(FileExistsError,
                       match='ir_gap_version: None on disk, 2 requested'):
        generate_synthreid(root, **kwargs)


def test_style_only_control(tmp_path):
    root = str(tmp_path / 'synth')
    kwargs = dict(num_domains=2, size='tiny', style_control=True)
    control = SynthReID(root, domain='d1-d0style', split='test', **kwargs)
    target = SynthReID(root, domain='d1', split='test', **kwargs)
    seen = SynthReID(root, domain='d0', split='test', **kwargs)

    def keys(ds):
        return [(osp.basename(r['img_path']), r['pid'], r['camid'], r['role'])
                for r in map(ds.get_data_info, range(len(ds)))]

    # The target's identities, cameras and files, in a seen style.
    assert keys(control) == keys(target)
    assert control.dataset_name == 'synthreid-d1-d0style'
    assert control.metainfo['domain_style'] == seen.metainfo['domain_style']
    assert target.metainfo['domain_style'] == 'unseen'
    manifest = generate_synthreid(
        root, domains=2, size='tiny', style_control=True)
    styles = get_domain_styles(2, 0)
    name = osp.basename(control.get_data_info(0)['img_path'])
    pid, cam = int(name[:4]), int(name[6])
    job = next(
        j for j in synthetic._plan_jobs(manifest['params'])[0]
        if j['path'] == f'd1-d0style/query/{name}')
    img = render_image(0, 1, pid, cam, job['index'], (128, 64), styles[0])
    synthetic._write_image(str(tmp_path / 'expected.jpg'), img)
    assert (tmp_path / 'expected.jpg').read_bytes() == open(
        control.get_data_info(0)['img_path'], 'rb').read()
    # The same scene as the target's file, in another style.
    other = cv2.imread(target.get_data_info(0)['img_path'])
    assert not np.array_equal(other,
                              cv2.imread(control.get_data_info(0)['img_path']))
    reverse = SynthReID(root, domain='d0-d1style', split='test', **kwargs)
    assert keys(reverse) == keys(seen)
    assert reverse.metainfo['domain_style'] == 'unseen'
    with pytest.raises(ValueError, match='test split only'):
        SynthReID(root, domain='d1-d0style', split='train', **kwargs)
    with pytest.raises(ValueError, match='style_control=True'):
        SynthReID(
            root,
            domain='d1-d0style',
            split='test',
            num_domains=2,
            size='tiny')


def test_per_domain_test_sizes(tmp_path):
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(
        root, domains=3, size='tiny', num_ids_test=[5, 1, 2])
    for name, num in (('d0', 5), ('d1', 1), ('d2', 2)):
        counts = manifest['counts'][name]
        assert counts['query']['ids'] == num
        assert SynthReID(root, domain=name, split='test', num_domains=3,
                         size='tiny', num_ids_test=[5, 1, 2]).num_pids == \
            num + 1  # and the distractors' pid 0
    with pytest.raises(ValueError, match='lists 2 counts for 3 domains'):
        generate_synthreid(
            str(tmp_path / 'x'), domains=3, size='tiny', num_ids_test=[5, 1])
    with pytest.raises(TypeError, match='only num_ids_test'):
        generate_synthreid(
            str(tmp_path / 'x'),
            domains=3,
            size='tiny',
            num_ids_train=[5, 1, 2])


def test_worker_processes_write_the_same_files(tmp_path):
    kwargs = dict(domains=2, size='tiny', img_size=(32, 16))
    one = generate_synthreid(str(tmp_path / 'one'), **kwargs)
    two = generate_synthreid(str(tmp_path / 'two'), num_workers=2, **kwargs)
    assert one == two
    assert tree_digest(tmp_path / 'one') == tree_digest(tmp_path / 'two')


def test_ir_contrast_is_an_affine_change_of_the_infrared_images(tmp_path):
    """``ir_contrast`` scales infrared grey levels around mid-grey (a
    modality gap that a per-modality normalisation of the first layer
    removes) and touches nothing else."""
    style = get_domain_styles(1, 0)[0]
    dye = dict(ir_mode='dye', ir_luminance=0.5)
    for cam, pid in ((3, 17), (6, 5)):
        args = (0, 0, pid, cam, 1, (64, 32), None, True)
        plain = render_image(*args, **dye).astype(np.float64)
        half = render_image(*args, **dye, ir_contrast=0.5).astype(np.float64)
        # From the definition: 128 + c * (x - 128), rounded.
        assert np.abs(half - (128 + 0.5 * (plain - 128))).max() <= 0.5
        assert half.std() == pytest.approx(0.5 * plain.std(), rel=0.05)
        assert plain.std() > 10  # not a flat image
        # It follows the sensor model when both are set.
        gap = render_image(*args, **dye, ir_gap=1.0).astype(np.float64)
        both = render_image(
            *args, **dye, ir_gap=1.0, ir_contrast=0.5).astype(np.float64)
        assert np.abs(both - (128 + 0.5 * (gap - 128))).max() <= 0.5
    # Visible images are unchanged.
    args = (0, 0, 17, 2, 1, (64, 32), style, False)
    np.testing.assert_array_equal(
        render_image(*args, **dye, ir_contrast=0.5),
        render_image(*args, **dye))
    root = str(tmp_path / 'vi')
    plain = generate_synthreid(
        root, modality='vi', size='tiny', img_size=(32, 16))
    assert 'ir_contrast' not in plain['params']  # the default, 1.0
    with pytest.raises(FileExistsError,
                       match='ir_contrast: 1.0 on disk, 0.5 requested'):
        generate_synthreid(
            root, modality='vi', size='tiny', img_size=(32, 16),
            ir_contrast=0.5)
    manifest = generate_synthreid(
        str(tmp_path / 'vi-half'),
        modality='vi',
        size='tiny',
        img_size=(32, 16),
        ir_contrast=0.5)
    assert manifest['params']['ir_contrast'] == 0.5
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match='ir_contrast must be in'):
            generate_synthreid(
                root, modality='vi', size='tiny', ir_contrast=bad)
    with pytest.raises(ValueError, match='need modality="vi"'):
        generate_synthreid(root, size='tiny', ir_contrast=0.5)


UNGUARDED_SCRIPT = """
import sys
from mmreid.datasets.synthetic import generate_synthreid
# No `if __name__ == '__main__':` - each spawned renderer re-runs this line.
generate_synthreid(sys.argv[1], domains=1, size='tiny', num_workers=2)
print('generated')
"""


def test_unguarded_script_with_renderers_fails_clearly(tmp_path):
    # Before, the renderers re-ran the script, waited for the lock their
    # parent held, and the parent waited for them: a hang, not an error.
    script = tmp_path / 'unguarded.py'
    script.write_text(UNGUARDED_SCRIPT)
    data = tmp_path / 'data'
    data.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, str(script),
                           str(data / 'synth')],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=180)
    assert proc.returncode != 0
    assert 'generated' not in proc.stdout
    assert 'rendering process died' in proc.stderr
    assert '__name__ == "__main__"' in proc.stderr
    assert 'num_workers=1' in proc.stderr
    # Nothing half-written: no dataset folder, no temporary folder.
    assert os.listdir(data) == []


def file_bytes(root):
    """Relative path -> content of every image under ``root``."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.jpg'):
                path = osp.join(folder, name)
                with open(path, 'rb') as f:
                    out[osp.relpath(path, root)] = f.read()
    return out


def file_pid(rel):
    """The pid of a Market-style or SYSU-style relative path."""
    parts = rel.split('/')
    if parts[0] == 'SYSU-MM01':
        return int(parts[2])
    return int(parts[-1].split('_')[0])


def test_added_test_ids_keep_every_other_file(tmp_path):
    # A larger test set must not move the training split: a folder with
    # added test identities holds every file of the folder without them,
    # byte for byte, and only test files of new identities besides.
    kwargs = dict(
        domains=3,
        size='tiny',
        style_control=True,
        img_size=(32, 16),
        num_ids_test=[2, 1, 2])
    base_root, big_root = str(tmp_path / 'base'), str(tmp_path / 'big')
    base = generate_synthreid(base_root, **kwargs)
    big = generate_synthreid(big_root, num_ids_test_added=[3, 0, 4], **kwargs)
    before, after = file_bytes(base_root), file_bytes(big_root)
    for rel, data in before.items():
        assert after.get(rel) == data, rel
    new = set(after) - set(before)
    assert new
    ids = {}
    for rel in new:
        folder = rel.split('/')[0]
        assert '/bounding_box_train/' not in rel, rel
        assert folder in ('d0', 'd2', 'd2-d0style', 'd0-d2style'), rel
        ids.setdefault(folder, set()).add(file_pid(rel))
    # The added identities are new ones, as many as asked, in the domain's
    # pid block; the controls show the same ones as their domain.
    block = 9999 // 3
    for folder, domain, count in (('d0', 0, 3), ('d2', 2, 4)):
        old = {file_pid(r) for r in before if r.startswith(folder + '/')}
        assert len(ids[folder]) == count and not ids[folder] & old
        assert all(domain * block < p <= (domain + 1) * block
                   for p in ids[folder])
    assert ids['d2-d0style'] == ids['d2'] and ids['d0-d2style'] == ids['d0']
    for name in ('d0', 'd2'):
        assert big['counts'][name]['query']['ids'] == \
            base['counts'][name]['query']['ids'] + len(ids[name])
    assert big['counts']['d1'] == base['counts']['d1']
    # The datasets read them: 2 + 3 test identities in d0 (and pid 0).
    assert SynthReID(
        big_root,
        domain='d0',
        split='test',
        num_domains=3,
        size='tiny',
        style_control=True,
        img_size=(32, 16),
        num_ids_test=[2, 1, 2],
        num_ids_test_added=[3, 0, 4]).num_pids == 2 + 3 + 1


def test_added_test_ids_are_none_of_the_taken():
    # 20 pids, 14 taken: the 6 added ones can only be the 6 free ones.
    assert _added_test_pids(
        0, 0, 1, 20, taken=list(range(1, 15)),
        count=6) == [15, 16, 17, 18, 19, 20]


def person_pids(plan, train):
    return {
        pid
        for rel, pid, _, _, kind in plan if kind == 'person'
        and rel.startswith('bounding_box_train/') == train
    }


def test_v2_1_added_test_ids_are_not_training_ids():
    # configs/_base_/datasets/synthreid.py: v2.1's d0 test split is v2's
    # 700 identities plus 1,050 added ones, and its training split is v2's;
    # no identity is in both.
    p = dict(
        SYNTHREID_PRESETS['demo'],
        seed=0,
        domains=4,
        num_ids_test=[700, 100, 100, 700],
        num_ids_test_added=[1050, 0, 0, 1050])
    plan = _plan_market(p, 0)
    train, test = person_pids(plan, True), person_pids(plan, False)
    assert len(train) == 150 and len(test) == 700 + 1050
    assert not train & test


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_domain_pids_are_in_their_block(seed):
    # The 4-digit pids 1-9999 are split into one block per domain; pid 0 is
    # Market's distractor label, so no identity has it.
    p = dict(SYNTHREID_PRESETS['demo'], seed=seed, domains=4)
    block = 9999 // 4
    for d in range(4):
        plan = _plan_market(p, d)
        pids = person_pids(plan, True) | person_pids(plan, False)
        assert d * block + 1 <= min(pids) and max(pids) <= (d + 1) * block


def test_added_test_ids_vi(tmp_path):
    kwargs = dict(modality='vi', size='tiny', img_size=(32, 16))
    base_root, big_root = str(tmp_path / 'base'), str(tmp_path / 'big')
    generate_synthreid(base_root, **kwargs)
    generate_synthreid(big_root, num_ids_test_added=5, **kwargs)
    before, after = file_bytes(base_root), file_bytes(big_root)
    for rel, data in before.items():
        assert after.get(rel) == data, rel

    def ids(root, split):
        path = osp.join(root, 'SYSU-MM01', 'exp', f'{split}_id.txt')
        with open(path) as f:
            return {int(p) for p in f.read().replace(',', ' ').split()}

    for split in ('train', 'val'):
        assert ids(big_root, split) == ids(base_root, split)
    added = ids(big_root, 'test') - ids(base_root, 'test')
    assert len(added) == 5 and ids(base_root, 'test') < ids(big_root, 'test')
    assert {file_pid(r) for r in set(after) - set(before)} == added
    # The SYSU-style test split reads them (infrared queries included).
    from mmreid.datasets import SynthReIDVI
    test = SynthReIDVI(
        big_root,
        split='test',
        size='tiny',
        img_size=(32, 16),
        overrides=dict(num_ids_test_added=5))
    assert added <= {test.get_data_info(i)['pid'] for i in range(len(test))}


def test_synthreid_vi_takes_preset_fields_as_keywords(tmp_path):
    """As SynthReID does; before, the keyword did not reach the generator
    and the folder was checked (or written) without it."""
    from mmreid.datasets import SynthReIDVI
    root = str(tmp_path / 'vi')
    kwargs = dict(split='test', size='tiny', img_size=(32, 16))
    test = SynthReIDVI(root, num_ids_test_added=2, **kwargs)
    with open(osp.join(root, synthetic.MANIFEST)) as f:
        assert json.load(f)['params']['num_ids_test_added'] == 2
    same = SynthReIDVI(root, overrides=dict(num_ids_test_added=2), **kwargs)
    assert len(same) == len(test)
    with pytest.raises(TypeError, match='num_ids_test_added is given twice'):
        SynthReIDVI(
            root,
            num_ids_test_added=2,
            overrides=dict(num_ids_test_added=2),
            **kwargs)
    # A field of the visible layout is refused, naming the known ones.
    with pytest.raises(TypeError, match=r"\['num_cams'\] for modality='vi'"):
        SynthReIDVI(root, num_cams=3, **kwargs)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        # Each used to be clamped or coerced by int() (or range() of a
        # negative count), silently.
        (dict(num_distractors=-3), 'num_distractors must be >= 0, got -3'),
        (dict(num_junk=-1), 'num_junk must be >= 0, got -1'),
        (dict(num_ids_train=2.7),
         r'num_ids_train must be an integer >= 1, got 2.7 \(float\)'),
        (dict(num_ids_train=2.0), r'num_ids_train must be an integer >= 1, '
         r'got 2.0 \(float\)'),
        (dict(num_ids_train='4'), r"num_ids_train must be an integer >= 1, "
         r"got '4' \(str\)"),
        (dict(imgs_per_cam=True), r'imgs_per_cam must be an integer >= 1, '
         r'got True \(bool\)'),
        (dict(num_cams=2.9),
         r'num_cams must be an integer in \[2, 9\], got 2.9'),
        (dict(num_ids_test=[1.5, 2, 3, 4]),
         r'num_ids_test\[0\] must be an integer >= 1, got 1.5'),
        (dict(num_ids_test_added=[0, 1, -1, 0]),
         r'num_ids_test_added\[2\] must be >= 0, got -1'),
        (dict(domains=2.5), r'domains must be an integer >= 1, got 2.5'),
        (dict(img_size=(128.9, 64)),
         r'img_size\[0\] must be an integer >= 16, got 128.9'),
        (dict(img_size=(128, )), r'img_size must be \(height, width\), two '
         r'integers >= 16, got \(128,\)'),
        (dict(seed=1.5), r'seed must be an integer, got 1.5 \(float\)'),
        (dict(seed='3'), r"seed must be an integer, got '3' \(str\)"),
    ])
def test_counts_and_seed_must_be_integers(tmp_path, kwargs, match):
    kwargs = dict(dict(size='tiny', domains=4, img_size=(32, 16)), **kwargs)
    with pytest.raises(ValueError, match=match):
        generate_synthreid(str(tmp_path / 'x'), progress=False, **kwargs)
    # Refused before anything is rendered.
    assert not os.listdir(tmp_path)


def test_a_fractional_seed_does_not_reuse_another_folder(tmp_path):
    root = str(tmp_path / 'synth')
    generate_synthreid(root, size='tiny', domains=1, img_size=(32, 16), seed=1)
    with pytest.raises(ValueError, match='seed must be an integer, got 1.5'):
        generate_synthreid(
            root, size='tiny', domains=1, img_size=(32, 16), seed=1.5)


def test_synthreid_checks_the_generator_arguments_first(tmp_path):
    with pytest.raises(ValueError, match='domains must be an integer >= 1'):
        SynthReID(
            str(tmp_path),
            domain=0,
            num_domains=2.0,
            size='tiny',
            lazy_init=True)


def test_numpy_integers_resolve_as_ints():
    # Valid values resolve exactly as before: the manifest's params are
    # compared on load, so a changed normalisation would refuse old folders.
    params = synthetic._resolve_params(
        'tiny', 'visible', np.int64(2), np.int32(3), (np.int64(32), 16),
        dict(
            num_ids_test=(np.int16(2), 3),
            num_cams=np.uint8(4),
            num_ids_test_added=[0, 0]), {})
    expected = dict(
        domains=2, seed=3, img_size=[32, 16], num_ids_test=[2, 3], num_cams=4)
    assert {k: params[k] for k in expected} == expected
    assert all(
        type(v) is int
        for v in (params['domains'], params['seed'], *params['img_size'],
                  *params['num_ids_test'], params['num_cams']))
    assert 'num_ids_test_added' not in params


@pytest.mark.parametrize(
    'kwargs, match',
    [
        # The limit is per domain: 9999 // 4 = 2499, not 9999.
        (dict(domains=4, num_ids_train=2497),
         r'num_ids_train \+ num_ids_test \+ num_ids_test_added = 2497 \+ 3 '
         r'\+ 0 = 2500 identities of domain d0 do not fit in its pids: '
         r'4-digit pids give each domain 9999 // domains = 2499 '
         r'\(domains=4\)'),
        (dict(domains=5000), r'= 4 \+ 3 \+ 0 = 7 identities of domain d0 .*'
         r'9999 // domains = 1 \(domains=5000\)'),
        (dict(domains=2, num_ids_test=[3, 4996]),
         r'= 4 \+ 4996 \+ 0 = 5000 identities of domain d1 .* = 4999'),
        (dict(modality='vi', num_ids_train=9990, num_ids_test_added=6),
         r'num_ids_train \+ num_ids_val \+ num_ids_test \+ num_ids_test_added '
         r'= 9990 \+ 1 \+ 3 \+ 6 = 10000 identities do not fit in the 9999 '
         r'4-digit pids'),
    ])
def test_pid_overflow_is_refused_when_resolved(tmp_path, kwargs, match):
    # Refused with the fields and the limit before anything is built: a
    # lazily built dataset used to fail at its first access only.
    with pytest.raises(ValueError, match=match):
        generate_synthreid(str(tmp_path / 'x'), size='tiny', **kwargs)
    assert not os.listdir(tmp_path)
    if kwargs.get('modality') != 'vi':
        kwargs = dict(kwargs)
        num_domains = kwargs.pop('domains')
        with pytest.raises(ValueError, match=match):
            SynthReID(
                str(tmp_path / 'x'),
                num_domains=num_domains,
                size='tiny',
                lazy_init=True,
                **kwargs)


def test_the_largest_pid_range_is_accepted():
    # 2499 identities fill d0's pids of four domains exactly.
    params = synthetic._resolve_params('tiny', 'visible', 4, 0, (32, 16),
                                       dict(num_ids_train=2496), {})
    assert params['num_ids_train'] == 2496


def test_added_test_ids_in_the_manifest(tmp_path):
    root = str(tmp_path / 'synth')
    kwargs = dict(domains=2, size='tiny', img_size=(32, 16))
    plain = generate_synthreid(root, **kwargs)
    # None added is the folder without the option (not recorded) ...
    assert 'num_ids_test_added' not in plain['params']
    assert generate_synthreid(
        root, num_ids_test_added=[0, 0], **kwargs) == plain
    assert generate_synthreid(root, num_ids_test_added=0, **kwargs) == plain
    # ... and a folder without them is no folder with them.
    with pytest.raises(
            FileExistsError,
            match=r'num_ids_test_added: None on disk, 2 request'):
        generate_synthreid(root, num_ids_test_added=2, **kwargs)
    other = generate_synthreid(
        str(tmp_path / 'other'), num_ids_test_added=[2, 0], **kwargs)
    assert other['params']['num_ids_test_added'] == [2, 0]


@pytest.mark.parametrize('added, error, match', [
    (-1, ValueError, 'num_ids_test_added must be >= 0'),
    ([1, 2, 3], ValueError, 'num_ids_test_added lists 3 counts for 2'),
    (4000, ValueError, r'= 1000 \+ 3 \+ 4000 = 5003 identities of domain d0 '
     r'do not fit in its pids: 4-digit pids give each domain 9999 // '
     r'domains = 4999 \(domains=2\)'),
])
def test_added_test_ids_errors(tmp_path, added, error, match):
    with pytest.raises(error, match=match):
        generate_synthreid(
            str(tmp_path / 'x'),
            domains=2,
            size='tiny',
            num_ids_test_added=added,
            num_ids_train=1000)
    assert not os.listdir(tmp_path) or os.listdir(tmp_path) == ['.x.lock']


def test_added_test_ids_vi_is_one_count(tmp_path):
    with pytest.raises(TypeError, match='may be lists'):
        generate_synthreid(
            str(tmp_path / 'x'),
            modality='vi',
            size='tiny',
            num_ids_test_added=[1, 2])


# ---------------------------------------------------------------------------
# Rendering rules stated in synthetic_render's docstrings
# ---------------------------------------------------------------------------
def test_rng_keeps_negative_keys_apart_from_positive_ones():
    # pid -1 (junk) and pid 1 must not share a stream.
    a = synthetic_render._rng(0, 6, 0, -1, 1, 0).random(4)
    b = synthetic_render._rng(0, 6, 0, 1, 1, 0).random(4)
    assert not np.array_equal(a, b)


def test_hard_mode_pattern_shows_in_infrared():
    for pid in range(1, 400):
        ir = identity_attributes(0, 0, pid)['ir']
        assert all(0 <= v <= 255 for v in ir.values()), pid
        assert abs(ir['pattern'] - ir['upper']) >= 30, pid


def test_dye_mode_infrared_follows_the_colour_jitter():
    # Two identities with the same dye: their infrared differs by their
    # luminance difference (ir_luminance=0: the dye mapping plus jitter).
    palette = synthetic_render._PALETTE
    lum, ir, attrs = ir_pairs('dye', num=200)
    dye = np.array([
        np.abs(palette - a['colour']['upper']).sum(1).argmin() for a in attrs
    ])
    i, j = np.triu_indices(len(attrs), 1)
    same = dye[i] == dye[j]
    assert same.sum() > 100
    assert np.abs((ir[i] - ir[j]) - (lum[i] - lum[j]))[same].max() <= 1
    assert np.abs(ir[i] - ir[j])[same].max() >= 5


def finish(img, cam=None, **style):
    """``_finish_image`` of a visible image: a camera without resolution
    loss (unless ``cam`` says) and a style without blur or noise (unless
    ``style`` says)."""
    camera = dict(synthetic_render._camera(0, 0, 1, False), lowres=1.0)
    camera.update(cam or {})
    look = dict(get_domain_styles(1, 0)[0], noise=0.0, blur=0.0)
    look.update(style)
    return synthetic_render._finish_image(img, camera, look,
                                          np.random.default_rng(1))


def bars(h=64, w=32):
    img = np.full((h, w, 3), 60, np.uint8)
    img[:, ::4] = 200
    img[::5] = 120
    return img


def test_style_gamma_blur_and_camera_resolution():
    img = bars()
    plain = finish(img, gamma=1.0).astype(np.float64)
    # A gamma above 1 darkens the mid-tones: 255 * (v / 255) ** gamma.
    dark = finish(img, gamma=1.25).astype(np.float64)
    assert np.abs(dark - 255 * (plain / 255)**1.25).max() <= 0.5
    assert dark.mean() < plain.mean() - 5
    # blur is the Gaussian sigma at 128 px height: sigma 1 at 64 px.
    sharp = finish(img)
    np.testing.assert_array_equal(
        finish(img, blur=2.0), cv2.GaussianBlur(sharp, (0, 0), 1.0))
    # A camera with 1.4x resolution loss (an infrared 'dye' camera's
    # range) loses detail.
    assert not np.array_equal(finish(img, dict(lowres=1.4)), sharp)


def test_render_image_refuses_what_it_would_ignore():
    args = (0, 0, 17, 3, 1, (64, 32), None, True)
    with pytest.raises(ValueError, match=r'ir_contrast must be in \(0, 1\]'):
        render_image(*args, ir_contrast=0)
    with pytest.raises(ValueError, match='ir_luminance needs'):
        render_image(*args, ir_mode='hard', ir_luminance=0.5)


def test_strangers_are_no_identity_of_their_domain(monkeypatch):
    drawn = []
    real = synthetic_render._draw_person
    monkeypatch.setattr(
        synthetic_render, '_draw_person',
        lambda img, ident, *a: drawn.append(ident) or real(img, ident, *a))
    style = get_domain_styles(1, 0)[0]
    strangers = []
    for index in range(4):
        drawn.clear()
        render_image(0, 0, 0, 1, index, (64, 32), style, kind='distractor')
        strangers.append(drawn[-1])  # after a passer-by, if any
    people = [identity_attributes(0, 0, pid) for pid in range(1, 300)]
    for stranger in strangers:
        assert stranger not in people


def test_distractor_and_junk_counts_are_the_ones_asked_for(tmp_path):
    """num_distractors pid-0 boxes and num_junk pid -1 boxes are written,
    each count for its own kind, and the manifest's per-split counts say
    so: a swap of the two went unseen while the tiny preset asks for as
    many of each, and Market's rules treat them differently (junk is
    dropped, distractors stay in the gallery)."""
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(
        root,
        domains=1,
        size='tiny',
        img_size=(32, 16),
        num_distractors=3,
        num_junk=1,
        progress=False)
    gallery = market_names(root, 'd0', 'bounding_box_test')
    assert len([n for n in gallery if n.startswith('0000_')]) == 3
    assert len([n for n in gallery if n.startswith('-1_')]) == 1
    counts = manifest['counts']['d0']['bounding_box_test']
    assert counts['distractors'] == 3 and counts['junk'] == 1
    # ``ids`` counts identities: neither the distractor label 0 nor junk.
    test_pids = {int(n.split('_')[0]) for n in gallery} - {0, -1}
    assert counts['ids'] == len(test_pids) == 3
    test = SynthReID(
        root,
        domain=0,
        num_domains=1,
        split='test',
        size='tiny',
        img_size=(32, 16),
        num_distractors=3,
        num_junk=1)
    roles = [test.get_data_info(i)['role'] for i in range(len(test))]
    assert roles.count('gallery') == len(gallery) - 1


def test_plan_file_names_are_unique_with_many_boxes():
    """Every planned file has its own name, however many distractor and
    junk boxes a domain has: two boxes with one name would overwrite each
    other and the folder would hold fewer images than its manifest."""
    params = synthetic._resolve_params(
        'tiny', 'visible', 1, 0, (32, 16),
        dict(num_distractors=3000, num_junk=3000))
    paths = [f[0] for f in _plan_market(params, 0)]
    assert len(paths) == len(set(paths))


def test_tiny_vi_counts_are_those_in_the_docs(tmp_path):
    """docs/datasets.md shows the summary of the tiny visible-infrared set:
    test query 3 ids / 8 images / 2 cams, gallery 3 / 20 / 4, training
    5 ids / 40 images / 6 cams (28 visible, 12 infrared); the manifest's
    visible and infrared counts are those of the cameras 1, 2, 4, 5 and
    3, 6."""
    from mmreid.datasets import SynthReIDVI
    root = str(tmp_path / 'synth-vi')
    test = SynthReIDVI(root, split='test', size='tiny', img_size=(32, 16))
    train = SynthReIDVI(root, split='train', size='tiny', img_size=(32, 16))

    def summary(dataset, role):
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        infos = [i for i in infos if i['role'] == role]
        return (len({i['pid'] for i in infos}), len(infos),
                len({i['camid'] for i in infos}))

    assert summary(test, 'query') == (3, 8, 2)
    assert summary(test, 'gallery') == (3, 20, 4)
    assert summary(train, 'train') == (5, 40, 6)
    modalities = [
        train.get_data_info(i)['modality'] for i in range(len(train))
    ]
    assert (modalities.count(0), modalities.count(1)) == (28, 12)
    files = {
        cam: len([
            f for _, _, names in os.walk(
                osp.join(root, 'SYSU-MM01', f'cam{cam}')) for f in names
        ])
        for cam in range(1, 7)
    }
    counts = synthetic._read_manifest(root)['counts']['SYSU-MM01']
    assert counts['visible'] == sum(files[c] for c in (1, 2, 4, 5))
    assert counts['infrared'] == sum(files[c] for c in (3, 6))


def test_a_plan_that_fills_the_pid_range_is_drawn():
    """Identities that fill a domain's pids exactly (accepted when the
    parameters are resolved) are also drawn, every pid of the range used
    once: the planner must not refuse what the parameter check accepts."""
    # Nine domains own 9999 // 9 = 1111 pids each; d1 holds 1111-2222.
    params = synthetic._resolve_params('tiny', 'visible', 9, 0, (32, 16),
                                       dict(num_ids_train=1108), {})
    plan = _plan_market(params, 1)
    pids = {f[1] for f in plan if f[4] == 'person'}
    assert pids == set(range(1112, 2223))
    # SYSU-MM01 style: 533 identities fill its pids 1-533.
    params = synthetic._resolve_params('tiny', 'vi', None, 0, (32, 16),
                                       dict(num_ids_train=529), {})
    jobs, _, ids = synthetic._plan_jobs(params)
    assert sorted(ids['train'] + ids['val'] + ids['test']) == list(
        range(1, 534))


@pytest.mark.parametrize('field, value',
                         [('path', 'SYSU-MM01/cam1/0001/0099.jpg'),
                          ('domain', 1), ('style_domain', 0), ('pid', 9998),
                          ('cam', 4), ('index', 7), ('kind', 'junk'),
                          ('infrared', True)])
def test_the_plan_digest_sees_every_label(field, value):
    """A file of the plan that now stands for another label (the docs:
    its name, domain, pid, camera, image index and kind; and the sensor
    and style it is rendered with) changes the plan digest, so a folder
    written under the old plan is refused rather than reused."""
    params = synthetic._resolve_params('tiny', 'vi', None, 0, (32, 16), {})
    jobs, _, ids = synthetic._plan_jobs(params)
    first = jobs[0]
    assert first['cam'] == 1 and not first['infrared']
    changed = [dict(first, **{field: value})] + jobs[1:]
    assert synthetic._plan_digest(changed, ids) != synthetic._plan_digest(
        jobs, ids)


def test_the_plan_digest_sees_the_sysu_id_lists():
    """The same files with identities moved between the SYSU-MM01 id lists
    (another train/test split, which the parser reads from exp/*_id.txt)
    change the plan digest: the docs say it holds the id lists."""
    params = synthetic._resolve_params('tiny', 'vi', None, 0, (32, 16), {})
    jobs, _, ids = synthetic._plan_jobs(params)
    moved = dict(ids, val=ids['test'][:1], test=ids['val'] + ids['test'][1:])
    assert synthetic._plan_digest(jobs, moved) != synthetic._plan_digest(
        jobs, ids)


def test_nine_cameras_are_accepted_and_ten_refused():
    """num_cams takes 2-9 (Market-1501 names have a one-digit camera):
    nine cameras must be accepted, and drawn, not refused as too many."""
    params = synthetic._resolve_params('tiny', 'visible', 1, 0, (32, 16),
                                       dict(num_cams=9, num_ids_test=40))
    assert params['num_cams'] == 9
    cams = {f[2] for f in _plan_market(params, 0)}
    assert cams == set(range(1, 10))
    with pytest.raises(ValueError, match=r'num_cams must be .*\[2, 9\]'):
        synthetic._resolve_params('tiny', 'visible', 1, 0, (32, 16),
                                  dict(num_cams=10))


def test_visible_defaults_to_four_domains():
    """Without ``domains`` a visible SynthReID has four (d0-d3, the last
    one the unseen style), as documented; 'vi' has one."""
    params = synthetic._resolve_params('tiny', 'visible', None, 0, (32, 16),
                                       {})
    assert params['domains'] == 4
    assert synthetic._resolve_params('tiny', 'vi', None, 0, (32, 16),
                                     {})['domains'] == 1


def test_generated_files_are_rendered_with_the_ir_options(tmp_path):
    """The files of a 'vi' folder are drawn with the options it was asked
    for (ir_mode, ir_luminance, ir_gap, ir_contrast), as recorded in its
    manifest: options that stop at the manifest would label a folder with
    a modality gap it does not have."""
    options = dict(
        ir_mode='dye', ir_luminance=0.25, ir_gap=1.0, ir_contrast=0.5)
    root = str(tmp_path / 'vi')
    manifest = generate_synthreid(
        root, modality='vi', size='tiny', img_size=(32, 16), **options)
    for key, value in options.items():
        assert manifest['params'][key] == value
    style = get_domain_styles(1, 0)[0]
    sysu = osp.join(root, 'SYSU-MM01')
    for cam in (1, 3):
        pid = sorted(os.listdir(osp.join(sysu, f'cam{cam}')))[0]
        path = osp.join(sysu, f'cam{cam}', pid, '0001.jpg')
        args = (0, 0, int(pid), cam, 0, (32, 16), style, cam == 3)
        expected = synthetic._encode_image(path,
                                           render_image(*args, **options))
        with open(path, 'rb') as f:
            assert f.read() == expected, path
    # The options change the infrared file (so the check above can fail).
    default = render_image(*args, ir_mode='dye', ir_luminance=0.25)
    assert synthetic._encode_image(path, default) != expected


def test_another_seed_draws_other_identities_and_splits():
    """The seed draws the identities, their split and their cameras too,
    not only the pixels: another seed must give another benchmark (other
    test identities, other file names), for 'visible' and 'vi' alike."""
    def visible(seed):
        params = synthetic._resolve_params('tiny', 'visible', 2, seed,
                                           (32, 16), {})
        plan = _plan_market(params, 1)
        return ({f[1]
                 for f in plan if f[0].startswith('query/')},
                {f[0]
                 for f in plan})

    def vi(seed):
        params = synthetic._resolve_params('tiny', 'vi', None, seed,
                                           (32, 16), {})
        return synthetic._plan_jobs(params)[2]

    assert visible(0) == visible(0)
    assert visible(0)[0] != visible(1)[0]
    assert visible(0)[1] != visible(1)[1]
    assert vi(0) == vi(0)
    assert vi(0)['test'] != vi(1)['test']


def test_infrared_images_take_no_domain_style():
    """An infrared image is finished by the infrared sensor, not by a
    domain's colour style (``_finish_image``): the style a caller passes
    must not change it, or the 'vi' infrared files would carry a visible
    camera look."""
    styles = get_domain_styles(2, 0)
    args = (0, 0, 5, 3, 0, (32, 16))
    plain = render_image(*args, None, True, ir_mode='dye', ir_luminance=0.5)
    for style in styles:
        np.testing.assert_array_equal(
            render_image(
                *args, style, True, ir_mode='dye', ir_luminance=0.5), plain)


def test_files_hold_the_rendered_rgb_image(tmp_path):
    """A written file decodes (OpenCV reads BGR) to the RGB image the
    renderer drew, up to JPEG loss: with red and blue swapped the unseen
    domain's sodium-lamp cast would turn blue on disk, and no canary (taken
    before encoding) would see it."""
    root = str(tmp_path / 'synth')
    generate_synthreid(
        root,
        domains=2,
        size='tiny',
        img_size=(64, 32),
        num_ids_train=1,
        num_distractors=0,
        num_junk=0,
        progress=False)
    style = get_domain_styles(2, 0)[1]
    assert style['look'] == 'unseen'
    folder = osp.join(root, 'd1', 'query')
    name = sorted(os.listdir(folder))[0]
    m = MARKET_NAME.match(name)
    pid, cam = int(m.group(1)), int(m.group(2))
    drawn = render_image(0, 1, pid, cam, 0, (64, 32), style).astype(float)
    disk = cv2.cvtColor(cv2.imread(osp.join(folder, name)),
                        cv2.COLOR_BGR2RGB).astype(float)
    # The cast: red well above blue in the drawn image.
    assert drawn[..., 0].mean() - drawn[..., 2].mean() > 10
    assert np.abs(disk - drawn).mean() < 6


def test_synthreid_vi_indoor_test_split_loads(tmp_path):
    """mode='indoor' keeps the gallery of the indoor cameras 1 and 2; its
    count check must expect those, not every visible camera, or the
    indoor protocol is refused as a damaged folder."""
    from mmreid.datasets import SynthReIDVI
    root = str(tmp_path / 'synth-vi')
    kwargs = dict(split='test', size='tiny', img_size=(32, 16))
    indoor = SynthReIDVI(root, mode='indoor', **kwargs)
    every = SynthReIDVI(root, mode='all', **kwargs)

    def cams(dataset, role):
        return sorted(
            i['camid'] for i in map(dataset.get_data_info, range(len(
                dataset))) if i['role'] == role)

    # camid is 0-based: cameras 1 and 2.
    assert set(cams(indoor, 'gallery')) <= {0, 1}
    assert len(cams(indoor, 'gallery')) < len(cams(every, 'gallery'))
    assert cams(indoor, 'query') == cams(every, 'query')


def test_a_style_only_control_has_an_empty_training_folder(tmp_path):
    """A style-only control holds a test split only: its
    bounding_box_train folder exists (the Market-1501 layout) and is
    empty, as its manifest counts say."""
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(
        root, domains=2, size='tiny', img_size=(32, 16), style_control=True,
        progress=False)
    for name in ('d1-d0style', 'd0-d1style'):
        assert os.listdir(osp.join(root, name, 'bounding_box_train')) == []
        assert manifest['counts'][name]['bounding_box_train']['images'] == 0
        assert os.listdir(osp.join(root, name, 'query'))
