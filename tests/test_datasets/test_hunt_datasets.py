"""Wrong-number hunt: dataset parsing and protocol files.

Each test checks a printed or loaded number against the protocol's
definition (specs/datasets.md, specs/evaluation.md, the official SYSU-MM01
split files), computed here from the definition, not from mmreid's code.
"""
import os.path as osp

import pytest

from mmreid.datasets import SYSUMM01, QMULiLIDS
from ..fixtures.dataset_trees import make_ilids
from ..fixtures.processes import REPO, load_tool

TOOL = osp.join('tools', 'misc', 'verify_dataset.py')
SYSU_FIXTURES = osp.join(REPO, '..', 'shared', 'fixtures', 'sysu_mm01')


def by_role(dataset):
    """``role -> records`` of a built dataset."""
    out = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        out.setdefault(info['role'], []).append(info)
    return out


def test_verify_dataset_accepts_ilids_with_the_shipped_splits(tmp_path):
    """``tools/misc/verify_dataset.py`` on a complete QMUL-iLIDS copy.

    The user runs the tool on a config whose test set is
    ``QMULiLIDS(split='test')`` (the union of the ten shipped splits, as
    the DIMN config's ``ilids`` target has it). The tool printed one
    ``ERROR: ... N queries share the camera of every true match`` per
    split and exited 1, so the user is told the copy (or the protocol) is
    broken and that the Market rule would remove the true matches.

    By definition (evaluation spec §6.1/§6.2, datasets spec §3.4) every
    split has one query and one *other* gallery image per test id, with
    query camid 0 and gallery camid 1: no query shares the camera of its
    true match, and each keeps exactly one valid positive. The union lists
    an image once per role; an image that is a query of one split and a
    gallery image of another has camid 0 as a query and 1 as a gallery
    image. The check must use the query record of a query path. The exit
    status is 0 and no split is reported.
    """
    root, _ = make_ilids(tmp_path / 'ilids')
    dataset = QMULiLIDS(root, split='test')
    roles = by_role(dataset)
    # The reference: per split, from the records of each role.
    queries = {r['img_path']: r for r in roles['query']}
    gallery = {r['img_path']: r for r in roles['gallery']}
    assert set(queries) & set(gallery), 'the union must list some ' \
        'image in both roles for this test to mean something'
    for split in dataset.metainfo['dg_splits']:
        members = [gallery[p] for p in split['gallery']]
        for path in split['query']:
            query = queries[path]
            valid = [
                g for g in members if g['pid'] == query['pid']
                and g['camid'] != query['camid']
            ]
            assert len(valid) == 1
    tool = load_tool(TOOL)
    errors = tool.split_match_errors('test', dataset)
    assert errors == [], errors[0]

    config = tmp_path / 'ilids_config.py'
    config.write_text('test_dataloader = dict(dataset=dict(type='
                      f"'QMULiLIDS', data_root={root!r}, split='test'))\n")
    assert tool.main([str(config), '--split', 'test']) == 0


def test_ilids_split_trains_on_the_ids_it_does_not_test(tmp_path):
    """QMUL-iLIDS ``split='train', split_index=i`` trains on the 59 ids the
    split does not test (evaluation spec §6.1: 60 test ids, 59 train),
    with every image of them; a split's query and gallery image of a test
    id are two different images of that id (datasets spec §3.4). Equal
    counts would not tell a train split that holds test identities."""
    root, num_images = make_ilids(tmp_path / 'ilids')
    for index in (0, 7):
        test = by_role(QMULiLIDS(root, split='test', split_index=index))
        train = by_role(QMULiLIDS(root, split='train',
                                  split_index=index))['train']
        test_ids = {r['pid'] for r in test['query']}
        train_ids = {r['orig_pid'] for r in train}
        assert len(test_ids) == 60 and len(train_ids) == 59
        assert test_ids.isdisjoint(train_ids)
        assert test_ids | train_ids == set(range(1, 120))
        assert {r['pid'] for r in test['gallery']} == test_ids
        assert not ({r['img_path']
                     for r in test['query']} & {r['img_path']
                                                for r in test['gallery']})
        # Every image of a training id (the fixture names are
        # <pid:04d><idx:03d>.jpg).
        names = {osp.basename(r['img_path']) for r in train}
        per_id = {}
        for name in names:
            per_id.setdefault(int(name[:4]), set()).add(name)
        assert sorted(train_ids) == sorted(per_id)
        assert len(train) == len(names)
        assert len(train) < num_images


def _official_counts(perms, ids, cams):
    """Images and ids of ``ids`` in ``cams`` (1-based), read off the
    official ``rand_perm_cam``: one permutation entry per image."""

    def images(cam, pid):
        entries = perms[cam - 1][0]
        if pid > len(entries):
            return 0
        matrix = entries[pid - 1][0]  # each per-id matrix is wrapped
        row = matrix[0]  # trial 1: a permutation of the n images
        return len(row) if isinstance(row, list) else 1

    counts = {pid: sum(images(cam, pid) for cam in cams) for pid in ids}
    return dict(
        images=sum(counts.values()),
        ids=sum(1 for n in counts.values() if n),
        cams=len(cams))


@pytest.mark.skipif(
    not osp.isfile(osp.join(SYSU_FIXTURES, 'rand_perm_cam.mat')),
    reason='the official SYSU-MM01 split files are in '
    '../shared/fixtures/sysu_mm01/, which this checkout does not have')
def test_sysu_published_test_counts_are_the_official_files(tmp_path):
    """SYSU-MM01's published test counts, which ``verify_dataset`` turns
    into errors where marked verified, against the dataset authors'
    ``rand_perm_cam.mat`` and ``test_id.mat`` (wuancong/SYSU-MM01): the
    query is every infrared image (cams 3, 6) of the 96 test ids, the
    gallery pool every visible image of them in cams 1, 2, 4, 5 (all) or
    1, 2 (indoor) (datasets spec §3.6). A wrong number here flags every
    complete copy as broken, or passes a partial one."""
    mat4py = pytest.importorskip('mat4py')
    perms = mat4py.loadmat(osp.join(SYSU_FIXTURES,
                                    'rand_perm_cam.mat'))['rand_perm_cam']
    test_ids = mat4py.loadmat(osp.join(SYSU_FIXTURES, 'test_id.mat'))['id']
    assert len(test_ids) == 96
    official = {
        'query': _official_counts(perms, test_ids, (3, 6)),
        ('gallery', 'all'): _official_counts(perms, test_ids, (1, 2, 4, 5)),
        ('gallery', 'indoor'): _official_counts(perms, test_ids, (1, 2)),
    }
    for mode in ('all', 'indoor'):
        published = SYSUMM01.MODE_COUNTS[mode]
        for role, key in (('query', 'query'), ('gallery', ('gallery',
                                                           mode))):
            expected = official[key]
            found = {k: published[role][k] for k in expected}
            assert found == expected, (mode, role)
