import contextlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer, build_plugin_layer
from mmengine.model import ModuleDict
from mmpretrain.models.backbones import ResNet
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck
from torch.utils.checkpoint import checkpoint

from mmreid.registry import MODELS
from mmreid.utils.registry_suggestions import check_not_shadowed
from ..layers.mbn import resolve_norm_cfg
from ..weight_init import has_pretrained_init, init_in_mmreid_scope

PLUGIN_POSITIONS = ('after_stage', )

#: Auxiliary plugin outputs: plugin abbr -> 0-based stage -> named tensors.
AuxOutputs = Dict[str, Dict[int, Dict[str, torch.Tensor]]]

#: The stem max pooling of mmpretrain's and torchvision's ResNet.
DEFAULT_STEM_POOL = dict(kernel_size=3, stride=2, padding=1, ceil_mode=False)


@contextlib.contextmanager
def buffers_kept(module: nn.Module) -> Iterator[None]:
    """Undo, on exit, every change the body makes to ``module``'s buffers.

    The recomputation of a checkpointed block repeats a forward that
    already ran: a BatchNorm in training mode (an MBN's, an IBN's) would
    update its running mean and variance and ``num_batches_tracked`` a
    second time for the same batch. Restoring every buffer of the block
    (the running statistics of any momentum, ``momentum=None``'s count
    included) leaves them as that one forward set them.

    Args:
        module (nn.Module): The block whose buffers (its submodules'
            included) are restored.
    """
    saved = [(owner, name, buf.clone()) for owner in module.modules()
             for name, buf in owner._buffers.items() if buf is not None]
    try:
        yield
    finally:
        with torch.no_grad():
            for owner, name, value in saved:
                owner._buffers[name].copy_(value)


class _CheckpointOnce:
    """``with_cp`` of a residual block without a second statistics update.

    mmpretrain's blocks checkpoint with torch's reentrant
    ``checkpoint(_inner_forward, x)``, which recomputes the block in the
    backward pass with its BatchNorms in training mode: every running
    statistic moved twice per step (``num_batches_tracked`` 2, an
    effective momentum of 0.19 for 0.1). This block instead runs the
    non-reentrant checkpoint (which also trains the block when ``x``
    needs no gradient, e.g. after a frozen stem) and recomputes inside
    :func:`buffers_kept`: the outputs, gradients and running statistics
    are those of the same block without ``with_cp``, only the
    activations are recomputed instead of kept.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block, checkpointed when ``with_cp`` and autograd records."""
        if not (self.with_cp and torch.is_grad_enabled()):
            return self._forward_uncheckpointed(x)
        return checkpoint(
            self._forward_uncheckpointed,
            x,
            use_reentrant=False,
            context_fn=lambda: (contextlib.nullcontext(), buffers_kept(self)))

    def _forward_uncheckpointed(self, x: torch.Tensor) -> torch.Tensor:
        """mmpretrain's forward with its own (reentrant) checkpoint off."""
        with_cp = self.with_cp
        self.with_cp = False
        try:
            return super().forward(x)
        finally:
            self.with_cp = with_cp


class ReIDBasicBlock(_CheckpointOnce, BasicBlock):
    """mmpretrain's ``BasicBlock`` whose ``with_cp`` keeps the running
    statistics (see :class:`_CheckpointOnce`)."""


class ReIDBottleneck(_CheckpointOnce, Bottleneck):
    """mmpretrain's ``Bottleneck`` whose ``with_cp`` keeps the running
    statistics (see :class:`_CheckpointOnce`)."""


_REID_BLOCKS = {BasicBlock: ReIDBasicBlock, Bottleneck: ReIDBottleneck}


@MODELS.register_module()
class ReIDResNet(ResNet):
    """mmpretrain's ResNet with the ReID last-stride option and plugins.

    Person ReID keeps the last stage at stride 1 (Luo et al., "Bag of Tricks",
    2019): a 256x128 input then gives a 16x8 instead of an 8x4 final map,
    which helps fine-grained identity cues for no extra parameters. The
    parameter names are mmpretrain's (and torchvision's), so ImageNet
    checkpoints load unchanged.

    **Stage plugins.** ``plugins`` adds a module after chosen stages, e.g.
    SNR after every stage::

        plugins=[dict(cfg=dict(type='SNR', reduction=16),
                      stages=(True, True, True, True),
                      position='after_stage')]

    Each plugin is built with mmcv's ``build_plugin_layer`` (type looked up
    in mmreid's ``MODELS``) with ``in_channels`` set to the stage's output
    channels (BasicBlock and Bottleneck). The modules of one plugin type live
    in ``{abbr}_modules`` keyed by the 0-based stage index (``snr_modules.0``
    follows ``layer1``), so the ResNet keys are unchanged and a plain ImageNet
    checkpoint loads with only the plugin parameters missing. Plugins of one
    stage run in list order; each stage's (last) plugin output feeds the next
    stage and is the stage output.

    **Gradient checkpointing.** ``with_cp=True`` recomputes each residual
    block's activations in the backward pass instead of keeping them (less
    memory, about one more forward of compute). The blocks are
    :class:`ReIDBasicBlock` / :class:`ReIDBottleneck` (mmpretrain's, same
    parameter names), which checkpoint without updating the BatchNorm
    statistics a second time: outputs, gradients and running statistics
    equal those without ``with_cp``.

    **Auxiliary outputs.** A plugin that contributes a loss declares it
    with a true ``has_aux_outputs`` attribute and, in training mode, returns
    ``(out, aux)`` (a tensor and a dict of tensors) instead of a tensor, as
    :class:`SNR` does. ``forward(x, return_aux=True)`` returns them with
    the stage outputs, as ``(outs, aux)`` with ``aux[abbr][stage]`` the
    dict of plugin ``abbr`` after stage ``stage`` (0-based), e.g.
    ``aux['snr'][3]['feat_pos']``; the model names, weighs and sums their
    losses (see ``ReIDModel(aux_losses=...)``). Nothing is kept between
    forwards. ``forward(x)`` (eval, inference, export) returns only the
    tuple of the ``out_indices`` stage outputs, as a plain ResNet.
    :meth:`aux_plugin_stages` tells, before any forward, which plugins give
    auxiliary outputs at which stages.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        last_stride (int): Stride of the last stage. Defaults to 1.
        strides (Sequence[int], optional): Strides of the stages. The last
            stage's stride is ``last_stride``, so an explicit last entry
            must equal it (a contradiction raises a ValueError). Defaults
            to None: ``(1, 2, 2, last_stride)``.
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Defaults to (3,).
        plugins (list[dict], optional): Stage plugins, each a dict with
            ``cfg`` (module config), ``stages`` (one bool per stage; left
            out or None: every stage) and ``position`` (only
            ``'after_stage'``). ``frozen_stages`` freezes the stages'
            blocks, not the plugins after them (new modules, trained from
            their initialisation). Defaults to None.
        ibn_stages (Sequence[bool], optional): IBN-Net-a: the first norm
            layer of every block of the chosen stages becomes an
            :class:`~mmreid.models.layers.IBN` (half instance, half batch
            normalisation). IBN-Net-a uses ``(True, True, True, False)``.
            The batch-normalised half is built from ``norm_cfg`` as the
            other norm layers (e.g. an :class:`~mmreid.models.layers.MBN`
            with ``norm_cfg=dict(type='MBN')``), and ``norm_cfg``'s
            ``eps`` and ``requires_grad`` apply to both halves. Its keys
            (``bn1.IN.*``, ``bn1.BN.*``) differ from a plain ImageNet
            ResNet's, so use IBN-Net ImageNet weights with it. Defaults to
            None (no IBN).
        ibn_ratio (float): Instance-normalised fraction of those channels;
            another value without ``ibn_stages`` is refused. Defaults to
            0.5.
        stem_pool (dict, optional): Arguments of the stem's
            ``nn.MaxPool2d`` (``kernel_size``, ``stride``, ``padding``,
            ``ceil_mode``); keys left out keep mmpretrain's values
            ``dict(kernel_size=3, stride=2, padding=1, ceil_mode=False)``.
            fast-reid v1.x pools with ``padding=0, ceil_mode=True``: on a
            256 x 128 input the map is the same size (64 x 32) but shifted
            by one pixel, so its converted models need
            ``stem_pool=dict(padding=0, ceil_mode=True)`` to give the same
            features. Defaults to None (mmpretrain's pooling).
        **kwargs: See :class:`mmpretrain.models.ResNet`.
    """

    #: mmpretrain's depths, with blocks whose ``with_cp`` updates the
    #: running statistics once per step (:class:`_CheckpointOnce`).
    arch_settings = {
        depth: (_REID_BLOCKS[block], stages)
        for depth, (block, stages) in ResNet.arch_settings.items()
    }

    def __init__(self,
                 depth: int,
                 last_stride: int = 1,
                 strides: Optional[Sequence[int]] = None,
                 out_indices: Sequence[int] = (3, ),
                 plugins: Optional[List[dict]] = None,
                 ibn_stages: Optional[Sequence[bool]] = None,
                 ibn_ratio: float = 0.5,
                 stem_pool: Optional[dict] = None,
                 **kwargs) -> None:
        if last_stride not in (1, 2):
            raise ValueError(f'last_stride must be 1 or 2, got {last_stride}')
        if strides is None:
            strides = (1, 2, 2, last_stride)
        elif strides[-1] != last_stride:
            raise ValueError(
                f'strides={tuple(strides)} ends with {strides[-1]}, but '
                f'last_stride={last_stride} sets the stride of the last '
                f'stage: give last_stride={strides[-1]}, or leave strides '
                f'out or end it with {last_stride}')
        if 'norm_cfg' in kwargs:
            # mmreid norms (MBN, IBN) by bare name outside the mmreid scope.
            kwargs['norm_cfg'] = resolve_norm_cfg(kwargs['norm_cfg'])
        super().__init__(
            depth=depth, strides=strides, out_indices=out_indices, **kwargs)
        self.last_stride = last_stride
        if stem_pool is not None:
            unknown = set(stem_pool) - set(DEFAULT_STEM_POOL)
            if unknown:
                raise KeyError(f'stem_pool takes {sorted(DEFAULT_STEM_POOL)}'
                               f', got unknown keys {sorted(unknown)}')
            self.maxpool = nn.MaxPool2d(**dict(DEFAULT_STEM_POOL, **stem_pool))
        # Per stage, the names of the ModuleDicts whose entry for that
        # stage runs after it, in order.
        self.stage_plugins: List[List[str]] = [
            [] for _ in range(len(self.res_layers))
        ]
        #: Plugin abbreviations, in the order of ``plugins``.
        self.plugin_abbrs: Tuple[str, ...] = ()
        for plugin in plugins or []:
            self._make_plugin(plugin)
        if ibn_stages is None and ibn_ratio != 0.5:
            raise ValueError(
                f'ibn_ratio={ibn_ratio} is set but ibn_stages is None, so '
                'no IBN layer is built and the ratio would be ignored; give '
                'ibn_stages, e.g. (True, True, True, False) for IBN-Net-a')
        if ibn_stages is not None:
            self._make_ibn(ibn_stages, ibn_ratio)
            # ResNet froze its stages before the IBN layers existed.
            self._freeze_stages()

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """mmpretrain's ``init_weights`` in the mmreid scope (see
        :func:`~mmreid.models.weight_init.init_in_mmreid_scope`).

        ``zero_init_residual`` is skipped whenever ``init_cfg`` loads
        weights, also as one entry of a list (mmpretrain looks at a single
        dict only and would zero the last norm of every block after the
        load).
        """
        zero_init_residual = self.zero_init_residual
        if has_pretrained_init(self.init_cfg):
            self.zero_init_residual = False
        try:
            super().init_weights()
            if self.zero_init_residual:
                self._zero_init_modality_affines()
        finally:
            self.zero_init_residual = zero_init_residual

    def _zero_init_modality_affines(self) -> None:
        """``zero_init_residual`` for a block's last norm that is an MBN
        with per-modality affines (``share_affine=False``): mmpretrain's
        ``constant_init`` sets ``norm.weight``, which such an MBN does not
        have, so every modality's gamma would stay 1 where a BN's (or a
        shared-affine MBN's) is 0."""
        from ..layers.mbn import MBN
        for module in self.modules():
            if isinstance(module, Bottleneck):
                norm = module.norm3
            elif isinstance(module, BasicBlock):
                norm = module.norm2
            else:
                continue
            if isinstance(norm, MBN) and norm.weight is None:
                for bn in norm.bns:
                    if bn.weight is not None:
                        nn.init.zeros_(bn.weight)
                        nn.init.zeros_(bn.bias)

    def train(self, mode: bool = True) -> 'ReIDResNet':
        """As mmpretrain's ``train`` (frozen stages, ``norm_eval``), but
        returns ``self`` like ``nn.Module.train``."""
        super().train(mode)
        return self

    def stage_channels(self, stage: int) -> int:
        """Output channels of stage ``stage`` (0-based)."""
        return self.base_channels * self.expansion * 2**stage

    def _make_ibn(self, ibn_stages: Sequence[bool], ratio: float) -> None:
        if len(ibn_stages) != len(self.res_layers):
            raise ValueError(f'ibn_stages needs {len(self.res_layers)} '
                             f'entries, got {tuple(ibn_stages)}')
        for enabled, layer_name in zip(ibn_stages, self.res_layers):
            if not enabled:
                continue
            for block in getattr(self, layer_name):
                norm = getattr(block, block.norm1_name)
                ibn = MODELS.build(
                    dict(
                        type='IBN',
                        num_features=norm.num_features,
                        ratio=ratio,
                        eps=self.norm_cfg.get('eps', 1e-5),
                        requires_grad=self.norm_cfg.get('requires_grad',
                                                        True)))
                # The batch-normalised half is a norm_cfg layer like every
                # other norm of the trunk (BN, SyncBN, MBN, requires_grad).
                ibn.BN = build_norm_layer(self.norm_cfg,
                                          ibn.BN.num_features)[1]
                setattr(block, block.norm1_name, ibn)

    def _make_plugin(self, plugin: dict) -> None:
        plugin = dict(plugin)
        unknown = set(plugin) - {'cfg', 'stages', 'position'}
        if unknown or 'cfg' not in plugin:
            raise KeyError(f'a plugin is dict(cfg=..., stages=..., '
                           f'position=...), got keys {sorted(plugin)}')
        position = plugin.get('position', 'after_stage')
        if position not in PLUGIN_POSITIONS:
            raise ValueError(f'plugin position must be one of '
                             f'{PLUGIN_POSITIONS}, got {position!r}')
        num_stages = len(self.res_layers)
        stages = plugin.get('stages')
        if stages is None:
            stages = (True, ) * num_stages
        if len(stages) != num_stages:
            raise ValueError(f'plugin stages needs {num_stages} entries, got '
                             f'{tuple(stages)}')
        cfg = dict(plugin['cfg'])
        if isinstance(cfg['type'], str):
            # A user's class under an mmreid name on mmengine's root
            # registry would be passed over without a word.
            check_not_shadowed(cfg, MODELS)
            plugin_type = MODELS.get(cfg['type'])
            if plugin_type is None:
                raise KeyError(f'plugin type {cfg["type"]!r} is not in '
                               'the mmreid MODELS registry')
            cfg['type'] = plugin_type
        modules = dict()
        abbr = None
        for i, enabled in enumerate(stages):
            if not enabled:
                continue
            abbr, module = build_plugin_layer(
                cfg, in_channels=self.stage_channels(i))
            modules[str(i)] = module
        if not modules:
            return
        name = f'{abbr}_modules'
        if hasattr(self, name):
            raise ValueError(f'two plugins named {abbr!r}; one plugin entry '
                             'per plugin type')
        self.add_module(name, ModuleDict(modules))
        self.plugin_abbrs += (abbr, )
        for key in modules:
            self.stage_plugins[int(key)].append(name)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and max pooling: (N, 3, H, W) -> (N, C, H / 4, W / 4)."""
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.conv1(x)
            x = self.norm1(x)
            x = self.relu(x)
        return self.maxpool(x)

    def forward_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """The residual blocks of stage ``stage`` (0-based), no plugins.

        Subclasses that put modules between blocks (e.g. non-local blocks)
        override this; plugins and auxiliary outputs stay in
        :meth:`forward`.
        """
        return getattr(self, self.res_layers[stage])(x)

    def aux_plugin_stages(self) -> Dict[str, Tuple[int, ...]]:
        """The plugins that give auxiliary outputs in training.

        Returns:
            dict[str, tuple[int]]: Plugin abbreviation -> the 0-based
            stages whose module declares ``has_aux_outputs``; plugins
            without any are left out.
        """
        stages = dict()
        for abbr in self.plugin_abbrs:
            modules = getattr(self, f'{abbr}_modules')
            found = tuple(
                int(key) for key, module in modules.items()
                if getattr(module, 'has_aux_outputs', False))
            if found:
                stages[abbr] = found
        return stages

    def forward(
        self,
        x: torch.Tensor,
        return_aux: bool = False
    ) -> Union[Tuple[torch.Tensor, ...], Tuple[Tuple[torch.Tensor, ...],
                                               AuxOutputs]]:
        """Stem, stages and stage plugins.

        Args:
            x (Tensor): Images, shape (N, 3, H, W).
            return_aux (bool): Also return the plugins' auxiliary outputs
                (training). Defaults to False.

        Returns:
            tuple[Tensor] | tuple[tuple[Tensor], dict]: The ``out_indices``
            stage outputs (after their plugins), each (N, C_i, H_i, W_i);
            with ``return_aux``, ``(outs, aux)`` where ``aux[abbr][stage]``
            is the dict of plugin ``abbr`` after 0-based stage ``stage``
            (empty in eval mode, see the class docstring).

        Raises:
            TypeError: A plugin returns auxiliary outputs without declaring
                ``has_aux_outputs``.
        """
        x = self.forward_stem(x)
        outs = []
        aux_outputs: AuxOutputs = dict()
        for i in range(len(self.res_layers)):
            x = self.forward_stage(i, x)
            for name in self.stage_plugins[i]:
                module = getattr(self, name)[str(i)]
                out = module(x)
                if isinstance(out, tuple):
                    if not getattr(module, 'has_aux_outputs', False):
                        raise TypeError(
                            f'plugin {name}.{i} ({type(module).__name__}) '
                            'returned auxiliary outputs but does not '
                            'declare has_aux_outputs = True')
                    out, aux = out
                    if return_aux:
                        abbr = name[:-len('_modules')]
                        aux_outputs.setdefault(abbr, dict())[i] = aux
                x = out
            if i in self.out_indices:
                outs.append(x)
        if return_aux:
            return tuple(outs), aux_outputs
        return tuple(outs)
