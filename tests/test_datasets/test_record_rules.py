"""The rules :class:`BaseReIDDataset` applies to every parsed record.

A record repeated in one role was counted twice (a gallery of 30 images
summarised as 40, R10 83.33 -> 66.67), a string pid ``'-1'`` trained as
an extra class and a string ``'0'`` query passed as a person, and a record
without ``camid`` raised a bare ``KeyError: 'camid'``.
"""
import copy
import re

import numpy as np
import pytest

from mmreid.datasets import BaseReIDDataset


def rec(path, pid, camid=0):
    return dict(img_path=path, pid=pid, camid=camid)


#: Two identities seen by two cameras, the query one image per identity.
RECORDS = dict(
    train=[rec(f'train/{p}_c{c}.jpg', p, c) for p in (3, 7) for c in (0, 1)],
    query=[rec(f'test/{p}_q.jpg', p, 0) for p in (3, 7)],
    gallery=[rec(f'test/{p}_c1.jpg', p, 1) for p in (3, 7)])


class ListReID(BaseReIDDataset):
    """Records given per role (``records``), as a user's list file."""

    METAINFO = dict(dataset_name='listed')

    def __init__(self, *args, records, **kwargs):
        self.records = records
        super().__init__(*args, **kwargs)

    def parse_split(self, role):
        return copy.deepcopy(self.records[role])


class DistractorListReID(ListReID):
    DISTRACTOR_PID = 0


def build(tmp_path, records, split='test', cls=ListReID):
    ds = cls(data_root=str(tmp_path), split=split, records=records)
    ds.full_init()
    return ds


def changed(role, index=None, append=None, **values):
    """A copy of :data:`RECORDS` with ``records[role][index]`` updated by
    ``values`` (a key set to ``None`` is removed) or ``append`` added."""
    records = copy.deepcopy(RECORDS)
    if append is not None:
        records[role].append(append)
    else:
        record = records[role][index]
        record.update(values)
        for key in [k for k, v in values.items() if v is None]:
            del record[key]
    return records


def infos(ds, key, role=None):
    return [
        ds.get_data_info(i)[key] for i in range(len(ds))
        if role is None or ds.get_data_info(i)['role'] == role
    ]


# -- an image listed twice in one role ------------------------------------
@pytest.mark.parametrize('role, split, index, pid', [
    ('gallery', 'test', 0, 3),
    ('gallery', 'test', 0, 7),
    ('query', 'test', 1, 7),
    ('train', 'train', 2, 7),
])
def test_an_image_listed_twice_in_one_role_is_refused(tmp_path, role, split,
                                                      index, pid):
    """Both positions and pids are named; the repeat may carry another pid
    (one image, two people: mAP 100 -> 98.125)."""
    first = RECORDS[role][index]
    records = changed(role, append=dict(first, pid=pid))
    repeat = len(RECORDS[role])
    with pytest.raises(
            ValueError,
            match=rf"listed \(ListReID\): the {role} records {index} "
            rf"\(pid {first['pid']}\) and {repeat} \(pid {pid}\) of "
            rf"parse_split\('{role}'\) are both "
            rf"'{re.escape(first['img_path'])}': an image listed twice"):
        build(tmp_path, records, split)


def test_the_same_path_written_another_way_is_a_repeat(tmp_path):
    records = changed('gallery', append=rec('test/./3_c1.jpg', 3, 1))
    with pytest.raises(ValueError, match='listed twice in one role'):
        build(tmp_path, records)


def test_an_image_in_the_query_and_in_the_gallery_is_allowed(tmp_path):
    """Each role lists it once (QMUL-iLIDS's splits list an image once
    per role): one query, one more gallery image."""
    ds = build(tmp_path, changed('gallery', append=RECORDS['query'][0]))
    assert ds.metainfo['role_counts'] == dict(query=2, gallery=3)


# -- string pids are read before junk, distractor and relabelling --------
def test_a_string_junk_pid_is_dropped_from_training(tmp_path):
    """``'-1'`` is junk as -1 is: the images of identity 3 marked junk
    leave one class (identity 7), not two."""
    records = copy.deepcopy(RECORDS)
    for record in records['train']:
        record['pid'] = f'{record["pid"]:04d}'
    records['train'][0]['pid'] = records['train'][1]['pid'] = '-1'
    ds = build(tmp_path, records, split='train')
    assert ds.num_pids == 1
    assert infos(ds, 'img_path') == ['train/7_c0.jpg', 'train/7_c1.jpg']
    assert infos(ds, 'pid') == [0, 0]
    assert infos(ds, 'orig_pid') == [7, 7]


@pytest.mark.parametrize('role', ['query', 'gallery'])
def test_a_string_junk_pid_is_dropped_from_the_test_split(tmp_path, role):
    ds = build(tmp_path, changed(role, 0, pid='-1'))
    assert -1 not in infos(ds, 'pid')
    assert ds.metainfo['role_counts'][role] == 1


@pytest.mark.parametrize('pid', [0, '0', '00'])
def test_a_string_distractor_query_is_refused_as_an_int_one(tmp_path, pid):
    records = changed('query', 0, pid=pid)
    records['gallery'].append(rec('test/0_c1.jpg', 0, 1))
    with pytest.raises(ValueError, match='carry the distractor label pid 0'):
        build(tmp_path, records, cls=DistractorListReID)


def test_a_string_distractor_is_kept_out_of_training(tmp_path):
    records = changed('train', append=rec('train/0_c0.jpg', '0', 0))
    ds = build(tmp_path, records, split='train', cls=DistractorListReID)
    assert ds.num_pids == 2
    assert 'train/0_c0.jpg' not in infos(ds, 'img_path')


def test_mixed_string_and_int_train_pids_relabel_in_integer_order(tmp_path):
    """Sorted as integers (2 < 9 < 10; as strings '10' < '2'); it raised
    ``TypeError: '<' not supported between 'int' and 'str'``."""
    records = dict(
        RECORDS,
        train=[
            rec('train/a.jpg', '10'),
            rec('train/b.jpg', 9),
            rec('train/c.jpg', '0002'),
            rec('train/d.jpg', 2)
        ])
    ds = build(tmp_path, records, split='train')
    assert infos(ds, 'pid') == [2, 1, 0, 0]
    assert infos(ds, 'orig_pid') == [10, 9, 2, 2]


# -- a record without a required key -------------------------------------
@pytest.mark.parametrize('role, split',
                         [('train', 'train'), ('gallery', 'test'),
                          ('query', 'test')])
@pytest.mark.parametrize('key', ['camid', 'pid'])
def test_a_record_without_a_required_key_is_named(tmp_path, role, split, key):
    path = RECORDS[role][1]['img_path']
    with pytest.raises(
            KeyError,
            match=rf"listed \(ListReID\): the {role} record 1 of "
            rf"parse_split\('{role}'\) \(img_path='{re.escape(path)}'\) "
            rf"has no '{key}'"):
        build(tmp_path, changed(role, 1, **{key: None}), split)


def test_a_record_without_img_path_is_named(tmp_path):
    with pytest.raises(
            KeyError,
            match=r"the gallery record 0 of parse_split\('gallery'\) "
            r"\(img_path=None\) has no 'img_path'"):
        build(tmp_path, changed('gallery', 0, img_path=None))


# -- labels that are no integers, and cameras below 0 ----------------------
@pytest.mark.parametrize('key, value', [('pid', True), ('camid', False),
                                        ('pid', np.bool_(True))])
def test_a_bool_label_is_refused(tmp_path, key, value):
    """``True`` passed as pid 1 (a bool is an ``int`` to Python): a parser
    that wrote a flag in place of the label trained and ranked it as an
    identity."""
    message = rf'has {key}={value!r}, not an integer'
    with pytest.raises(ValueError, match=message):
        build(tmp_path, changed('gallery', 0, **{key: value}))


def test_a_negative_camid_is_refused(tmp_path):
    """Camera ids count from 0; -3 was accepted, and offsets of combined
    sources (camid + offset) then put it among another source's cameras."""
    with pytest.raises(ValueError, match=r'has camid=-3, below 0'):
        build(tmp_path, changed('gallery', 0, camid=-3))
