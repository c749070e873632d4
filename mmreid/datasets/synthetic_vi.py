"""The visible-infrared SynthReID variant as a dataset.

This class only parses (through :class:`SYSUMM01`) and checks the parsed
splits against the generator's manifest; it decides no pixel.
"""
import os.path as osp
from typing import List, Optional, Sequence

from mmreid.registry import DATASETS
from .dataset_options import own_metainfo
from .synthetic import SYNTHREID_PRESETS  # noqa: F401
from .synthetic import (check_parsed_counts, check_records_planned,
                        generate_synthreid, preset_overrides)
from .sysu_mm01 import SYSUMM01


@DATASETS.register_module()
class SynthReIDVI(SYSUMM01):
    """The visible-infrared SynthReID variant, generated on first use.

    The tree has the exact SYSU-MM01 layout (cams 1, 2, 4, 5 visible; 3, 6
    infrared; ``exp/{train,val,test}_id.txt``) and is parsed by
    :class:`SYSUMM01`, so the SYSU-MM01 protocol (``SYSUMetric``) applies
    unchanged. By default (``ir_mode='dye'``, ``ir_luminance=0.7``,
    SynthReID v2.2) infrared intensities follow the garment dyes through a
    fixed mapping, mixed with the visible luminance, and the shape cues
    survive 64x32 images. With ``ir_mode='hard'`` (the first release) the
    identity cues shared by the two modalities are small shape cues only:
    infrared intensities are drawn independently of the garment colours.

    Args:
        data_root (str): Root of the generated data (``SYSU-MM01`` is
            created inside it).
        split (str): ``'train'`` (train + val ids) or ``'test'``.
        mode (str): ``'all'`` or ``'indoor'`` gallery cameras.
        size (str): Preset, see :data:`SYNTHREID_PRESETS`.
        seed (int): Generation seed.
        img_size (Sequence[int]): ``(height, width)`` of the images.
        ir_mode (str, optional): ``'dye'`` (default, learnable) or
            ``'hard'`` (the first release), see :func:`generate_synthreid`.
        ir_luminance (float, optional): ``'dye'`` only: weight of the
            luminance (default 0.7).
        ir_gap (float): Sensor-like infrared differences, 0 to about 1 (a
            finite number >= 0).
        ir_contrast (float): Contrast of infrared images around mid-grey,
            in (0, 1] (1: unchanged).
        num_workers (int): Processes that render the folder.
        overrides (dict, optional): Preset fields to override (see
            :func:`generate_synthreid`). They may also be passed as keyword
            arguments (``num_ids_test_added=3``).
        **kwargs: See :class:`SYSUMM01`.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 mode: str = 'all',
                 size: str = 'small',
                 seed: int = 0,
                 img_size: Sequence[int] = (128, 64),
                 ir_mode: Optional[str] = None,
                 ir_luminance: Optional[float] = None,
                 ir_gap: float = 0.0,
                 ir_contrast: float = 1.0,
                 num_workers: int = 1,
                 overrides: Optional[dict] = None,
                 **kwargs) -> None:
        overrides = preset_overrides(overrides, kwargs)
        # The SYSU-MM01 parser checks its layout on construction, so the
        # (atomic, idempotent) generation runs first.
        self._manifest = generate_synthreid(
            data_root,
            size=size,
            modality='vi',
            seed=seed,
            img_size=tuple(img_size),
            ir_mode=ir_mode,
            ir_luminance=ir_luminance,
            ir_gap=ir_gap,
            ir_contrast=ir_contrast,
            num_workers=num_workers,
            **overrides)
        self.synth_root = data_root
        # The name is set before loading, so the summary table and the
        # records carry it.
        name = 'synthreid-vi' if split == 'train' else f'synthreid-vi-{mode}'
        self._synth_name = name
        metainfo = own_metainfo(
            type(self).__name__, dict(dataset_name=name),
            kwargs.pop('metainfo', None))
        super().__init__(
            osp.join(data_root, 'SYSU-MM01'),
            split=split,
            mode=mode,
            metainfo=metainfo,
            **kwargs)

    def published_counts(self) -> None:
        """Generated data: SYSU-MM01's published counts do not apply."""
        return None

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        # Every image of the split's ids, per role, must be one the
        # generator wrote: a deleted or stray image is an error.
        images = self._manifest['counts']['SYSU-MM01']['images']
        if self.split == 'train':
            expected = dict(
                train=sum(
                    n for split in ('train', 'val')
                    for n in images[split].values()))
        else:
            cams = dict(
                query=self.INFRARED_CAMS, gallery=self.GALLERY_CAMS[self.mode])
            expected = {
                role: sum(images['test'].get(f'cam{c}', 0) for c in cams[role])
                for role in ('query', 'gallery')
            }
        found = {
            role: sum(r['role'] == role for r in data_list)
            for role in expected
        }
        check_parsed_counts(self.synth_root, self._synth_name, self.split,
                            found, expected)
        check_records_planned(self.synth_root, self._manifest['params'],
                              data_list, self._synth_name, self.split)
        return data_list
