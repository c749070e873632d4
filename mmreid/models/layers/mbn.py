"""Modality Batch Normalization (Li et al., ICAICA 2021, arXiv:2103.04778).

MBN normalises each modality sub-mini-batch with its own statistics instead
of the whole mini-batch, so that after the (shared) affine transform both
modalities have the same per-channel moments in every batch.
"""
from typing import List, Optional, Union

import torch
import torch.distributed as torch_dist
import torch.nn as nn
import torch.nn.functional as F

from mmreid.models.init_mappings import init_mappings_on
from mmreid.registry import MODELS
# The routing helpers lived here before they became model-wide; kept
# importable from this module for one release.
from ..modality_routing import (  # noqa: F401
    ModalityLabels, as_modality_labels, check_modality_labels,
    modality_aware_modules, modality_context, modality_groups, set_modality)

_as_labels = as_modality_labels  # deprecated private alias (one release)
EVAL_STATS = ('modality', 'batch', 'shared')
_BN_BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def resolve_norm_cfg(cfg: dict) -> dict:
    """Replace an unscoped mmreid norm type (``'MBN'``) by its class.

    mmcv's ``build_norm_layer`` looks types up in the current default
    scope, so ``dict(type='MBN')`` fails outside the mmreid scope (e.g. a
    model built directly in a script). Types that mmreid's registry does not
    hold itself (``'BN'``, ``'GN'``, scoped names) are left as they are.
    """
    norm_type = cfg.get('type') if isinstance(cfg, dict) else None
    if not isinstance(norm_type, str) or '.' in norm_type:
        return cfg
    cls = MODELS._module_dict.get(norm_type)
    return dict(cfg, type=cls) if cls is not None else cfg


@MODELS.register_module('MBN')
class MBN(nn.Module):
    """Modality Batch Normalization: one BatchNorm per modality.

    In training, the samples of modality ``k`` are normalised with the
    mean and biased variance of modality ``k`` in the batch (over samples
    and, for ``dims=2``, H and W), then a per-channel affine transform,
    shared by all modalities by default, is applied; outputs return to the
    input order. Each modality keeps its own running statistics, updated
    only from its own sub-batch (unbiased variance, as in PyTorch).

    The layer is a *container* of plain ``nn.BatchNorm{1,2}d`` modules, one
    per modality (``bns``), not a ``_BatchNorm`` subclass, so that
    ``convert_sync_batchnorm`` converts the inner BNs and keeps the split
    (a subclass would be replaced by one joint SyncBN), and ``norm_eval`` /
    ``frozen_stages`` / ``layer='_BatchNorm'`` initialisers reach the inner
    BNs.

    **Modality labels.** Norm layers only receive ``x``, so the labels are
    set beforehand with :meth:`set_modality` (or for a whole model with
    :func:`set_modality`, which :class:`ReIDModel` calls from each data
    sample's ``metainfo['modality']``). They are kept until the next call,
    so gradient-checkpointing recomputation sees them too. Missing labels,
    or a number of labels different from the batch size, raise.

    **Test time** (``eval_stats``): ``'modality'`` (default) normalises each
    sample with its own modality's running statistics, so the output of a
    sample does not depend on the rest of the batch; ``'batch'`` uses the
    test batch's per-modality statistics (transductive, depends on batch
    composition); ``'shared'`` uses the average of the modalities' running
    statistics (ablation).

    **norm_eval.** The inner BNs' mode decides how a modality is
    normalised, not the container's: ResNet's ``norm_eval`` puts only the
    inner BNs in eval, and MBN then normalises as at test time
    (``eval_stats``) while the model trains, without updating the running
    statistics; a 1-sample modality is then refused only with
    ``eval_stats='batch'``.

    **Checkpoints.** Shared affine keys are ``weight``, ``bias``,
    ``bns.<k>.running_mean``, ``bns.<k>.running_var`` and
    ``bns.<k>.num_batches_tracked``; per-modality affine adds
    ``bns.<k>.weight`` / ``bns.<k>.bias``. A plain-BN state dict (e.g. an
    ImageNet ResNet) is mapped on load: its statistics (and, per-modality,
    its affine) are copied to every modality. This is an initialisation:
    a trained model's checkpoint is loaded without it
    (:func:`~mmreid.models.init_mappings.trained_model_load`), so a model
    trained without MBN is refused rather than tested as an MBN model.
    :meth:`to_plain_bn` exports one modality (or the mean) as a plain BN.

    Registered as ``'MBN'`` with abbreviation ``bn``, so
    ``norm_cfg=dict(type='MBN')`` in mmcv/mmpretrain builders keeps the
    ``bn1``/``bn2``/``downsample.1`` names of ImageNet checkpoints (use
    ``'mmreid.MBN'`` from another default scope).

    Args:
        num_features (int): Channels C.
        eps (float): Added to the variance. Defaults to 1e-5.
        momentum (float, optional): Running-stat momentum; None for a
            cumulative average (per modality). Defaults to 0.1.
        affine (bool): Learn a per-channel affine transform. Defaults to
            True.
        num_modalities (int): M. Defaults to 2 (0 visible, 1 infrared).
        share_affine (bool): One affine for all modalities (default, the
            MBN design); False gives per-modality affines (DSBN-style,
            ablation; an absent modality's affine then gets no gradient,
            so DDP needs ``find_unused_parameters``).
        dims (int): 2 for (N, C, H, W) inputs (default), 1 for (N, C) or
            (N, C, L).
        eval_stats (str): ``'modality'``, ``'batch'`` or ``'shared'``.
        min_per_modality (int): Every modality normalised with batch
            statistics (inner BN in training mode, or ``eval_stats=
            'batch'``) needs at least this many samples in the batch (a
            single sample would be instance-normalised, silently).
            Defaults to 2.
    """

    _abbr_ = 'bn'

    def __init__(self,
                 num_features: int,
                 eps: float = 1e-5,
                 momentum: Optional[float] = 0.1,
                 affine: bool = True,
                 num_modalities: int = 2,
                 share_affine: bool = True,
                 dims: int = 2,
                 eval_stats: str = 'modality',
                 min_per_modality: int = 2) -> None:
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f'MBN dims must be 1 or 2, got {dims!r}')
        if eval_stats not in EVAL_STATS:
            raise ValueError(f'MBN eval_stats must be one of {EVAL_STATS}, '
                             f'got {eval_stats!r}')
        if not isinstance(num_modalities, int) or num_modalities < 1:
            raise ValueError(f'MBN num_modalities must be a positive int, '
                             f'got {num_modalities!r}')
        if min_per_modality < 1:
            raise ValueError(f'MBN min_per_modality must be >= 1, got '
                             f'{min_per_modality}')
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.num_modalities = num_modalities
        self.share_affine = share_affine
        self.dims = dims
        self.eval_stats = eval_stats
        self.min_per_modality = min_per_modality
        bn_type = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        child_affine = affine and not share_affine
        self.bns = nn.ModuleList([
            bn_type(
                num_features,
                eps=eps,
                momentum=momentum,
                affine=child_affine,
                track_running_stats=True) for _ in range(num_modalities)
        ])
        if affine and share_affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter('weight', None)
            self.register_parameter('bias', None)
        self._modality: Optional[Union[int, torch.Tensor]] = None
        self._register_load_state_dict_pre_hook(
            self._load_plain_bn_hook, with_module=False)

    # ------------------------------------------------------------------
    # Modality labels
    # ------------------------------------------------------------------
    def set_modality(  # noqa: F811 (a method, not the imported function)
            self, labels: Optional[ModalityLabels]) -> None:
        """Set the modality of each sample of the next batch(es).

        Args:
            labels (int | Sequence[int] | Tensor | None): Shape (N,) with
                values in ``[0, num_modalities)``, or one int for a batch
                of a single modality. None clears them.
        """
        self._modality = None if labels is None else as_modality_labels(labels)

    @property
    def modality(self) -> Optional[Union[int, torch.Tensor]]:
        """The labels set by :meth:`set_modality`."""
        return self._modality

    # ------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        expected = (4, ) if self.dims == 2 else (2, 3)
        if x.dim() not in expected:
            raise ValueError(f'MBN(dims={self.dims}) expects a '
                             f'{" or ".join(map(str, expected))}-D input, '
                             f'got shape {tuple(x.shape)}')

    def _affine(self, y: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            return y
        shape = (1, -1) + (1, ) * (y.dim() - 2)
        return y * self.weight.view(shape) + self.bias.view(shape)

    def _sync_children(self) -> bool:
        """Whether the inner BNs synchronise across ranks (SyncBN)."""
        return (any(bn.training for bn in self.bns)
                and isinstance(self.bns[0], nn.SyncBatchNorm)
                and torch_dist.is_available() and torch_dist.is_initialized()
                and torch_dist.get_world_size() > 1)

    def _normalize(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Normalise samples of modality ``k`` (affine-free if shared).

        The inner BN's mode decides, not the container's: ``norm_eval``
        puts the inner BNs in eval while the container trains, and they
        then normalise as at test time (``eval_stats``).
        """
        bn = self.bns[k]
        if bn.training or self.eval_stats == 'modality':
            # The child follows train/eval mode: batch statistics and a
            # running-stat update in training, running statistics in eval.
            return bn(x)
        if self.eval_stats == 'batch':
            return F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0,
                                self.eps)
        mean = torch.stack([b.running_mean for b in self.bns]).mean(0)
        var = torch.stack([b.running_var for b in self.bns]).mean(0)
        return F.batch_norm(x, mean, var, bn.weight, bn.bias, False, 0.0,
                            self.eps)

    def _check_batch_statistics(self, indices) -> None:
        """Refuse batches whose statistics MBN cannot normalise with.

        A modality normalised with batch statistics (its inner BN in
        training mode, or in eval mode with ``eval_stats='batch'``) and
        fewer than ``min_per_modality`` samples would be normalised over
        H x W only (``BatchNorm2d`` on one sample is an instance norm): its
        channel means and scales are wiped out. The inner BN's mode
        decides, not the container's: with ``norm_eval`` the inner BNs use
        running statistics although the model trains. In testing with
        ``eval_stats='batch'``, several processes also split the test set
        into other batches than one process does (and pad the last with a
        duplicate), so the numbers would depend on the number of processes.
        """
        if not self.training and self.eval_stats == 'batch' \
                and torch_dist.is_available() \
                and torch_dist.is_initialized() \
                and torch_dist.get_world_size() > 1:
            # A training run is refused before its first step
            # (check_validated_in_one_process); this guards the others.
            raise ValueError(
                processes_message(torch_dist.get_world_size()) +
                ": test with one process, or use eval_stats='modality'")
        for k, idx in enumerate(indices):
            if not 0 < idx.numel() < self.min_per_modality:
                continue
            if self.bns[k].training:
                where = 'MBN', 'training batch'
                fix = ('Use a sampler that puts >= {n} samples of every '
                       'present modality in each batch per GPU (e.g. '
                       'CrossModalityIdentitySampler) and drop_last')
            elif self.eval_stats == 'batch':
                role = 'training' if self.training else 'test'
                where = "MBN(eval_stats='batch')", f'{role} batch'
                edges = ('' if self.training else
                         ' (the last and the query/gallery boundary '
                         'included)')
                fix = (f'Choose a {role} batch_size that leaves >= {{n}} '
                       f'samples of each modality in every batch{edges}, '
                       "or use eval_stats='modality'")
            else:
                continue  # running statistics
            raise ValueError(
                f'{where[0]}: modality {k} has {idx.numel()} sample(s) '
                f'in this {where[1]}, fewer than min_per_modality='
                f'{self.min_per_modality}; its batch statistics would be '
                'meaningless. ' + fix.format(n=self.min_per_modality))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise per modality.

        Args:
            x (Tensor): (N, C, H, W) for ``dims=2``, (N, C) or (N, C, L)
                for ``dims=1``.

        Returns:
            Tensor: Same shape as ``x``, samples in the input order.
        """
        self._check_input(x)
        labels = check_modality_labels(self._modality, x.size(0),
                                       self.num_modalities, x.device,
                                       type(self).__name__)
        indices, inverse = modality_groups(labels, self.num_modalities)
        self._check_batch_statistics(indices)
        sync = self._sync_children()
        if inverse is None:
            counts = [idx.numel() for idx in indices]
            parts = torch.split(x, counts)
        else:
            parts = [x.index_select(0, idx) for idx in indices]
        outs = []
        for k, part in enumerate(parts):
            if part.size(0) == 0 and not sync:
                # An absent modality: no normalisation, no stat update.
                # (SyncBN children must still join the collective.)
                continue
            outs.append(self._normalize(k, part))
        dtype = max((o.dtype for o in outs),
                    key=lambda t: torch.finfo(t).bits) if outs else x.dtype
        out = torch.cat([o.to(dtype) for o in outs])
        if inverse is not None:
            out = out.index_select(0, inverse)
        # The affine's fp32 parameters promote a half input; BatchNorm
        # gives the input's dtype, and so does MBN.
        return self._affine(out).to(x.dtype)

    # ------------------------------------------------------------------
    # Checkpoints
    # ------------------------------------------------------------------
    def _load_plain_bn_hook(self, state_dict: dict, prefix: str, *args,
                            **kwargs) -> None:
        """Map a plain-BN state dict to every modality (in place), while
        :func:`~mmreid.models.init_mappings.init_mappings_on`."""
        if init_mappings_on() and self.init_mapping_sources(
                state_dict, prefix):
            self._map_plain_bn(state_dict, prefix)

    #: What :meth:`init_mapping_sources` finds, and whose tensors they are
    #: (see :mod:`mmreid.models.init_mappings`).
    init_mapping_source = ('plain BatchNorm tensors (<layer>.running_mean, '
                           'no <layer>.bns.<k>.*)')
    init_mapping_model = 'a model trained without MBN (e.g. AGW)'

    @staticmethod
    def init_mapping_sources(state_dict: dict, prefix: str) -> bool:
        """Whether ``state_dict`` holds this layer as a plain BN."""
        return f'{prefix}running_mean' in state_dict \
            and f'{prefix}bns.0.running_mean' not in state_dict

    def _map_plain_bn(self, state_dict: dict, prefix: str) -> None:
        """Copy a plain BN's tensors to every modality (in place)."""
        per_modality = list(_BN_BUFFERS)
        if self.affine and not self.share_affine:
            per_modality += ['weight', 'bias']
        for name in per_modality:
            key = f'{prefix}{name}'
            if key not in state_dict:
                continue
            value = state_dict.pop(key)
            for k in range(self.num_modalities):
                state_dict[f'{prefix}bns.{k}.{name}'] = value.clone()
        # Without an affine, a plain BN's weight/bias stay where they are:
        # the loader refuses them as tensors this layer does not have,
        # as it does for BatchNorm(affine=False); the network would
        # otherwise compute another function than the checkpoint's.

    def to_plain_bn(self, modality: Union[int, str] = 'mean') -> nn.Module:
        """Export one modality (or the average) as a plain BatchNorm.

        The statistics follow ``eval_stats``: modality ``k``'s running
        statistics (``'modality'``), the mean of the modalities' running
        statistics (``'shared'``), or none, the BN normalising each batch
        with its own statistics in eval mode too (``'batch'``:
        ``track_running_stats=False``). The affine is modality ``k``'s (the
        shared one with ``share_affine``).

        Args:
            modality (int | str): Modality index, or ``'mean'`` for the
                average of the modalities' statistics (and affines).

        Returns:
            nn.BatchNorm1d | nn.BatchNorm2d: In eval mode equal to this
            layer in eval mode on a batch of that modality.
        """
        if modality == 'mean':
            sources = list(self.bns)
        elif isinstance(modality, int) and 0 <= modality < len(self.bns):
            sources = [self.bns[modality]]
        else:
            raise ValueError(f'modality must be in [0, {len(self.bns)}) '
                             f'or "mean", got {modality!r}')
        stat_sources = list(self.bns) if self.eval_stats == 'shared' \
            else sources
        bn_type = nn.BatchNorm2d if self.dims == 2 else nn.BatchNorm1d
        bn = bn_type(
            self.num_features,
            eps=self.eps,
            momentum=self.momentum,
            affine=self.affine,
            track_running_stats=self.eval_stats != 'batch')
        ref = self.bns[0].running_mean
        bn.to(device=ref.device)

        def mean_of(modules: list, name: str) -> torch.Tensor:
            return torch.stack([getattr(m, name).detach()
                                for m in modules]).mean(0)

        with torch.no_grad():
            if bn.track_running_stats:
                bn.running_mean.copy_(mean_of(stat_sources, 'running_mean'))
                bn.running_var.copy_(mean_of(stat_sources, 'running_var'))
                bn.num_batches_tracked.copy_(
                    max(int(s.num_batches_tracked) for s in stat_sources))
            if self.affine:
                if self.share_affine:
                    bn.weight.copy_(self.weight)
                    bn.bias.copy_(self.bias)
                else:
                    bn.weight.copy_(mean_of(sources, 'weight'))
                    bn.bias.copy_(mean_of(sources, 'bias'))
        bn.train(self.training)
        return bn

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, '
                f'momentum={self.momentum}, affine={self.affine}, '
                f'num_modalities={self.num_modalities}, '
                f'share_affine={self.share_affine}, dims={self.dims}, '
                f'eval_stats={self.eval_stats!r}')


def convert_mbn_to_bn(model: nn.Module,
                      modality: Union[int, str] = 'mean') -> nn.Module:
    """Replace every :class:`MBN` of ``model`` by a plain BN (deployment).

    Args:
        model (nn.Module): Modified in place (and returned); an MBN
            ``model`` itself is returned converted.
        modality (int | str): See :meth:`MBN.to_plain_bn`.

    Returns:
        nn.Module: The converted model.
    """
    if isinstance(model, MBN):
        return model.to_plain_bn(modality)
    for name, child in model.named_children():
        model.add_module(name, convert_mbn_to_bn(child, modality))
    return model


def batch_statistics_layers(model: nn.Module) -> list:
    """Names of the MBN layers of ``model`` that normalise a test batch
    with its own statistics (``eval_stats='batch'``).

    A model with one gives each test image a feature that depends on the
    other images of its batch: its test features are those of the test
    dataloader's batches (size and order), and of no other batching.

    Args:
        model (nn.Module): Any module.

    Returns:
        list[str]: Module names (``''`` for ``model`` itself), empty when
        the features do not depend on the batch.
    """
    return [
        name for name, module in model.named_modules()
        if isinstance(module, MBN) and module.eval_stats == 'batch'
    ]


def untracked_batch_norms(model: nn.Module) -> list:
    """Names of the batch norm layers of ``model`` that keep no running
    statistics (``track_running_stats=False``; any ``_BatchNorm``, mmcv's
    and an MBN's inner ones included).

    Such a layer normalises every batch with its own statistics in eval
    mode as well, as MBN's ``eval_stats='batch'`` does
    (:func:`batch_statistics_layers`): each test image's feature depends on
    the other images of its batch.

    Args:
        model (nn.Module): Any module.

    Returns:
        list[str]: Module names, empty when there is none.
    """
    from torch.nn.modules.batchnorm import _BatchNorm
    return [
        name for name, module in model.named_modules()
        if isinstance(module, _BatchNorm) and module.running_mean is None
    ]


def untracked_named(layers: list) -> str:
    """``"batch norm layer 'x' (and N more) keeps no running statistics
    (track_running_stats=False)"``, for messages about
    :func:`untracked_batch_norms`."""
    more = f' and {len(layers) - 1} more' if len(layers) > 1 else ''
    return (f'batch norm layer {layers[0]!r}{more} keeps no running '
            'statistics (track_running_stats=False)')


def check_untracked_in_one_process(
        model: nn.Module,
        world_size: int,
        consumer: str,
        fix: str = 'Evaluate with one process') -> None:
    """Refuse to evaluate in several processes a model with batch norm
    layers that keep no running statistics (:func:`untracked_batch_norms`).

    Several processes batch the test set otherwise than one process does
    (and pad the last batch with a duplicate), so such a model's numbers
    would depend on the number of processes; MBN refuses its
    ``eval_stats='batch'`` there for the same reason.

    Args:
        model (nn.Module): The model (unwrapped).
        world_size (int): The number of processes.
        consumer (str): What evaluates, for the message.
        fix (str): What to do instead, for the message.

    Raises:
        ValueError: ``world_size > 1``, naming the layers.
    """
    if world_size < 2:
        return
    layers = untracked_batch_norms(model)
    if layers:
        raise ValueError(
            f'{consumer}: the {untracked_named(layers)}, so it normalises '
            'each test batch with its own statistics, and '
            f'{world_size} processes batch the set otherwise than one: the '
            f'numbers would depend on the number of processes. {fix}')


def processes_message(world_size: int, split: str = 'test') -> str:
    """Why ``eval_stats='batch'`` is refused in ``world_size`` processes
    that evaluate ``split`` (``'test'``, ``'validation'``)."""
    return ("MBN(eval_stats='batch') normalises each test batch with its "
            f'own statistics, and {world_size} processes batch the {split} '
            'set otherwise than one process (a padded duplicate included), '
            'so the numbers would depend on the number of processes')


def check_validated_in_one_process(model: nn.Module,
                                   world_size: int,
                                   cfg=None) -> None:
    """Refuse to train in several processes a model whose validation MBN
    would refuse.

    MBN refuses ``eval_stats='batch'`` in several processes when it
    normalises a test batch, i.e. at the first validation, after the
    training epochs before it; a training run with a validation loop calls
    this before its first step instead (``TrainSetupCheckHook``).

    Args:
        model (nn.Module): The model to train (unwrapped).
        world_size (int): The number of processes.
        cfg (Config | dict, optional): The run's config, to name the keys
            to change (:func:`running_statistics_fix`).

    Raises:
        ValueError: ``world_size > 1`` and ``model`` has an MBN layer with
            ``eval_stats='batch'``; names the layers and the fix.
    """
    layers = batch_statistics_layers(model)
    if world_size < 2 or not layers:
        return
    fix = running_statistics_fix(cfg or {})
    if fix.startswith('--cfg-options'):
        fix = f"eval_stats='modality' ({fix})"
    shown = ', '.join(repr(name) for name in layers[:3])
    more = f' and {len(layers) - 3} more' if len(layers) > 3 else ''
    raise ValueError(
        f'{processes_message(world_size, "validation")}: this '
        f'{world_size}-process training would be refused at its first '
        f'validation, after training (layers {shown}{more}). Train with one '
        f'process, or use {fix}, or train without validation and test the '
        'checkpoint with one process (tools/test.py)')


def batch_statistics_keys(cfg, prefix: str = 'model') -> List[str]:
    """Config keys that give an MBN layer ``eval_stats='batch'``.

    Args:
        cfg (dict): A model config (or any part of one).
        prefix (str): The key of ``cfg``. Defaults to ``'model'``.

    Returns:
        list[str]: Dotted keys (``model.backbone.norm_cfg.eval_stats``,
        list items by index), in config order.
    """
    found = []
    if isinstance(cfg, dict):
        if str(cfg.get('type', '')).split('.')[-1] == 'MBN' \
                and cfg.get('eval_stats') == 'batch':
            found.append(f'{prefix}.eval_stats')
        for key, value in cfg.items():
            found += batch_statistics_keys(value, f'{prefix}.{key}')
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            found += batch_statistics_keys(value, f'{prefix}.{i}')
    return found


def running_statistics_fix(cfg) -> str:
    """How to give a config's batch-statistics MBN layers each modality's
    running statistics instead, for a message: the exact
    ``--cfg-options`` (:func:`batch_statistics_keys`), or where to set it
    when the config does not say ``eval_stats='batch'`` itself.

    Args:
        cfg (Config | dict): The whole config (its ``model`` is read).
    """
    keys = batch_statistics_keys(cfg.get('model') or {})
    if keys:
        return '--cfg-options ' + ' '.join(f'{k}=modality' for k in keys)
    return "eval_stats='modality' in the config of those MBN layers"
