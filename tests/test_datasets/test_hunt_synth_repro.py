"""Wrong-number hunt: reproducible generation and loading of SynthReID.

docs/datasets.md ("SynthReID") promises that a folder holds the same bytes
for the same parameters and seed whatever the number of rendering
processes, that a folder of other parameters is refused, and that "a
folder cannot be stale or partial". The checks here use the smallest
folders (``size='tiny'``, 32x16 images) and compare with what the files
on disk are, counted here, not with mmreid's own bookkeeping.
"""
import hashlib
import os
import os.path as osp
import random
import re
import shutil

import numpy as np
import pytest
import torch

from mmreid.datasets import synthetic
from mmreid.datasets.synthetic import generate_synthreid
from mmreid.datasets.synthetic_store import MANIFEST
from ..fixtures.processes import load_tool

TOOL = 'tools/dataset_converters/generate_synthreid.py'
#: The smallest folders: the tiny preset at 32x16.
TINY = dict(size='tiny', img_size=(32, 16), progress=False)


def tree_sha256(root):
    """{relative path: sha256 of its bytes} of every file under ``root``."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                found[osp.relpath(path, root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return found


# ---------------------------------------------------------------------------
# Defects
# ---------------------------------------------------------------------------
def test_the_tool_does_not_print_counts_of_a_partial_folder(tmp_path):
    """A folder that lost an image is refused (or completed) by the tool.

    The user runs ``generate_synthreid.py ROOT --size tiny`` on a folder
    whose gallery lost a file (a partial copy, an interrupted rsync, a
    clean-up gone wrong). The tool's promise is "Write a SynthReID dataset
    and print its counts"; docs/datasets.md says "a folder cannot be stale
    or partial". It prints ``bounding_box_test: images 12`` while 11 files
    are there, and ``--check`` would train and evaluate the proxy on the
    partial folder and print its rank-1/mAP. Right: refuse naming the
    folder, or render the missing file again, so that the counts printed
    are those of the files.
    """
    tool = load_tool(TOOL)
    root = str(tmp_path / 'synth')
    generate_synthreid(root, domains=1, **TINY)
    gallery = osp.join(root, 'd0', 'bounding_box_test')
    person = sorted(n for n in os.listdir(gallery) if n[0] not in '-0')
    deleted = osp.join(gallery, person[0])
    os.remove(deleted)
    argv = [root, '--size', 'tiny', '--domains', '1', '--img-size', '32', '16']
    try:
        tool.main(argv)
    except (FileExistsError, RuntimeError, SystemExit) as error:
        assert root in str(error)
    else:
        # Completed instead of refused: the file is back.
        assert osp.isfile(deleted), (
            f'{deleted} is missing, yet the tool printed the manifest '
            f'counts as those of {root}')


def test_check_labels_a_negative_train_domain_as_trained(tmp_path, capsys):
    """``--train-domains -1`` trains on the unseen-style domain: its row says
    so, or the index is refused.

    The SynthReID datasets take ``domain=-1`` for the last (unseen-style)
    domain, so a user asks the calibration proxy to train there with
    ``--train-domains -1``. The proxy trains on ``d1`` (its log says
    "trained on ['d1']") and then prints ``d1 ... (held-out style)``: the
    row of the style it trained on is labelled as a held-out style, so a
    reader takes an in-style score for a generalisation score. Right:
    ``d1 ... (train style)`` (and ``d0 ... (held-out style)``), or a clear
    refusal of the negative index.
    """
    tool = load_tool(TOOL)
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(root, domains=2, num_ids_train=30, **TINY)
    try:
        tool.check(root, manifest, [-1], epochs=1)
    except (ValueError, SystemExit) as error:
        assert '-1' in str(error)
        return
    out = capsys.readouterr().out
    assert "trained on ['d1']" in out
    rows = {
        line.split()[0]: line
        for line in out.splitlines() if line.startswith(('d0 ', 'd1 '))
    }
    assert rows['d0'].endswith('(held-out style)')
    assert rows['d1'].endswith('(train style)'), rows['d1']


def test_check_on_the_tiny_preset_says_why_it_cannot_train(tmp_path, capsys):
    """``--size tiny --check`` trains, or says the training set is too
    small.

    The quickest try of the calibration proxy is the smallest preset. Its
    two training domains hold fewer images than the proxy's batch of 64,
    so ``len(xt) // 64`` is 0 steps and torch raises "Expected positive
    integer total_steps, but got 0" after the folder was written: nothing
    names the training set or what it needs. Right: the proxy trains (a
    smaller last batch) and prints its table, or it refuses naming the
    number of training images it found.
    """
    tool = load_tool(TOOL)
    root = str(tmp_path / 'synth')
    argv = [
        root, '--size', 'tiny', '--img-size', '32', '16', '--check',
        '--epochs', '1'
    ]
    try:
        tool.main(argv)
    except (ValueError, SystemExit) as error:
        num_train = sum(
            len(os.listdir(osp.join(root, d, 'bounding_box_train')))
            for d in ('d0', 'd1'))
        assert num_train < 64
        assert str(num_train) in str(error), str(error)
    else:
        assert 'rank-1' in capsys.readouterr().out


def test_a_symlinked_empty_data_root_is_written_through_the_link(
        tmp_path, monkeypatch):
    """``data_root`` linked to an empty folder on a larger disk.

    A user makes ``/scratch/synth`` and links ``data/synthreid`` to it,
    then trains. The generator renders the whole tree beside the link (on
    the small disk), then renames it onto the link, which fails:
    ``NotADirectoryError: [Errno 20] Not a directory: '.synth.tmp-...' ->
    '.../synth'``. The rendering is lost and the message names neither the
    link nor what to do. Right: render into the link's target (the rename
    into an empty folder is atomic there too), or refuse before rendering
    with a message that names the link.
    """
    target = tmp_path / 'scratch' / 'synth'
    target.mkdir(parents=True)
    (tmp_path / 'data').mkdir()
    link = tmp_path / 'data' / 'synth'
    link.symlink_to(target)
    real = synthetic._write_tree
    rendered = []

    def counting(folder, params, **kwargs):
        rendered.append(folder)
        return real(folder, params, **kwargs)

    monkeypatch.setattr(synthetic, '_write_tree', counting)
    try:
        generate_synthreid(str(link), domains=1, **TINY)
    except (OSError, ValueError) as error:
        assert not rendered and 'link' in str(error), str(error)
    else:
        assert osp.islink(link)
        assert osp.isfile(target / MANIFEST)


def test_a_temp_folder_removed_while_rendering_is_not_renamed_half_full(
        tmp_path, monkeypatch):
    """The generation's temporary folder disappears half way.

    Another process removes the hidden ``.synth.tmp-...`` folder while this
    one renders: a node whose ``flock`` is local to it (a shared file
    system mounted with node-local locks) and that therefore takes the
    lock too and sweeps "stale" temporary folders of other hosts
    (``remove_stale_temps(..., other_hosts=True)``), or a user cleaning
    hidden folders. The renderer re-creates the folders it writes into
    (``os.makedirs(..., exist_ok=True)`` per image), goes on, writes the
    manifest with every planned file counted and renames the half-full
    tree into place: ``synthreid.json`` lists 38 images, 18 are there.
    docs/datasets.md: "the tree is written to a hidden ... sibling and
    renamed into place", "a folder cannot be stale or partial". Right:
    the generation fails (nothing renamed), or the folder holds every
    file its manifest lists.
    """
    root = str(tmp_path / 'synth')
    real = synthetic._write_image
    written = []

    def swept(path, img):
        real(path, img)
        written.append(path)
        if len(written) == 20:
            temp = path[:path.index(os.sep + 'd0' + os.sep)]
            assert osp.basename(temp).startswith('.synth.tmp-')
            shutil.rmtree(temp)

    monkeypatch.setattr(synthetic, '_write_image', swept)
    try:
        manifest = generate_synthreid(root, domains=1, **TINY)
    except OSError:
        assert not osp.exists(root)
        return
    listed = sum(c['images'] for c in manifest['counts']['d0'].values())
    images = [p for p in tree_sha256(root) if p.endswith('.jpg')]
    assert len(images) == listed, (
        f'{root} holds {len(images)} images, its manifest lists {listed}')


# ---------------------------------------------------------------------------
# Test gaps: behaviour that is right and that a printed number rests on
# ---------------------------------------------------------------------------
def test_generation_leaves_the_global_random_state_untouched(tmp_path):
    """Generating a folder neither reads nor advances the global RNGs.

    A training script seeds numpy, ``random`` and torch, then builds its
    datasets: the first run generates the folder, later runs find it. If
    generation drew from (or reseeded) a global stream, the first run's
    shuffling and initialisation would differ from every rerun of the same
    seed. Every image has its own ``Generator`` (docs/datasets.md), so the
    global states are unchanged, and the files do not depend on them.
    """
    kwargs = dict(domains=2, num_ids_test_added=1, **TINY)
    np.random.seed(1)
    random.seed(1)
    torch.manual_seed(1)
    states = (np.random.get_state()[1].copy(), random.getstate(),
              torch.get_rng_state().clone())
    generate_synthreid(str(tmp_path / 'a'), **kwargs)
    generate_synthreid(
        str(tmp_path / 'vi'), modality='vi', ir_gap=0.5, **TINY)
    np.testing.assert_array_equal(np.random.get_state()[1], states[0])
    assert random.getstate() == states[1]
    assert torch.equal(torch.get_rng_state(), states[2])
    # Other global seeds, same files.
    np.random.seed(2)
    random.seed(2)
    torch.manual_seed(2)
    generate_synthreid(str(tmp_path / 'b'), **kwargs)
    assert tree_sha256(tmp_path / 'a') == tree_sha256(tmp_path / 'b')


def test_vi_files_do_not_depend_on_the_number_of_workers(tmp_path):
    """SynthReID-vi rendered by one process or by two: the same bytes.

    docs/datasets.md: "the files do not depend on rendering order or on
    ``num_workers``". The visible variant is tested elsewhere; the
    infrared sensor model (``ir_gap``) draws noise from each image's
    stream, and the added test identities have a stream of their own, so
    they are checked here too: every file (images, SYSU id lists,
    manifest) has the same sha256.
    """
    kwargs = dict(
        modality='vi',
        ir_gap=0.5,
        ir_contrast=0.7,
        num_ids_test_added=1,
        **TINY)
    one = generate_synthreid(str(tmp_path / 'one'), **kwargs)
    two = generate_synthreid(str(tmp_path / 'two'), num_workers=2, **kwargs)
    assert one == two
    files = tree_sha256(tmp_path / 'one')
    assert files == tree_sha256(tmp_path / 'two')
    images = [p for p in files if p.endswith('.jpg')]
    counts = one['counts']['SYSU-MM01']
    assert len(images) == counts['visible'] + counts['infrared']


@pytest.fixture(scope='module')
def vi_folder(tmp_path_factory):
    """A tiny SynthReID-vi folder and the sha256 of its files."""
    root = str(tmp_path_factory.mktemp('vi') / 'synth')
    generate_synthreid(root, modality='vi', **TINY)
    return root, tree_sha256(root)


@pytest.mark.parametrize(
    'changed, key',
    [(dict(seed=1), 'seed'), (dict(ir_gap=0.5), 'ir_gap'),
     (dict(img_size=(64, 32)), 'img_size'),
     (dict(ir_contrast=0.5), 'ir_contrast'),
     (dict(ir_mode='hard'), 'ir_mode'),
     (dict(num_ids_train=5), 'num_ids_train'),
     (dict(num_ids_test_added=1), 'num_ids_test_added')])
def test_a_vi_folder_of_other_parameters_is_refused(vi_folder, changed, key):
    """``SynthReIDVI`` on a folder written with other parameters.

    Each generator parameter changes the files (the images, or the
    identities and splits), so a folder written with another value is
    refused, naming the parameter, and left byte for byte as it was: never
    reused as if it were the requested one (docs/datasets.md: "a folder
    with ... other parameters is refused with both named").
    """
    from mmreid.datasets import SynthReIDVI
    root, files = vi_folder
    kwargs = dict(size='tiny', img_size=(32, 16))
    kwargs.update(changed)
    with pytest.raises(FileExistsError) as error:
        SynthReIDVI(root, split='test', **kwargs)
    assert key in str(error.value) and root in str(error.value)
    assert tree_sha256(root) == files
    # The folder's own parameters still load it.
    test = SynthReIDVI(root, split='test', size='tiny', img_size=(32, 16))
    names = {
        osp.relpath(test.get_data_info(i)['img_path'], root)
        for i in range(len(test))
    }
    assert names <= set(files)
    assert all(re.search(r'cam\d/\d{4}/\d{4}\.jpg$', n) for n in names)
