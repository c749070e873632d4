"""The docs are true: their code blocks run, their numbers hold.

Every fenced ``python`` and ``bash`` block of docs/customize.md and
docs/get_started.md runs, in document order, in one folder laid out as the
docs assume (``configs/`` and ``tools/`` of this checkout, a tiny SynthReID
under ``data/synthreid``, ``work_dirs/bot_r18_synthreid/epoch_8.pth`` with
random weights, ``query.jpg`` and ``gallery/``). An HTML comment right
before a block steers it, one directive a line::

    <!-- docs-test: skip: REASON -->          not run (needs data, GPUs, ...)
    <!-- docs-test: file PATH -->             written to PATH, not run
    <!-- docs-test: replace OLD => NEW -->    substituted first; NEW may use
                                              {repo} and {tiny_bot_config}

A python line ``expression  # <literal>`` (or an expression followed by
comment lines that together are a Python literal, prose comment lines after
them allowed) must evaluate to that literal. Python blocks run in this
process; bash blocks run with ``python`` being this interpreter.
"""
import ast
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ('docs/customize.md', 'docs/get_started.md')
FENCE = re.compile(r'^```(\w*)\s*$')
MARKER = re.compile(r'<!--\s*docs-test:(.*?)-->', re.S)
KEYWORDS = ('skip', 'file', 'replace', 'run')

# docs/customize.md's config inherits the Market-1501 BoT config; here it
# inherits this one: the same recipe (ResNet-18) on one domain of a tiny
# SynthReID, one epoch (a few iterations), a loss line per iteration.
TINY_BOT = '''
_base_ = [{base!r}]
synth = dict(type='SynthReID', data_root='data/synthreid/', num_domains=4,
             size='tiny', seed=0, img_size=(128, 64))
model = dict(head=dict(num_classes=4))  # the 4 identities of domain 0
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(batch_size=8, num_instances=2),
    dataset=dict(datasets=[dict(synth, domain=0, split='train')]))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(synth, domain=3, split='test'))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=2)
default_hooks = dict(logger=dict(interval=1))
'''


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    code: str
    directives: List[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f'{self.doc}:{self.line}'


def read_blocks(doc: str) -> List[Block]:
    """The fenced blocks of ``doc`` with the directives of the marker that
    ends on the line before each."""
    with open(osp.join(REPO, doc), encoding='utf-8') as f:
        lines = f.read().split('\n')
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].strip() != '```':
            i += 1
        directives = []
        before = '\n'.join(lines[:start])
        markers = list(MARKER.finditer(before))
        if markers and before[markers[-1].end():].strip() == '':
            for text in markers[-1].group(1).split('\n'):
                text = text.strip()
                if text.split(' ')[0].rstrip(':') in KEYWORDS:
                    directives.append(text)
                elif text and directives:  # a continued directive
                    directives[-1] += ' ' + text
        blocks.append(
            Block(doc, start + 1, match.group(1),
                  '\n'.join(lines[start + 1:i]) + '\n', directives))
        i += 1
    return blocks


def check_shown_values(code: str, namespace: dict, where: str) -> None:
    """``expr  # literal`` and ``expr`` + literal comment lines hold."""
    lines = code.split('\n')
    for i, line in enumerate(lines):
        if not line or line[0] in ' #\t':
            continue
        expr, _, comment = line.partition('  #')
        if not comment:
            comment_lines = []
            for follow in lines[i + 1:]:
                if not follow.startswith('#'):
                    break
                comment_lines.append(follow[1:])
            # A comment of prose may follow the shown value: the value is
            # the longest run of these lines that is a literal (else a
            # stale value would go unchecked behind it).
            comment = ''
            for n in range(len(comment_lines), 0, -1):
                try:
                    ast.literal_eval(' '.join(comment_lines[:n]).strip())
                except (SyntaxError, ValueError):
                    continue
                comment = ' '.join(comment_lines[:n])
                break
        try:
            expected = ast.literal_eval(comment.strip())
            ast.parse(expr.strip(), mode='eval')
        except (SyntaxError, ValueError):
            continue
        actual = eval(expr.strip(), namespace)
        assert actual == expected, (
            f'{where}: {expr.strip()} is {actual!r}, the docs show '
            f'{expected!r}')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """A folder laid out as the docs assume."""
    from mmreid.apis import init_model
    from mmreid.datasets import generate_synthreid

    root = tmp_path_factory.mktemp('docs')
    for name in ('configs', 'tools'):
        os.symlink(osp.join(REPO, name), root / name)
    generate_synthreid(
        str(root / 'data' / 'synthreid'), domains=4, size='tiny')
    d3 = root / 'data' / 'synthreid' / 'd3'
    shutil.copy(sorted((d3 / 'query').iterdir())[0], root / 'query.jpg')
    shutil.copytree(d3 / 'bounding_box_test', root / 'gallery')
    model = init_model(
        osp.join(REPO, 'configs', 'baseline', 'bot_r18_synthreid.py'))
    checkpoint = root / 'work_dirs' / 'bot_r18_synthreid' / 'epoch_8.pth'
    checkpoint.parent.mkdir(parents=True)
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    tiny = root / 'tiny_bot_r18_synthreid.py'
    tiny.write_text(
        TINY_BOT.format(
            base=osp.join(REPO, 'configs', 'baseline',
                          'bot_r18_synthreid.py')))
    bin_dir = root / '.bin'
    bin_dir.mkdir()
    # A script, not a link: a venv's python finds its pyvenv.cfg by path.
    (bin_dir / 'python').write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bin_dir / 'python').chmod(0o755)
    return dict(root=root, tiny_bot_config=str(tiny), bin=str(bin_dir))


def run_blocks(doc: str, world: dict, monkeypatch) -> Dict[str, str]:
    """Run the blocks of ``doc``; returns the output of each bash block."""
    root = world['root']
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    env = dict(
        os.environ,
        PATH=f'{world["bin"]}{os.pathsep}{os.environ.get("PATH", "")}',
        PYTHONPATH=os.pathsep.join(
            p for p in (REPO, os.environ.get('PYTHONPATH')) if p))
    outputs = {}
    for block in read_blocks(doc):
        if block.lang not in ('python', 'bash'):
            continue
        code, target, skip = block.code, None, None
        for directive in block.directives:
            if directive.startswith('skip:'):
                skip = directive[5:].strip()
            elif directive.startswith('file '):
                target = directive[5:].strip()
            elif directive.startswith('replace '):
                old, sep, new = directive[8:].partition(' => ')
                assert sep, f'{block.where}: replace needs OLD => NEW'
                assert old in code, f'{block.where}: {old!r} not in block'
                code = code.replace(
                    old,
                    new.format(
                        repo=REPO, tiny_bot_config=world['tiny_bot_config']))
        if skip is not None:
            assert skip, f'{block.where}: a skip needs its reason'
            continue
        if target is not None:
            path = root / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
            continue
        if block.lang == 'python':
            namespace = dict(__name__='__docs__')
            exec(compile(code, block.where, 'exec'), namespace)
            check_shown_values(code, namespace, block.where)
        else:
            proc = subprocess.run(['bash', '-e', '-c', code],
                                  cwd=root,
                                  env=env,
                                  capture_output=True,
                                  text=True,
                                  timeout=600)
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, (
                f'{block.where} failed ({proc.returncode}):\n{code}\n'
                f'{output[-3000:]}')
            outputs[block.where] = output
    return outputs


def test_customize_md(world, monkeypatch):
    outputs = run_blocks('docs/customize.md', world, monkeypatch)
    train_log = '\n'.join(v for v in outputs.values() if 'Epoch(train)' in v)
    assert train_log, 'the custom-loss training ran no iteration'
    # The custom loss is what the head optimises: the merged config has it
    # without the base's margin.
    dumped = sorted(
        (world['root'] / 'work_dirs' /
         'bot_r50_center_market1501').glob('*/vis_data/config.py')) or sorted(
             (world['root'] / 'work_dirs' /
              'bot_r50_center_market1501').glob('*.py'))
    assert dumped, 'the training run dumped no config'
    config_text = dumped[-1].read_text()
    assert "loss_tri=dict(type='CenterTripletLoss')" in config_text
    # The losses that get_started.md section 4 names are the logged ones.
    with open(osp.join(REPO, 'docs', 'get_started.md'), encoding='utf-8') as f:
        section = f.read().split('## 4.')[1].split('## 5.')[0]
    names = re.findall(r'`(loss_\w+)`', section)
    assert names
    for name in names:
        assert f'{name}: ' in train_log, f'{name} is not in the log'


def test_get_started_md(world, monkeypatch):
    outputs = run_blocks('docs/get_started.md', world, monkeypatch)
    features = world['root'] / 'work_dirs' / 'features' / 'd3_query'
    assert (features / 'features.npy').is_file(), outputs


def test_every_block_runs_or_says_why():
    """A new block is run, or marked with its reason: never dropped."""
    for doc in DOCS:
        for block in read_blocks(doc):
            for directive in block.directives:
                assert directive.split()[0].rstrip(':') in KEYWORDS, \
                    f'{block.where}: unknown directive {directive!r}'


def test_cited_files_exist():
    docs = sorted(
        osp.relpath(path, REPO)
        for path in glob.glob(osp.join(REPO, 'docs', '*.md')))
    assert set(DOCS) <= set(docs)
    for doc in docs + ['README.md']:
        with open(osp.join(REPO, doc), encoding='utf-8') as f:
            text = f.read()
        for path in re.findall(r'`((?:tests|tools|configs)/[\w/.-]+\.\w+)`',
                               text):
            assert osp.exists(osp.join(REPO, path)), f'{doc} cites {path}'


def test_synthreid_counts_in_benchmarks():
    """docs/benchmarks.md's size of the demo's training domains is the one
    SynthReID generates."""
    from mmreid.datasets.synthetic import _resolve_params
    from mmreid.datasets.synthetic_plan import _plan_market
    with open(osp.join(REPO, 'docs', 'benchmarks.md'), encoding='utf-8') as f:
        text = f.read()
    match = re.search(r'd0-d2 \(([\d,]+) identities, ([\d,]+) images\)', text)
    assert match, 'the SynthReID demo size is no longer in benchmarks.md'
    params = _resolve_params('demo', 'visible', 4, 0, (128, 64), {})
    train = [
        item for d in range(3) for item in _plan_market(params, d)
        if item[0].startswith('bounding_box_train/')
    ]
    assert int(match.group(1).replace(',', '')) == len({t[1] for t in train})
    assert int(match.group(2).replace(',', '')) == len(train)


def _first_release_synthreid(dataset):
    """Whether a model-zoo ``Dataset`` names the first SynthReID release."""
    return dataset.startswith('SynthReID') and ' v2' not in dataset


def test_model_zoo_numbers_say_where_they_come_from():
    from mmreid.apis import load_model_index
    index = load_model_index(osp.join(REPO, 'model-index.yml'))
    seen = set()
    for model in index.models.values():
        sources = {r.get('Source') for r in model.results}
        for result in model.results:
            where = f'{model.name} / {result.get("Dataset")}'
            assert result.get('Source') in (
                'paper', 'reference code', 'measured here',
                'measured earlier, not reproduced'
            ), f'{where}: Source is {result.get("Source")}'
            reference = result.get('Reference') or ''
            assert reference, f'{where}: no Reference'
            # Measured before issue 14 changed every random draw of
            # training: the command no longer gives the number, and the
            # Source column says so, not only the note.
            first = _first_release_synthreid(result.get('Dataset', ''))
            if result['Source'].startswith('measured'):
                assert 'python tools/' in reference, \
                    f'{where}: a measured number needs its command'
                assert (result['Source'] == 'measured here') is not first, \
                    f'{where}: Source is {result["Source"]!r}'
                if first:
                    assert 'kept for the record' in reference and \
                        'kept for the record' in model.metadata.get(
                            'Results Source', ''), where
            else:
                assert 'not reproduced here' in reference, where
            seen.add(result['Source'])
        if model.results:
            # What `mim search` shows.
            shown = model.metadata.get('Results Source', '')
            assert len(sources) == 1 and shown.startswith(sources.pop()), \
                f'{model.name}: Metadata "Results Source" is {shown!r}'
        else:
            assert 'Results Source' not in model.metadata, model.name
    assert seen == {
        'paper', 'reference code', 'measured here',
        'measured earlier, not reproduced'
    }
