"""Wrong-number hunt: SynthReID generation and its published claims.

The published counts are for the ``demo`` folders the base configs read;
they are checked against the generator's file plan for the configs'
parameters (every file's name and labels, no pixels), counted here from
the file names by the definitions of the Market-1501 and SYSU-MM01
layouts, and the chance levels are computed here from their definition
(specs/evaluation.md §2-3), not taken from mmreid's code.
"""
import functools
import os
import os.path as osp
import re
import shutil
from collections import Counter

import pytest
from mmengine.config import Config

from mmreid.datasets.synthetic_params import _resolve_params
from mmreid.datasets.synthetic_plan import _plan_jobs
from ..fixtures.processes import REPO

DATASET_CONFIGS = osp.join(REPO, 'configs', '_base_', 'datasets')
#: Market-1501 file name: pid (-1 junk, 0000 distractor), camera.
MARKET_NAME = re.compile(r'^(-1|\d{4})_c(\d)s\d_\d{6,}_\d{2}\.jpg$')
#: A number as the docs write it (``5,265``), not part of a word (``d3``)
#: or of a version (``v2.1``).
NUMBER = re.compile(r'(?<![\w.])\d{1,3}(?:,\d{3})*(?![\w.])')


def read(rel):
    with open(osp.join(REPO, rel), encoding='utf-8') as f:
        return f.read()


def numbers(text):
    return [int(n.replace(',', '')) for n in NUMBER.findall(text)]


def config_params(name, **changes):
    """The generator parameters the base config ``name`` reads with.

    Args:
        name (str): File under ``configs/_base_/datasets``.
        **changes: Overrides of the config's ``overrides`` (``None``
            removes one: v2 is v2.1 without ``num_ids_test_added``).

    Returns:
        dict: The resolved parameters (what the manifest records).
    """
    synth = Config.fromfile(osp.join(DATASET_CONFIGS, name)).synth
    synth = dict(synth)
    overrides = dict(synth.pop('overrides', None) or {})
    for key, value in changes.items():
        if value is None:
            overrides.pop(key, None)
        else:
            overrides[key] = value
    if synth.get('type') == 'SynthReID':
        return _resolve_params(synth['size'], 'visible',
                               synth['num_domains'], synth['seed'],
                               synth['img_size'], overrides,
                               dict(style_control=synth.get(
                                   'style_control', False)))
    options = {
        k: synth.get(k)
        for k in ('ir_mode', 'ir_luminance', 'ir_gap', 'ir_contrast')
        if k in synth
    }
    return _resolve_params(synth['size'], 'vi', None, synth['seed'],
                           synth['img_size'], overrides, options)


@functools.lru_cache(maxsize=None)
def planned_files(name, added=True):
    """``(path, infrared)`` of every file the generator writes for the
    base config ``name`` (v2 when ``added`` is False), and the SYSU test
    id list (empty for the visible layout)."""
    changes = {} if added else dict(num_ids_test_added=None)
    jobs, _, ids = _plan_jobs(config_params(name, **changes))
    return (tuple((job['path'], job['infrared']) for job in jobs),
            tuple(ids.get('test', ())))


def market_folder(name, domain, folder, added=True):
    """``(pid, cam)`` of every file of ``<domain>/<folder>``."""
    files, _ = planned_files(name, added)
    out = []
    for path, _ in files:
        parts = path.split('/')
        if parts[:2] == [domain, folder]:
            match = MARKET_NAME.match(parts[2])
            assert match, path
            out.append((int(match.group(1)), int(match.group(2))))
    return out


def sysu_files(name, added=True):
    """``(pid, cam, infrared)`` of every SYSU file, and the test ids."""
    files, test = planned_files(name, added)
    out = []
    for path, infrared in files:
        match = re.match(r'^SYSU-MM01/cam(\d)/(\d{4})/\d{4}\.jpg$', path)
        assert match, path
        cam = int(match.group(1))
        # The layout's definition: cams 3 and 6 are the infrared ones.
        assert infrared == (cam in (3, 6)), path
        out.append((int(match.group(2)), cam, infrared))
    return out, set(test)


def market_chance_r1(name, domain, added=True):
    """Expected R1 (%) of a random ranking under the Market rule.

    specs/evaluation.md §2: junk (pid -1) is dropped, distractors (pid 0)
    stay as negatives, and each query's gallery loses the items of its
    own pid and camera; a query without a positive left is skipped. A
    random order puts a positive first with probability m_q / |V_q|; R1
    (§3) is the mean over the valid queries.
    """
    query = market_folder(name, domain, 'query', added)
    gallery = [(p, c) for p, c in market_folder(name, domain,
                                                'bounding_box_test', added)
               if p != -1]
    per_item, per_pid = Counter(gallery), Counter(p for p, _ in gallery)
    hits = []
    for pid, cam in query:
        same = per_item[(pid, cam)]
        positives = per_pid[pid] - same
        if positives:
            hits.append(positives / (len(gallery) - same))
    return 100 * sum(hits) / len(hits)


def sysu_chance_r1(name, added=True):
    """Expected R1 (%) of a random ranking, SYSU-MM01 all-search
    single-shot (specs/mbn_vireid.md): infrared queries of the test ids,
    a gallery of one visible image per test id and camera (cams 1, 2, 4,
    5), cam3 queries skip every cam2 item. The trial's draw does not
    change the counts, so every trial has the same chance."""
    files, test = sysu_files(name, added)
    cams = {}
    queries = []
    for pid, cam, infrared in files:
        if pid not in test:
            continue
        if infrared:
            queries.append((pid, cam))
        else:
            cams.setdefault(pid, set()).add(cam)
    size = sum(len(c) for c in cams.values())
    cam2 = sum(2 in c for c in cams.values())
    hits = []
    for pid, cam in queries:
        skip = {2} if cam == 3 else set()
        positives = len(cams[pid] - skip)
        if positives:
            hits.append(positives / (size - (cam2 if skip else 0)))
    return 100 * sum(hits) / len(hits)


def test_the_size_table_of_the_docs_is_what_the_generator_writes():
    """docs/datasets.md, "Sizes (counted from the generator's plan)".

    A user reads there how many images each base config's folder holds
    and how many queries each target evaluates (the logs' ``num_query``
    must match them). Counted here from the planned file names: every
    file; for the Market layout the files of ``<target>/query``; for the
    SYSU-MM01 layout the infrared images (cams 3, 6) of the ids of
    ``exp/test_id.txt`` (every one is a query in both modes). Nothing
    else pins these published counts: a plan change that moved them
    would go unnoticed.
    """
    rows = {}
    for line in read('docs/datasets.md').splitlines():
        cells = [c.strip() for c in line.split('|')]
        if len(cells) == 5 and cells[2] and numbers(cells[2]):
            rows[cells[1]] = (numbers(cells[2]), numbers(cells[3]))

    def row(start):
        found = [v for k, v in rows.items() if k.startswith(start)]
        assert len(found) == 1, (start, sorted(rows))
        return found[0]

    def queries(name, domain, added=True):
        return len(market_folder(name, domain, 'query', added))

    def ir_queries(name, added=True):
        files, test = sysu_files(name, added)
        return sum(infrared and pid in test for pid, _, infrared in files)

    def images(name, added=True):
        return len(planned_files(name, added)[0])

    v21 = 'synthreid.py'
    assert row('`synthreid.py`') == ([images(v21)], [
        queries(v21, 'd3'), queries(v21, 'd0')
    ])
    # "controls the same"
    assert queries(v21, 'd3-d0style') == queries(v21, 'd3')
    assert queries(v21, 'd0-d3style') == queries(v21, 'd0')
    assert row('`synthreid_vi.py`') == ([images('synthreid_vi.py')],
                                        [ir_queries('synthreid_vi.py')])
    assert row('v2 ') == ([
        images(v21, False), images('synthreid_vi.py', False)
    ], [
        queries(v21, 'd3', False),
        queries(v21, 'd0', False),
        ir_queries('synthreid_vi.py', False)
    ])
    assert row('`synthreid_v1.py`') == ([images('synthreid_v1.py')],
                                        [queries('synthreid_v1.py', 'd3')])
    assert row('`synthreid_vi_v1.py`') == ([images('synthreid_vi_v1.py')], [
        ir_queries('synthreid_vi_v1.py')
    ])


def test_the_v2_1_gallery_sizes_of_the_benchmarks_table():
    """docs/benchmarks.md, "v2.1: the same checkpoints ...", the table of
    queries and gallery images per target.

    It gives d3's gallery as ``10,590 (+ 40 distractors, 20 junk)`` and
    d0's as ``10,480 (+ 40, 20)``: 10,650 and 10,540 files in
    ``bounding_box_test``, 10,630 and 10,520 gallery records once the
    junk is dropped. The generator writes 10,590 and 10,480 files in all
    (10,530 and 10,420 identity images, 40 distractors, 20 junk), so the
    evaluated galleries hold 10,570 and 10,460 items: the table counts
    the distractors and junk twice. Counted here from the Market-1501
    names (pid 0000 distractor, -1 junk; datasets spec).
    """
    table = read('docs/benchmarks.md')
    for target, domain in (('d3, d3-d0style', 'd3'), ('d0, d0-d3style',
                                                      'd0')):
        line = next(x for x in table.splitlines()
                    if x.startswith(f'| {target} |') and '->' in x)
        cell = line.split('|')[3]
        files = Counter(
            'junk' if p == -1 else 'distractor' if p == 0 else 'person'
            for p, _ in market_folder('synthreid.py', domain,
                                      'bounding_box_test'))
        claimed = numbers(cell)
        # "N (+ a distractors, b junk)": N identity images besides them;
        # "N (incl. ...)" or "N" alone: N files in all.
        if '(+' in cell.replace(' ', ''):
            claimed_files = sum(claimed[:3])
        else:
            claimed_files = claimed[0]
        assert claimed_files == sum(files.values()), (target, cell, files)


#: Chance R1 claims: (file, the text that holds the claim, base config,
#: v2.1 or v2, target domains or None for the SYSU-MM01 layout).
CHANCE_CLAIMS = [
    pytest.param(
        'README.md',
        r'chance is about ([\d.]+) % R1 with 1,750 test identities',
        'synthreid.py',
        True, ('d3', 'd0'),
        id='readme-v2.1-visible'),
    pytest.param(
        'docs/benchmarks.md',
        r'700 test identities each,\s+chance R1 about ([\d.]+) %',
        'synthreid.py',
        False, ('d3', 'd0'),
        id='benchmarks-v2-visible'),
    pytest.param(
        'README.md',
        r'visible galleries of 1,150 identities, mean of 10\s+gallery '
        r'trials; chance is about ([\d.]+) % R1',
        'synthreid_vi.py',
        True,
        None,
        id='readme-v2.1-vi'),
]


@pytest.mark.parametrize('doc,pattern,config,added,targets', CHANCE_CLAIMS)
def test_published_chance_r1_is_that_of_a_random_ranking(
        doc, pattern, config, added, targets):
    """The chance R1 the docs give next to the demo's results.

    A user reads the demo's R1 (4.18 on d3) against the chance level the
    README prints beside it. Chance R1 is the expected R1 of a random
    ranking: each query's top item is a true match with probability
    m_q / |V_q| (positives left after the protocol's removals over the
    items left; specs/evaluation.md §2-3). On SynthReID's visible targets
    an identity has 2-4 cameras of 3 images, one of each camera a query:
    about 4 positives of the 6 gallery images per identity survive the
    same-camera removal, so chance is about 2/3 of 1 / (test ids), not
    1 / (test ids). The SYSU-MM01 single-shot gallery keeps one image per
    identity and camera, where 1 / (test ids) is right.
    """
    match = re.search(pattern, read(doc))
    assert match, pattern
    claimed = float(match.group(1))
    if targets is None:
        chance = [sysu_chance_r1(config, added)]
    else:
        chance = [market_chance_r1(config, t, added) for t in targets]
    # "about": the claim rounds the chance to its printed digits; allow
    # 20 % either way.
    for value in chance:
        assert abs(claimed - value) <= 0.2 * value, (claimed, chance)


def test_v2_files_are_v2_1_files_with_the_same_labels():
    """docs/datasets.md, "v2.1": every file of v2 is in v2.1 and the new
    files are test files of new identities only, so a model trained on
    v2 is the model trained on v2.1.

    Checked on the base configs' demo plans (v2 is v2.1 without
    ``num_ids_test_added``): every v2 path is planned in v2.1; no v2.1
    training file is new; each new visible file shows an identity that
    no v2 file of its folder shows, in d0, d3 or their controls only;
    each new SYSU file belongs to an id of the test list that v2's test
    list lacks. (Each file's pixels come from its own stream of its
    labels, so the same path and labels are the same bytes; the tiny
    folders' bytes are compared in test_synthetic.py.)
    """
    for name in ('synthreid.py', 'synthreid_vi.py'):
        old_files, old_test = planned_files(name, False)
        new_files, new_test = planned_files(name, True)
        old, new = dict(old_files), dict(new_files)
        assert all(new.get(path) == ir for path, ir in old.items()), name
        added = set(new) - set(old)
        assert added, name
        if name == 'synthreid_vi.py':
            assert set(old_test) < set(new_test)
            extra = set(new_test) - set(old_test)
            for path in added:
                assert int(path.split('/')[2]) in extra, path
            continue
        shown = {}
        for path in old:
            folder = tuple(path.split('/')[:2])
            shown.setdefault(folder, set()).add(
                int(MARKET_NAME.match(path.split('/')[2]).group(1)))
        for path in added:
            domain, folder, file = path.split('/')
            assert folder in ('query', 'bounding_box_test'), path
            assert domain in ('d0', 'd3', 'd3-d0style', 'd0-d3style'), path
            pid = int(MARKET_NAME.match(file).group(1))
            assert pid > 0 and pid not in shown[(domain, folder)], path


def test_a_stray_image_in_place_of_a_deleted_one_is_refused(tmp_path):
    """docs/datasets.md, "A folder cannot be stale or partial": "a deleted
    or stray image is an error naming the split".

    The user's copy of a generated folder lost one query image and gained
    another file (a copy of a query renamed to an identity the generator
    never drew, pid 0999). Building the test split loaded both silently:
    the target is evaluated on a query set that is not the benchmark's,
    with an identity of one image that has no true match. The folder is
    both partial and holds a stray image, and the manifest's plan names
    every file the folder must hold, so this is to be refused.
    """
    from mmreid.datasets import SynthReID
    root = str(tmp_path / 'synth')
    kwargs = dict(num_domains=2, size='tiny', img_size=(32, 16))
    SynthReID(root, domain='d1', split='test', **kwargs)
    query = osp.join(root, 'd1', 'query')
    names = sorted(n for n in os.listdir(query) if n.endswith('.jpg'))
    stray = '0999_c1s1_000001_00.jpg'
    assert stray not in names
    shutil.copy(osp.join(query, names[1]), osp.join(query, stray))
    os.remove(osp.join(query, names[0]))
    with pytest.raises((RuntimeError, FileExistsError, ValueError),
                       match='d1'):
        SynthReID(root, domain='d1', split='test', **kwargs)
