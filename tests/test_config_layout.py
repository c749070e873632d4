"""Config inheritance stays two levels deep (DESIGN.md section 4).

A main config inherits `_base_` files only. An ablation inherits the main
config it varies, in the same folder, and that main config inherits
`_base_` files only. A config is an ablation of its parent when its name is
the parent's name plus a suffix (`snr_r18_synthreid-v2_no-lplus.py` of
`snr_r18_synthreid-v2.py`), or when it is a baseline row (method `baseline`
or `baseline-*`) of the parent's exact backbone, setting and data
(`baseline_r50_1xb64-120e_dimn-protocol.py` of
`snr_r50_1xb64-120e_dimn-protocol.py`: the method with its component
removed). Any other config is a main config: `mbn-agw_*` does not inherit
`agw_*`, nor a one-stream model the two-stream one.
"""
import ast
import glob
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_ROOT = osp.join(REPO, 'configs')
BASE_ROOT = osp.join(CONFIG_ROOT, '_base_')
LEAVES = sorted(
    p for p in glob.glob(osp.join(CONFIG_ROOT, '*', '*.py'))
    if not p.startswith(BASE_ROOT + osp.sep))
BASES = sorted(glob.glob(osp.join(BASE_ROOT, '**', '*.py'), recursive=True))


def parents(path):
    """The files a config names in `_base_`, as absolute paths."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(target, 'id', None) == '_base_'
                for target in node.targets):
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else list(value)
            return [
                osp.normpath(osp.join(osp.dirname(path), name))
                for name in names
            ]
    return []


def is_base(path):
    return path.startswith(BASE_ROOT + osp.sep)


def stem(path):
    return osp.splitext(osp.basename(path))[0]


def is_ablation_of(child, parent):
    """Whether ``child`` is named as an ablation of ``parent``."""
    if osp.dirname(child) != osp.dirname(parent):
        return False
    child_name, parent_name = stem(child), stem(parent)
    if child_name.startswith(parent_name + '_'):
        return True
    method, _, setting = child_name.partition('_')
    _, _, parent_setting = parent_name.partition('_')
    is_baseline = method == 'baseline' or method.startswith('baseline-')
    return is_baseline and setting == parent_setting


def layout_errors(path):
    """What breaks the two-level rule in one leaf config, as messages."""
    rel = osp.relpath(path, REPO)
    leaves = [p for p in parents(path) if not is_base(p)]
    if not leaves:
        return []
    errors = []
    if len(leaves) > 1:
        errors.append(f'{rel} inherits {len(leaves)} leaf configs; a config '
                      'inherits at most its own main config')
    for parent in leaves:
        parent_rel = osp.relpath(parent, REPO)
        if not is_ablation_of(path, parent):
            errors.append(
                f'{rel} is a main config but inherits the leaf {parent_rel}; '
                'a main config inherits configs/_base_/ files only')
            continue
        deeper = [p for p in parents(parent) if not is_base(p)]
        if deeper:
            errors.append(
                f'{rel} is an ablation of {parent_rel}, which inherits the '
                f'leaf {osp.relpath(deeper[0], REPO)}; an ablation\'s main '
                'config inherits configs/_base_/ files only')
    return errors


def test_there_are_leaves_and_bases():
    assert len(LEAVES) > 50 and len(BASES) > 20


def test_every_named_parent_exists():
    missing = [(osp.relpath(p, REPO), osp.relpath(b, REPO))
               for p in LEAVES + BASES for b in parents(p)
               if not osp.isfile(b)]
    assert not missing


@pytest.mark.parametrize('path', BASES, ids=lambda p: osp.relpath(p, REPO))
def test_base_files_inherit_base_files_only(path):
    leaves = [osp.relpath(p, REPO) for p in parents(path) if not is_base(p)]
    assert not leaves, f'{osp.relpath(path, REPO)} inherits {leaves}'


def test_every_config_is_a_main_config_or_an_ablation_of_one():
    errors = [error for path in LEAVES for error in layout_errors(path)]
    assert not errors, '\n'.join(errors)


@pytest.mark.parametrize(
    'child, parent, expected',
    [
        ('snr/snr_r18_synthreid-v2_no-lplus.py', 'snr/snr_r18_synthreid-v2.py',
         True),
        ('snr/baseline-a-in_r18_synthreid.py', 'snr/snr_r18_synthreid.py',
         True),
        ('snr/baseline_r50_1xb64-120e_dukemtmc-to-market1501.py',
         'snr/snr_r50_1xb64-120e_dukemtmc-to-market1501.py', True),
        # Another method's twin, another setting, another folder: mains.
        ('mbn/mbn-agw_r50_1xb64-81e_regdb-t2v.py',
         'mbn/agw_r50_1xb64-81e_regdb-t2v.py', False),
        ('snr/snr_r18_synthreid-v2.py', 'snr/baseline_r18_synthreid-v2.py',
         False),
        ('snr/snr_r50_1xb64-120e_dukemtmc-to-market1501.py',
         'snr/snr_r50_1xb64-120e_market1501-to-dukemtmc.py', False),
        ('mbn/agw_r18-onestream_synthreid-vi-v2.py',
         'mbn/agw_r18_synthreid-vi-v2.py', False),
        ('snr/baseline_r18_synthreid.py', 'baseline/bot_r18_synthreid.py',
         False),
    ])
def test_what_counts_as_an_ablation(child, parent, expected):
    child = osp.join(CONFIG_ROOT, child)
    parent = osp.join(CONFIG_ROOT, parent)
    assert is_ablation_of(child, parent) is expected
