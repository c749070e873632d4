"""A config that redefines a variable its base already substituted is
refused (mmengine reads a base on its own: the leaf's value reaches the
variable only)."""
import os.path as osp

import pytest

from mmreid.utils.config import load_config, read_config
from ..fixtures.processes import REPO


def leaf(tmp_path, base, text, name='leaf.py'):
    path = tmp_path / name
    path.write_text(f"_base_ = ['{osp.join(REPO, base)}']\n{text}")
    return str(path)


def test_a_variable_the_base_used_is_refused(tmp_path):
    # The DIMN base puts cuhk03_variant into its CUHK03 source; a leaf
    # asking for the labeled boxes still trained on the detected ones.
    path = leaf(tmp_path, 'configs/snr/snr_r50_1xb64-120e_dimn-protocol.py',
                "cuhk03_variant = 'labeled'\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    message = str(info.value)
    assert "sets cuhk03_variant = 'labeled'" in message
    assert "the base's value ('detected')" in message
    assert 'train_dataloader.dataset.datasets.3.dataset.variant' in message


def test_an_image_size_the_pipelines_used_is_refused(tmp_path):
    path = leaf(tmp_path, 'configs/baseline/bot_r50_1xb64-120e_market1501.py',
                'img_size = (384, 128)\n')
    with pytest.raises(
            ValueError,
            match=r"base's value \(\(256, 128\)\).*pipeline.1.size"):
        load_config(path)


def test_a_variable_with_its_keys_overridden_is_fine(tmp_path):
    # The RegDB leaves redefine trial with the dataloaders that use it.
    path = leaf(
        tmp_path, 'configs/mbn/agw_r50_1xb64-81e_regdb-v2t.py', '''
trial = 3
train_dataloader = dict(dataset=dict(trial=trial))
val_dataloader = dict(dataset=dict(trial=trial))
test_dataloader = val_dataloader
model = dict(backbone=dict())
''')
    cfg = load_config(path)
    assert cfg.val_dataloader.dataset.trial == 3


def test_a_dict_variable_the_pipelines_used_is_refused(tmp_path):
    # The Market base puts its `resize = dict(...)` into both pipelines; a
    # leaf asking for cv2 kept PIL, while --cfg-options resize... was
    # refused.
    path = leaf(
        tmp_path, 'configs/baseline/bot_r50_1xb64-120e_market1501.py', '''
resize = dict(type='ReIDResize', size=(256, 128), backend='cv2')
''')
    with pytest.raises(
            ValueError,
            match=r'sets resize = .*train_dataloader.dataset.'
            r'pipeline.1.backend, .*test_dataloader.dataset.'
            r'pipeline.1.backend'):
        load_config(path)


def test_a_key_the_config_writes_itself_may_keep_the_old_value(tmp_path):
    # The data moves to /ssd/ except CUHK-SYSU, which the leaf keeps at
    # data/ on purpose: it wrote that key itself.
    path = leaf(
        tmp_path, 'configs/gmn/gmn_r50_1xb64-60e_ms-cs-c3-to-m.py', '''
data_root = '/ssd/'
msmt_train = dict(type='MSMT17', data_root=data_root + 'msmt17/MSMT17_V1/',
                  version='V1', split='train')
cuhk_sysu_train = dict(type='CUHKSYSU', data_root='data/cuhk_sysu/')
cuhk03_train = dict(type='CUHK03NP', data_root=data_root + 'cuhk03-np/',
                    variant='labeled', split='train')
train_dataloader = dict(
    dataset=dict(datasets=[msmt_train, cuhk_sysu_train, cuhk03_train]))
val_dataloader = dict(dataset=dict(data_root=data_root + 'market1501/'))
test_dataloader = val_dataloader
''')
    cfg = load_config(path)
    roots = [d['data_root'] for d in cfg.train_dataloader.dataset.datasets]
    assert roots[1] == 'data/cuhk_sysu/' and roots[0].startswith('/ssd/')


@pytest.mark.parametrize('tool,args', [
    ('tools/analysis_tools/browse_dataset.py', ['--out-dir', 'unused']),
    ('tools/deployment/pytorch2onnx.py', ['unused.pth']),
    ('tools/misc/verify_dataset.py', []),
])
def test_every_tool_reads_configs_with_the_check(tmp_path, tool, args):
    # browse_dataset, pytorch2onnx and verify_dataset read configs with
    # Config.fromfile: a leaf that tools/train.py refuses was browsed and
    # exported at the base's image size.
    from ..fixtures.processes import load_tool
    path = leaf(tmp_path, 'configs/snr/baseline_r18_synthreid-v2.py',
                'img_size = (128, 64)\n')
    with pytest.raises(ValueError, match='sets img_size = '):
        load_tool(tool).main([path] + args)


def test_a_test_run_ignores_the_sections_it_does_not_read(tmp_path):
    # A user's test config redefines the base's `synth` and the test
    # dataloader only: training would still read the base's data (refused),
    # a test reads only what the user set.
    path = leaf(
        tmp_path, 'configs/gmn/gmn_r18_synthreid.py', f'''
synth = dict(type='SynthReID', data_root='{tmp_path}', num_domains=3,
             size='tiny', seed=0, img_size=(32, 16))
test_dataloader = dict(dataset=dict(synth, domain=2, split='test'))
''')
    with pytest.raises(ValueError, match='train_dataloader.dataset'):
        load_config(path)
    cfg = load_config(path, phase='test')
    assert cfg.test_dataloader.dataset.size == 'tiny'


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_test_run_checks_the_sections_it_reads(tmp_path):
    path = leaf(tmp_path, 'configs/baseline/bot_r50_1xb64-120e_market1501.py',
                'img_size = (384, 128)\n')
    with pytest.raises(ValueError, match=r'test_dataloader\.dataset\.'):
        load_config(path, phase='test')
    with pytest.raises(
            ValueError, match="phase must be 'train' or 'test', "
            "got 'eval'"):
        read_config(write(tmp_path, 'plain.py', 'x = 1\n'), phase='eval')


def test_a_value_restated_as_a_list_is_fine(tmp_path):
    # The pipelines hold (256, 128): a leaf writing [256, 128] asks for
    # the same size.
    path = leaf(tmp_path, 'configs/baseline/bot_r50_1xb64-120e_market1501.py',
                'img_size = [256, 128]\n')
    assert load_config(path).img_size == [256, 128]


def test_a_list_variable_the_base_used_is_refused(tmp_path):
    write(
        tmp_path, 'base.py', "names = ['a', 'b']\n"
        "train_dataloader = dict(dataset=dict(type='D', names=names))\n")
    path = write(tmp_path, 'leaf.py',
                 "_base_ = ['base.py']\nnames = ['a', 'c']\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    # The list is named, not an item the base's value lacks.
    assert str(info.value).endswith(
        "still hold the base's value (['a', 'b']): "
        'train_dataloader.dataset.names. Set those keys in leaf.py too.')


@pytest.mark.parametrize('backend', ['cv2', None])
def test_a_field_a_leaf_adds_to_a_dict_literal_is_refused(tmp_path, backend):
    # The base's dict is a literal, and the leaf adds a field (None too):
    # the pipeline's copy has none.
    write(
        tmp_path, 'base.py', "resize = {'type': 'R', 'size': 4}\n"
        'test_dataloader = dict(dataset=dict(pipeline=[resize]))\n')
    path = write(
        tmp_path, 'leaf.py',
        f"_base_ = ['base.py']\nresize = dict(backend={backend!r})\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert str(info.value).endswith(
        ': test_dataloader.dataset.pipeline.0.backend. Set those keys in '
        'leaf.py too.')


def test_a_key_the_base_builds_another_from_is_a_variable(tmp_path):
    """test_dataloader copies the base's val_dataloader when the base is
    read: a leaf changing val_dataloader alone left tools/test.py on the
    base's batch size and dataset. Refused, naming the keys; a leaf that
    restates test_dataloader, or a base without the copy, is fine."""
    write(
        tmp_path, 'base.py',
        "val_dataloader = dict(batch_size=4, dataset=dict(type='D'))\n"
        'test_dataloader = val_dataloader\n')
    path = write(
        tmp_path, 'leaf.py', "_base_ = ['base.py']\n"
        "val_dataloader = dict(batch_size=8, dataset=dict(type='E'))\n")
    with pytest.raises(
            ValueError,
            match=r'sets val_dataloader = .*but val_dataloader is a variable '
            r'of its base .*: test_dataloader\.batch_size, '
            r'test_dataloader\.dataset\.type\. Set those keys in leaf\.py'):
        load_config(path)
    write(
        tmp_path, 'leaf.py', "_base_ = ['base.py']\n"
        'val_dataloader = dict(batch_size=8)\n'
        'test_dataloader = val_dataloader\n')
    cfg = load_config(path)
    assert (cfg.val_dataloader.batch_size, cfg.test_dataloader.batch_size) \
        == (8, 8)
    write(
        tmp_path, 'base.py',
        "val_dataloader = dict(batch_size=4, dataset=dict(type='D'))\n"
        "test_dataloader = dict(batch_size=4, dataset=dict(type='D'))\n")
    write(tmp_path, 'leaf.py',
          "_base_ = ['base.py']\nval_dataloader = dict(batch_size=8)\n")
    cfg = load_config(path)
    assert (cfg.val_dataloader.batch_size, cfg.test_dataloader.batch_size) \
        == (8, 4)


def test_a_field_of_a_nested_dict_is_probed_where_it_is(tmp_path):
    """A leaf changing a field two dicts deep in a base's variable: the
    probe replaced the whole outer field, the leaf's dict could not merge
    into it, and the change was accepted while the dataloader kept the
    base's value."""
    write(
        tmp_path, 'base.py',
        "synth = dict(type='S', opts=dict(size=1, seed=0))\n"
        'test_dataloader = dict(dataset=synth)\n')
    path = write(tmp_path, 'leaf.py',
                 "_base_ = ['base.py']\nsynth = dict(opts=dict(size=2))\n")
    with pytest.raises(
            ValueError,
            match=r'sets synth = .*: test_dataloader\.dataset\.opts\.size\.'):
        load_config(path)


def test_a_variable_of_every_base_is_checked(tmp_path):
    write(tmp_path, 'runtime.py', 'seed = 1\n')
    write(
        tmp_path, 'data.py', 'size = 4\n'
        "test_dataloader = dict(dataset=dict(type='D', size=size))\n")
    path = write(tmp_path, 'leaf.py',
                 "_base_ = ['runtime.py', 'data.py']\nsize = 8\n")
    with pytest.raises(
            ValueError,
            match=r'data\.py.*\(4\): '
            r'test_dataloader\.dataset\.size\.'):
        load_config(path)


def test_tools_test_py_reads_only_the_test_sections(tmp_path, monkeypatch):
    """tools/test.py reads its config as a test: a leaf that redefines the
    base's ``synth`` for its test set is evaluated, not refused for the
    training set that a test never reads."""
    from ..fixtures.processes import load_tool
    path = leaf(
        tmp_path, 'configs/gmn/gmn_r18_synthreid.py', f'''
synth = dict(type='SynthReID', data_root='{tmp_path}', num_domains=3,
             size='tiny', seed=0, img_size=(32, 16))
test_dataloader = dict(dataset=dict(synth, domain=2, split='test'))
''')
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'not read: no runner is built')
    tool = load_tool('tools/test.py')
    built = []

    class Runner:
        rank = 0

        def test(self):
            return {}

    monkeypatch.setattr(tool, 'build_runner',
                        lambda cfg: built.append(cfg) or Runner())
    monkeypatch.setattr('sys.argv', [
        'tools/test.py', path,
        str(checkpoint), '--work-dir',
        str(tmp_path / 'work')
    ])
    tool.main()
    assert built[0].test_dataloader.dataset.size == 'tiny'
