"""A record without ``modality`` is visible (0) only in a dataset that
declares no other modality: a cross-modality dataset whose parser forgot
it would otherwise train and test as all-visible without a word."""
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
