"""The visible-infrared SynthReID variant as a dataset.

Kept out of :mod:`.synthetic`, whose source is hashed into every generated
folder's manifest: this class only parses, it decides no pixel.
"""
import os.path as osp
from typing import Optional, Sequence

from mmreid.registry import DATASETS
from .synthetic import SYNTHREID_PRESETS, generate_synthreid  # noqa: F401
from .sysu_mm01 import SYSUMM01


@DATASETS.register_module()
class SynthReIDVI(SYSUMM01):
    """The visible-infrared SynthReID variant, generated on first use.

    The tree has the exact SYSU-MM01 layout (cams 1, 2, 4, 5 visible; 3, 6
    infrared; ``exp/{train,val,test}_id.txt``) and is parsed by
    :class:`SYSUMM01`, so the SYSU-MM01 protocol (``SYSUMetric``) applies
    unchanged. Identity cues shared by the two modalities are shape cues
    (pattern, sleeves, accessories, proportions): infrared intensities are
    drawn independently of the garment colours, as in real thermal images.

    Args:
        data_root (str): Root of the generated data (``SYSU-MM01`` is
            created inside it).
        split (str): ``'train'`` (train + val ids) or ``'test'``.
        mode (str): ``'all'`` or ``'indoor'`` gallery cameras.
        size (str): Preset, see :data:`SYNTHREID_PRESETS`.
        seed (int): Generation seed.
        img_size (Sequence[int]): ``(height, width)`` of the images.
        overrides (dict, optional): Preset fields to override.
        **kwargs: See :class:`SYSUMM01`.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 mode: str = 'all',
                 size: str = 'small',
                 seed: int = 0,
                 img_size: Sequence[int] = (128, 64),
                 overrides: Optional[dict] = None,
                 **kwargs) -> None:
        # The SYSU-MM01 parser checks its layout on construction, so the
        # (atomic, idempotent) generation runs first.
        generate_synthreid(
            data_root,
            size=size,
            modality='vi',
            seed=seed,
            img_size=tuple(img_size),
            **dict(overrides or {}))
        self.synth_root = data_root
        # The name is set before loading, so the summary table and the
        # records carry it.
        name = 'synthreid-vi' if split == 'train' else f'synthreid-vi-{mode}'
        metainfo = dict(dataset_name=name)
        metainfo.update(kwargs.pop('metainfo', None) or {})
        super().__init__(
            osp.join(data_root, 'SYSU-MM01'),
            split=split,
            mode=mode,
            metainfo=metainfo,
            **kwargs)

    def published_counts(self) -> None:
        """Generated data: SYSU-MM01's published counts do not apply."""
        return None
