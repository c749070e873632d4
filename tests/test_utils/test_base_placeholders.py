"""``{{_base_.name}}`` inside an expression of a config.

mmengine replaces the placeholder by a string before the file runs and
puts the base's value in its place afterwards, so an expression on it
computes with that string: it failed with a raw TypeError or ValueError,
or silently gave a wrong value.
"""
import os.path as osp

import pytest

from mmreid.utils.config import read_config
from ..fixtures.processes import REPO

SNR = osp.join(REPO, 'configs/snr/snr_r18_synthreid-v2.py')


def config(tmp_path, text, name='mine.py'):
    path = tmp_path / name
    path.write_text(f"_base_ = ['{SNR}']\n{text}")
    return str(path)


def test_a_placeholder_added_to_through_a_variable_is_refused(tmp_path):
    # The audit's way to add a target: "TypeError: can only concatenate
    # str (not "list") to str".
    path = config(
        tmp_path, "mine = dict(name='mine')\n"
        'base_targets = {{_base_.test_targets}}\n'
        'test_cfg = dict(targets=base_targets + [mine])\n')
    with pytest.raises(ValueError) as info:
        read_config(path)
    message = str(info.value)
    assert message.startswith(
        f'{path}:4: {{{{_base_.test_targets}}}} is used inside an '
        'expression (through base_targets, assigned from it): '
        "'test_cfg = dict(targets=base_targets + [mine])'.")
    assert 'Write _base_.test_targets instead (no braces)' in message
    assert 'docs/customize.md, "Adding a target to a multi-target ' \
        'config"' in message


@pytest.mark.parametrize(
    'line',
    [
        # mmengine: "dictionary update sequence element #0 has length 1".
        'loader = dict({{_base_.target_dataloader}}, batch_size=8)',
        # Silently '_', the first character of mmengine's placeholder.
        'height = {{_base_.img_size}}[0]',
        'sizes = {{ _base_.img_size }} * 2',
        # A dict key: mmengine substitutes values only, so the key stays
        # its placeholder string.
        'sizes = {{{_base_.img_size}}: 1}',
    ])
def test_a_placeholder_inside_an_expression_is_refused(tmp_path, line):
    path = config(tmp_path, line + '\n')
    with pytest.raises(
            ValueError,
            match=r'mine.py:2: \{\{_base_\.\w+\}\} '
            'is used inside an expression: '):
        read_config(path)


def test_a_placeholder_of_a_base_names_that_base(tmp_path):
    config(tmp_path, 'height = {{_base_.img_size}}[0]\n', name='base.py')
    (tmp_path / 'leaf.py').write_text("_base_ = ['./base.py']\n")
    with pytest.raises(ValueError, match='base.py:2: '):
        read_config(str(tmp_path / 'leaf.py'))


def test_placeholders_as_whole_values_and_base_values_are_read(tmp_path):
    path = config(
        tmp_path, "mine = dict(name='mine')\n"
        'size = {{_base_.img_size}}\n'
        'resize = dict(type="ReIDResize", size=size)\n'
        'pair = [{{_base_.img_size}}, (1, 2)]\n'
        'test_cfg = dict(targets=_base_.test_cfg.targets + [mine])\n')
    cfg = read_config(path)
    assert cfg.resize.size == cfg.size == (64, 32)
    assert cfg.pair == [(64, 32), (1, 2)]
    assert [t['name'] for t in cfg.test_cfg.targets
            ] == ['d3', 'd3-d0style', 'd0', 'd0-d3style', 'mine']
