import warnings
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from ..weight_init import (has_pretrained_init, init_cfg_sets,
                           init_in_mmreid_scope)

#: Default of the deprecated ``loss_triplet`` argument: not given.
NOT_GIVEN: Any = object()


def renamed_loss_tri(owner: str, loss_tri: Optional[dict],
                     loss_triplet: Any) -> Optional[dict]:
    """The triplet loss config, from ``loss_tri`` or its old name.

    The argument was called ``loss_triplet`` while its loss was logged as
    ``loss_tri``; it now has the logged name. The old one is accepted for
    one release and wins over ``loss_tri`` (a config written for the old
    name overrides a base config that has the new one).

    Args:
        owner (str): The head's class name, for the warning.
        loss_tri (dict, optional): The config given as ``loss_tri``.
        loss_triplet (dict, optional): The config given as
            ``loss_triplet``, or :data:`NOT_GIVEN`.

    Returns:
        dict, optional: The config to build.
    """
    if loss_triplet is NOT_GIVEN:
        return loss_tri
    warnings.warn(
        f'{owner}(loss_triplet=...) is deprecated and will be removed in '
        f'the next release: the argument is now loss_tri, the name its '
        f'loss is logged with. Using loss_triplet={loss_triplet!r} in '
        f'place of loss_tri={loss_tri!r}.', FutureWarning)
    return loss_triplet


@MODELS.register_module()
class BNNeckHead(BaseModule):
    """BNNeck head of the ReID strong baseline (Luo et al., 2019).

    The pooled feature ``f_t`` feeds the triplet loss; a BatchNorm1d whose
    bias is frozen at 0 gives ``f_i``, which feeds a bias-free classifier
    with the identity loss. Separating the two spaces lets the metric loss
    and the classification loss stop fighting each other.

    Args:
        in_channels (int): Feature dimension D.
        num_classes (int): Number of training identities.
        loss_cls (dict, optional): Identity loss config.
        loss_tri (dict, optional): Metric loss config, logged as
            ``loss_tri``.
        triplet_feat (str): The feature of the metric loss: ``'pre_bn'``
            (``f_t``, the BoT recipe, default) or ``'bn'`` (``f_i``, the
            torchreid convention the SNR authors trained with).
        test_feature (str): ``'after_bn'`` (``f_i``, default) or
            ``'before_bn'`` (``f_t``) is returned at test time.
        norm_cfg (dict, optional): The BNNeck norm, built with
            ``num_features=in_channels``, e.g. ``dict(type='MBN', dims=1)``
            for a modality BNNeck (``mbn_in_neck``). Defaults to None: a
            plain ``BatchNorm1d`` (state-dict keys ``bnneck.*``). Every
            bias of the norm is frozen at 0.
        init_cfg (dict, optional): Initialisation config.
        loss_triplet (dict, optional): Deprecated name of ``loss_tri``
            (one release; warns and replaces ``loss_tri``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        loss_cls: Optional[dict] = dict(
            type='ReIDCrossEntropyLoss', label_smooth_eps=0.1),
        loss_tri: Optional[dict] = dict(type='TripletLoss', margin=0.3),
        test_feature: str = 'after_bn',
        triplet_feat: str = 'pre_bn',
        norm_cfg: Optional[dict] = None,
        init_cfg: Optional[Union[dict, List[dict]]] = dict(
            type='Normal', layer='Linear', std=0.001),
        loss_triplet: Optional[dict] = NOT_GIVEN,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if test_feature not in ('after_bn', 'before_bn'):
            raise ValueError(f'test_feature must be "after_bn" or '
                             f'"before_bn", got {test_feature!r}')
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got '
                             f'{num_classes}')
        if triplet_feat not in ('pre_bn', 'bn'):
            raise ValueError(f'triplet_feat must be "pre_bn" or "bn", got '
                             f'{triplet_feat!r}')
        self.triplet_feat = triplet_feat
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.test_feature = test_feature
        if norm_cfg is None:
            self.bnneck = nn.BatchNorm1d(in_channels)
        else:
            self.bnneck = MODELS.build(
                dict(norm_cfg, num_features=in_channels))
        for name, param in self.bnneck.named_parameters():
            if name.split('.')[-1] == 'bias':
                param.requires_grad_(False)
        self.classifier = nn.Linear(in_channels, num_classes, bias=False)
        self.loss_cls = MODELS.build(loss_cls) if loss_cls else None
        loss_tri = renamed_loss_tri(
            type(self).__name__, loss_tri, loss_triplet)
        self.loss_tri = MODELS.build(loss_tri) if loss_tri else None
        self._register_load_state_dict_pre_hook(
            self._rename_loss_triplet_keys, with_module=False)

    @staticmethod
    def _rename_loss_triplet_keys(state_dict: dict, prefix: str, *args):
        """Load the tensors of a triplet-slot loss saved as ``loss_triplet``.

        The built-in losses hold no tensors; a custom one (e.g. with learnt
        centres) was saved under the attribute's old name.
        """
        old = prefix + 'loss_triplet.'
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[prefix + 'loss_tri.' + key[len(old):]] = \
                state_dict.pop(key)

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """The ``init_cfg``, then the BNNeck's weight 1 and bias 0 (the
        bias stays frozen). A pretrained ``init_cfg`` keeps what it loaded;
        an entry that sets the BNNeck (``layer='BatchNorm1d'``, an
        ``override`` named ``bnneck``; e.g. AGW's N(1, 0.01)) keeps its
        weight, the bias still 0."""
        super().init_weights()
        if has_pretrained_init(self.init_cfg):
            return
        keep_weight = init_cfg_sets(self.init_cfg, self.bnneck, 'bnneck')
        for name, param in self.bnneck.named_parameters():
            kind = name.split('.')[-1]
            if kind == 'weight' and not keep_weight:
                nn.init.ones_(param)
            elif kind == 'bias':
                nn.init.zeros_(param)

    @staticmethod
    def _last(
            feats: Union[torch.Tensor, Tuple[torch.Tensor,
                                             ...]]) -> torch.Tensor:
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def forward(
        self, feats: Union[torch.Tensor, Tuple[torch.Tensor, ...]]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(f_t, f_i)``, each shape (N, D)."""
        f_t = self._last(feats)
        return f_t, self.bnneck(f_t)

    def loss(self, feats: Union[torch.Tensor, Tuple[torch.Tensor, ...]],
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """Identity and triplet losses.

        Args:
            feats: Pooled features, (N, D) or a tuple whose last item is.
            data_samples (list[ReIDDataSample]): With ``gt_label``.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_tri`` and the
            training ``accuracy`` (a log value, not a loss).
        """
        f_t, f_i = self(feats)
        labels = torch.cat([s.gt_label for s in data_samples]).to(f_t.device)
        losses = dict()
        logits = self.classifier(f_i)
        if self.loss_cls is not None:
            losses['loss_cls'] = self.loss_cls(logits, labels)
        if self.loss_tri is not None:
            metric_feat = f_t if self.triplet_feat == 'pre_bn' else f_i
            losses['loss_tri'] = self.loss_tri(metric_feat, labels)
        with torch.no_grad():
            losses['accuracy'] = (logits.argmax(1) == labels).float().mean()
        return losses

    def predict(
            self, feats: Union[torch.Tensor, Tuple[torch.Tensor,
                                                   ...]]) -> torch.Tensor:
        """The test feature, shape (N, D)."""
        f_t, f_i = self(feats)
        return f_i if self.test_feature == 'after_bn' else f_t
