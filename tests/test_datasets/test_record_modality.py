"""A record without ``modality`` is visible (0) only in a dataset that
declares no other modality: a cross-modality dataset whose parser forgot
it would otherwise train and test as all-visible without a word."""
import numpy as np
import pytest

from mmreid.datasets import BaseReIDDataset


class TinyReID(BaseReIDDataset):
    """Two identities, two cameras; camera 1 is infrared when
    ``with_modality``."""

    METAINFO = dict(dataset_name='tiny')

    def __init__(self, *args, with_modality=False, **kwargs):
        self.with_modality = with_modality
        super().__init__(*args, **kwargs)

    def parse_split(self, role):
        records = []
        for pid in (1, 2):
            for camid in (0, 1):
                record = dict(
                    img_path=f'{role}/{pid}_c{camid}.jpg',
                    pid=pid,
                    camid=camid)
                if self.with_modality:
                    record['modality'] = camid
                records.append(record)
        return records


class TinyVI(TinyReID):
    MODALITIES = dict(visible=0, infrared=1)


def test_visible_only_dataset_defaults_to_visible(tmp_path):
    ds = TinyReID(data_root=str(tmp_path))
    assert [ds.get_data_info(i)['modality'] for i in range(len(ds))] == [0] * 4


@pytest.mark.parametrize('cls, metainfo', [
    (TinyVI, None),
    (TinyReID, dict(modalities=('visible', 'infrared'))),
])
def test_missing_modality_of_a_cross_modality_dataset_is_refused(
        tmp_path, cls, metainfo):
    with pytest.raises(
            ValueError,
            match=r"tiny \(Tiny(VI|ReID)\) declares 2 modalities but the "
            r"train record of 'train/1_c0\.jpg' has no \"modality\""):
        cls(data_root=str(tmp_path), metainfo=metainfo)
    ds = cls(data_root=str(tmp_path), metainfo=metainfo, with_modality=True)
    assert [ds.get_data_info(i)['modality']
            for i in range(len(ds))] == [0, 1, 0, 1]


def test_the_shipped_cross_modality_datasets_declare_their_modalities():
    """So that a parser change that forgets ``modality`` is refused."""
    from mmreid.datasets import LLCM, SYSUMM01, RegDB, SynthReIDVI
    for cls in (SYSUMM01, SynthReIDVI, RegDB, LLCM):
        assert len(set(cls.MODALITIES.values())) == 2, cls.__name__


class OddValue(TinyReID):
    """TinyReID whose record of identity 2, camera 1 has ``key=value``."""

    def __init__(self, *args, key, value, **kwargs):
        self.key, self.value = key, value
        super().__init__(*args, **kwargs)

    def parse_split(self, role):
        records = super().parse_split(role)
        records[3][self.key] = self.value
        return records


@pytest.mark.parametrize('key, value', [('pid', 2.5), ('camid', 1.5),
                                        ('modality', 0.5), ('pid', '2b')])
def test_a_non_integral_pid_camid_or_modality_is_refused(tmp_path, key, value):
    """int() truncated them: a test pid of 2.5 was scored as identity 2,
    a modality of 0.5 trained as visible."""
    with pytest.raises(
            ValueError,
            match=rf"tiny \(OddValue\): the query record of "
            rf"'query/2_c1\.jpg' has {key}={value!r}, not an integer"):
        OddValue(data_root=str(tmp_path), split='test', key=key, value=value)


@pytest.mark.parametrize('value', [2.0, '2', np.int64(2)])
def test_an_integral_pid_of_another_type_is_read_as_that_int(tmp_path, value):
    ds = OddValue(
        data_root=str(tmp_path), split='test', key='pid', value=value)
    pids = [ds.get_data_info(i)['pid'] for i in range(len(ds))]
    assert pids == [1, 1, 2, 2] * 2
    assert {type(pid) for pid in pids} == {int}
