import copy
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import ModuleDict, ModuleList
from torch.nn.modules.batchnorm import _BatchNorm

from mmreid.models.init_mappings import init_mappings_on
from mmreid.models.layers.mbn import resolve_norm_cfg
from mmreid.models.layers.non_local import AGWNonLocal
from mmreid.models.modality_routing import (ModalityLabels, as_modality_labels,
                                            check_modality_labels,
                                            modality_groups)
from mmreid.registry import MODELS
from ..weight_init import has_pretrained_init, init_in_mmreid_scope
from .reid_resnet import ReIDResNet


@MODELS.register_module()
class AGWResNet(ReIDResNet):
    """Two-stream ResNet of the AGW cross-modality baseline.

    The AGW baseline (Ye et al., "Deep Learning for Person
    Re-identification: A Survey and Outlook", TPAMI 2021; reference code
    ``mangye16/Cross-Modal-Re-ID-baseline``, ``model.embed_net``) gives each
    modality its own ResNet stem (``conv1``, ``bn1``, ``relu``,
    ``maxpool``, the pooling set by ``stem_pool``) and shares
    ``layer1``-``layer4`` (last stride 1), with non-local blocks after the
    last blocks of chosen stages.

    **Routing.** Each sample goes through the stem of its own modality,
    read from the labels set with :meth:`set_modality` (``ReIDModel`` sets
    them from each data sample's ``metainfo['modality']``); the stem
    outputs return to the input order before the shared trunk. There is no
    "first half visible" assumption: batches may mix modalities in any
    order, and the reference's test-time ``modal=1/2`` switch is just a
    batch whose labels are all 0 or all 1.

    **Norms.** ``norm_cfg`` goes to the shared trunk and the non-local
    ``W`` norms, so ``norm_cfg=dict(type='MBN')`` gives the MBN-AGW model;
    the stems use ``stem_norm_cfg`` (plain BN: they are modality-specific
    already).

    **ImageNet weights.** ``init_cfg=dict(type='Pretrained', ...)`` loads a
    plain ResNet (torchvision or mmpretrain keys): a load hook copies
    ``conv1.*``/``bn1.*`` into every stem (``stems.<k>.conv1``,
    ``stems.<k>.bn1``) and MBN's own hook copies the trunk BN statistics
    into every modality; the non-local blocks are not in the checkpoint
    and keep their initialisation (the identity; :class:`AGWNonLocal`
    declares ``not_in_pretrained``). Both copies are initialisations: a
    trained model's checkpoint is loaded without them
    (:mod:`mmreid.models.init_mappings`), so a one-stream model is refused
    rather than tested as this two-stream one.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        num_modalities (int): Number of stems. Defaults to 2.
        non_local_stages (Sequence[int]): Per stage, the number of
            non-local blocks, placed after the last blocks of the stage (the
            reference ``non_layers=[0, 2, 3, 0]``: after blocks 2, 3 of
            ``layer2`` and 3, 4, 5 of ``layer3`` for ResNet-50). Each entry
            must not exceed the stage's number of blocks. Defaults to (0,
            2, 3, 0).
        non_local_cfg (dict, optional): Extra :class:`AGWNonLocal`
            arguments, e.g. ``dict(reduc_ratio=2)``. Its norm is
            ``norm_cfg``.
        stem_norm_cfg (dict): Norm of the stems. Defaults to
            ``dict(type='BN')``.
        norm_cfg (dict): Norm of the shared trunk. Defaults to
            ``dict(type='BN')``.
        **kwargs: See :class:`ReIDResNet` (``last_stride`` defaults to 1;
            ``stem_pool`` sets the max pooling of every stem;
            ``deep_stem`` is not supported).
    """

    def __init__(self,
                 depth: int,
                 num_modalities: int = 2,
                 non_local_stages: Sequence[int] = (0, 2, 3, 0),
                 non_local_cfg: Optional[dict] = None,
                 stem_norm_cfg: dict = dict(type='BN'),
                 norm_cfg: dict = dict(type='BN'),
                 **kwargs) -> None:
        if kwargs.get('deep_stem', False):
            raise ValueError('AGWResNet has modality-specific plain stems; '
                             'deep_stem is not supported')
        # Resolve mmreid norm types (e.g. 'MBN') now, so that the model
        # also builds outside the mmreid default scope.
        norm_cfg = resolve_norm_cfg(norm_cfg)
        stem_norm_cfg = resolve_norm_cfg(stem_norm_cfg)
        super().__init__(depth=depth, norm_cfg=norm_cfg, **kwargs)
        self._check_non_local_stages(tuple(non_local_stages), depth)
        self.num_modalities = num_modalities
        # The single-stream stem built by ResNet is replaced by one stem
        # per modality; each pools as ReIDResNet built its max pooling
        # (``stem_pool``).
        in_channels = self.conv1.in_channels
        stem_pool = self.maxpool
        del self.conv1
        delattr(self, self.norm1_name)
        del self.relu, self.maxpool
        stems = []
        for _ in range(num_modalities):
            conv = build_conv_layer(
                self.conv_cfg,
                in_channels,
                self.stem_channels,
                kernel_size=7,
                stride=2,
                padding=3,
                bias=False)
            norm_name, norm = build_norm_layer(
                stem_norm_cfg, self.stem_channels, postfix=1)
            stems.append(
                nn.Sequential(
                    OrderedDict([('conv1', conv), (norm_name, norm),
                                 ('relu', nn.ReLU(inplace=True)),
                                 ('maxpool', copy.deepcopy(stem_pool))])))
        self.stems = ModuleList(stems)
        self.stem_norm_name = norm_name

        # Non-local blocks, keyed '<stage>_<block>' (0-based): the block
        # runs after that residual block.
        nl_cfg = dict(non_local_cfg or {})
        nl_cfg.setdefault('norm_cfg', norm_cfg)
        blocks = dict()
        for stage, (count, num_blocks) in enumerate(
                zip(non_local_stages, self.stage_blocks)):
            for block in range(num_blocks - count, num_blocks):
                blocks[f'{stage}_{block}'] = AGWNonLocal(
                    self.stage_channels(stage), **nl_cfg)
        self.non_local_stages = tuple(non_local_stages)
        self.non_locals = ModuleDict(blocks)
        self._modality: Optional[ModalityLabels] = None
        self._register_load_state_dict_pre_hook(
            self._load_plain_resnet_hook, with_module=False)
        self._freeze_stages()

    def _check_non_local_stages(self, given: Tuple[int, ...],
                                depth: int) -> None:
        """Refuse ``non_local_stages`` that do not fit the stages' blocks.

        Raises:
            ValueError: A wrong number of entries, or an entry below 0 or
                above its stage's blocks; naming the config key, the
                largest valid value for ``depth`` and the given value cut
                down to it.
        """
        blocks = tuple(self.stage_blocks)
        if len(given) == len(blocks) and all(
                0 <= count <= num for count, num in zip(given, blocks)):
            return
        fix = ''
        if len(given) == len(blocks):
            fix = (', e.g. '
                   f'{tuple(max(0, min(c, n)) for c, n in zip(given, blocks))}'
                   ' (the given value cut down to it)')
        raise ValueError(
            f'model.backbone.non_local_stages={given} does not fit '
            f'AGWResNet depth={depth}: it gives the number of non-local '
            f'blocks after the last blocks of each of its {len(blocks)} '
            f'stages, so each entry lies between 0 and the stage\'s blocks, '
            f'at most {blocks}. Set model.backbone.non_local_stages to a '
            f'value within that{fix}.')

    # ------------------------------------------------------------------
    def set_modality(self, labels: Optional[ModalityLabels]) -> None:
        """Set the modality of each sample (routes it to its stem).

        Args:
            labels (int | Sequence[int] | Tensor | None): Shape (N,), or one
                int for a single-modality batch.
        """
        self._modality = None if labels is None else as_modality_labels(labels)

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """Initialise; without pretrained weights all stems start equal.

        In the reference, both stems start from the same ImageNet stem; a
        random initialisation keeps that property by copying stem 0 into
        the others (with ``init_cfg`` Pretrained the load hook gives every
        stem the checkpoint's stem instead).
        """
        already = self.is_init
        super().init_weights()
        if not has_pretrained_init(self.init_cfg) and not already:
            state = self.stems[0].state_dict()
            for stem in self.stems[1:]:
                stem.load_state_dict(state)

    def _freeze_stages(self) -> None:
        if not hasattr(self, 'stems'):
            # Called by ResNet.__init__ before the stems exist.
            return super()._freeze_stages()
        if self.frozen_stages >= 0:
            for stem in self.stems:
                stem.eval()
                for param in stem.parameters():
                    param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            layer = getattr(self, f'layer{i}')
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False
        # The non-local blocks run between a stage's blocks
        # (forward_stage), so a frozen stage freezes them too: they stay
        # as they start (the identity, W's norm zeroed) or were loaded.
        for key, block in self.non_locals.items():
            if int(key.split('_')[0]) < self.frozen_stages:
                block.eval()
                for param in block.parameters():
                    param.requires_grad = False

    #: What :meth:`init_mapping_sources` finds, and whose tensors they are
    #: (see :mod:`mmreid.models.init_mappings`).
    init_mapping_source = ('a single-stream stem (<backbone>.conv1.*, no '
                           '<backbone>.stems.<k>.*)')
    init_mapping_model = ('a one-stream model (e.g. a plain ResNet '
                          'baseline)')

    @staticmethod
    def init_mapping_sources(state_dict: dict, prefix: str) -> bool:
        """Whether ``state_dict`` holds a single-stream stem for this
        backbone."""
        return f'{prefix}conv1.weight' in state_dict \
            and f'{prefix}stems.0.conv1.weight' not in state_dict

    def _load_plain_resnet_hook(self, state_dict: dict, prefix: str, *args,
                                **kwargs) -> None:
        """Copy a single-stream stem (``conv1``, ``bn1``) into every stem,
        while :func:`~mmreid.models.init_mappings.init_mappings_on`."""
        if not init_mappings_on() or not self.init_mapping_sources(
                state_dict, prefix):
            return
        renames = {f'{prefix}conv1.': 'conv1.'}
        # torchvision and mmpretrain both call the stem norm ``bn1``.
        renames[f'{prefix}bn1.'] = f'{self.stem_norm_name}.'
        for key in [k for k in state_dict if k.startswith(tuple(renames))]:
            old = next(p for p in renames if key.startswith(p))
            value = state_dict.pop(key)
            rest = renames[old] + key[len(old):]
            for k in range(self.num_modalities):
                state_dict[f'{prefix}stems.{k}.{rest}'] = value.clone()

    # ------------------------------------------------------------------
    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Route each sample through its modality's stem.

        Args:
            x (Tensor): Images, shape (N, 3, H, W).

        Returns:
            Tensor: Stem features (N, C, H / 4, W / 4), input order.
        """
        labels = check_modality_labels(self._modality, x.size(0),
                                       self.num_modalities, x.device,
                                       type(self).__name__)
        indices, inverse = modality_groups(labels, self.num_modalities)
        self._check_stem_batch_statistics(indices)
        outs: List[torch.Tensor] = []
        for k, idx in enumerate(indices):
            if idx.numel():
                outs.append(self.stems[k](x.index_select(0, idx)))
        out = torch.cat(outs)
        if inverse is not None:
            out = out.index_select(0, inverse)
        return out

    def _check_stem_batch_statistics(self, indices) -> None:
        """Refuse a modality of one sample for a stem that normalises with
        batch statistics.

        A stem's BN in training mode normalises its modality's sub-batch
        alone; on a single image that is a norm over H x W only (an
        instance norm), which wipes out the image's channel means and
        scales, as :class:`~mmreid.models.layers.MBN` refuses in the trunk.
        A stem in eval mode (testing, ``norm_eval``, ``frozen_stages``)
        uses running statistics and takes any batch.

        Args:
            indices (list[Tensor]): Per modality, its samples' indices.

        Raises:
            ValueError: Naming the modality, its stem's norm and the fix.
        """
        for k, idx in enumerate(indices):
            norm = getattr(self.stems[k], self.stem_norm_name)
            if idx.numel() != 1 or not isinstance(norm, _BatchNorm) \
                    or not norm.training:
                continue
            raise ValueError(
                f'{type(self).__name__}: modality {k} has 1 sample in this '
                f'training batch, and its stem norm stems.{k}.'
                f'{self.stem_norm_name} normalises its modality with batch '
                'statistics, which would be meaningless (a norm over H x W '
                'of one image). Use a sampler that puts >= 2 samples of '
                'every present modality in each batch per GPU (e.g. '
                'CrossModalityIdentitySampler) and drop_last')

    def forward_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """The blocks of a shared stage, with its non-local blocks."""
        for j, block in enumerate(getattr(self, self.res_layers[stage])):
            x = block(x)
            key = f'{stage}_{j}'
            if key in self.non_locals:
                x = self.non_locals[key](x)
        return x
