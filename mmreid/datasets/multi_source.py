import copy
from typing import List, Sequence, Union

from mmengine.dataset import BaseDataset

from mmreid.registry import DATASETS


@DATASETS.register_module()
class ConcatReIDDataset(BaseDataset):
    """Training sets of several sources, with identities that never collide.

    Sources are concatenated in config order. Source ``i`` gets
    ``pid_offset_i`` = the number of identities of the sources before it (and
    likewise a camid offset), so the classifier has ``sum(num_pids)`` rows and
    a pid maps back to (source, local pid) through ``metainfo['sources']``.
    Every record keeps its ``dataset`` name and gains ``dsetid`` = i.

    Args:
        datasets (Sequence[dict | BaseDataset]): The training sets; each
            must be a train split whose pids are 0..n-1.
        pipeline (Sequence): Transforms applied after the offsets. The
            sources should then have no pipeline of their own.
        lazy_init (bool): Defer loading until first access.
    """

    def __init__(self,
                 datasets: Sequence[Union[dict, BaseDataset]],
                 pipeline: Sequence = (),
                 lazy_init: bool = False) -> None:
        if not datasets:
            raise ValueError('ConcatReIDDataset needs at least one dataset')
        self.datasets: List[BaseDataset] = [
            DATASETS.build(d) if isinstance(d, dict) else d for d in datasets
        ]
        super().__init__(
            ann_file='',
            pipeline=list(pipeline),
            lazy_init=lazy_init,
            serialize_data=True)

    def load_data_list(self) -> List[dict]:
        data_list = []
        sources = []
        pid_offset = 0
        camid_offset = 0
        for dsetid, dataset in enumerate(self.datasets):
            dataset.full_init()
            records = [dataset.get_data_info(i) for i in range(len(dataset))]
            pids = sorted({r['pid'] for r in records})
            if pids != list(range(len(pids))):
                raise ValueError(
                    f'source {dsetid} ({type(dataset).__name__}) must be a '
                    f'training split with pids 0..n-1, got pids {pids[:5]}'
                    f'{"..." if len(pids) > 5 else ""}')
            cams = sorted({r['camid'] for r in records})
            num_cams = cams[-1] + 1 if cams else 0
            name = records[0].get('dataset', type(dataset).__name__) \
                if records else type(dataset).__name__
            for r in records:
                r = copy.deepcopy(r)
                r.pop('sample_idx', None)
                r['pid'] += pid_offset
                r['camid'] += camid_offset
                r['dsetid'] = dsetid
                data_list.append(r)
            sources.append(
                dict(
                    name=name,
                    pid_offset=pid_offset,
                    num_pids=len(pids),
                    camid_offset=camid_offset,
                    num_cams=num_cams,
                    num_images=len(records)))
            pid_offset += len(pids)
            camid_offset += num_cams
        self._metainfo.update(
            sources=sources,
            num_pids=pid_offset,
            num_cams=camid_offset,
            num_images=len(data_list),
            dataset_name='+'.join(s['name'] for s in sources))
        return data_list

    @property
    def num_pids(self) -> int:
        return self.metainfo['num_pids']

    def get_pids(self) -> List[int]:
        """pid of every sample, in dataset order (used by samplers)."""
        return [self.get_data_info(i)['pid'] for i in range(len(self))]
