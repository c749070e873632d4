"""The GMN head (Qi et al., "Generalizable Metric Network for Cross-domain
Person Re-identification", arXiv:2306.11991).

Only the abstract's facts are fixed (M-Net on sample-pair features
``(f_p - f_q)^2``, DP after a warm-up, PIC loss, ``L_cls + L_tri + L_gmn +
lambda * L_pic``); every other choice is a config option whose default is
the recommended one of ``specs/gmn.md``.
"""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from mmreid.utils.labels import integer_label
from ..losses.pair_losses import group_ids
from ..weight_init import has_pretrained_init, init_in_mmreid_scope
from .bnneck_head import NOT_GIVEN, BNNeckHead

PAIR_FEATS = ('post_bn', 'pre_bn')
PAIR_NORMS = ('l2', 'raw')
PAIR_MININGS = ('all', 'batch_hard')
DP_POSITIONS = ('pair', 'instance')
DP_MODES = ('append', 'replace')
PIC_SPACES = ('input', 'hidden')
DP_DEFAULTS = dict(
    rate=0.5, position='pair', mode='append', n_copies=1, warmup_epochs=10)
PIC_DEFAULTS = dict(weight=1.0, space='input')


def all_pairs(
    num: int,
    device: Optional[torch.device] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` of all unordered pairs ``i < j`` of ``num`` items.

    Returns:
        tuple[Tensor, Tensor]: Each shape (num * (num - 1) / 2,).
    """
    idx = torch.triu_indices(num, num, offset=1, device=device)
    return idx[0], idx[1]


def batch_hard_pairs(
        feats: torch.Tensor,
        labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per anchor its farthest positive and nearest negative (Euclidean).

    Pairs are unordered (``i < j``) and each pair appears once; anchors
    without a positive (or negative) contribute none.

    Args:
        feats (Tensor): Shape (B, D).
        labels (Tensor): Shape (B,).

    Returns:
        tuple[Tensor, Tensor]: Indices ``i`` and ``j``, each shape (P,).
    """
    with torch.no_grad():
        dist = torch.cdist(feats.float(), feats.float())
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(len(labels), dtype=torch.bool, device=feats.device)
        pos_dist = dist.masked_fill(~same | eye, float('-inf'))
        neg_dist = dist.masked_fill(same, float('inf'))
        anchors = torch.arange(len(labels), device=feats.device)
        has_pos = (same & ~eye).any(1)
        has_neg = (~same).any(1)
        pairs = [
            torch.stack([anchors[has_pos],
                         pos_dist.argmax(1)[has_pos]], 1),
            torch.stack([anchors[has_neg],
                         neg_dist.argmin(1)[has_neg]], 1)
        ]
        pairs = torch.cat(pairs).sort(dim=1).values
        pairs = torch.unique(pairs, dim=0)
    return pairs[:, 0], pairs[:, 1]


def pair_features(feats: torch.Tensor, idx_i: torch.Tensor,
                  idx_j: torch.Tensor) -> torch.Tensor:
    """Sample-pair features ``(f_i - f_j) * (f_i - f_j)``.

    Args:
        feats (Tensor): Instance features, shape (B, D).
        idx_i, idx_j (Tensor): Pair indices, each shape (P,).

    Returns:
        Tensor: Shape (P, D); row ``p`` sums to ``||f_i - f_j||^2``.
    """
    return (gather_rows(feats, idx_i) - gather_rows(feats, idx_j)).pow(2)


def gather_rows(feats: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``feats[idx]`` with a deterministic backward.

    The backward of advanced indexing is ``index_put_(accumulate=True)``,
    which torch's CPU kernel runs in parallel: with repeated, unsorted
    indices (every pair's second member) the gradient sums came out in a
    different order on every step and GMN training did not reproduce.
    ``index_select``'s backward (``index_add_``) adds in a fixed order.

    Args:
        feats (Tensor): Shape (B, ...).
        idx (Tensor): Row indices, shape (P,), int64.

    Returns:
        Tensor: Shape (P, ...).
    """
    return feats.index_select(0, idx)


def pair_identity_keys(labels: torch.Tensor, idx_i: torch.Tensor,
                       idx_j: torch.Tensor) -> torch.Tensor:
    """Unordered label pairs ``(min(y_i, y_j), max(y_i, y_j))``, (P, 2)."""
    y_i, y_j = labels[idx_i], labels[idx_j]
    return torch.stack([torch.minimum(y_i, y_j), torch.maximum(y_i, y_j)], 1)


def _merge_options(name: str,
                   cfg: Optional[dict],
                   defaults: dict,
                   extra_ok: bool = False) -> Optional[dict]:
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise TypeError(f'GMNHead {name} must be a dict or None, got '
                        f'{cfg!r}')
    unknown = set(cfg) - set(defaults)
    if unknown and not extra_ok:
        raise ValueError(f'GMNHead {name} has unknown keys '
                         f'{sorted(unknown)}; supported: '
                         f'{sorted(defaults)}')
    merged = copy.deepcopy(defaults)
    merged.update(cfg)
    return merged


@MODELS.register_module()
class GMNHead(BNNeckHead):
    """BNNeck head plus the metric network (M-Net) of GMN.

    Training loss: ``L_cls + L_tri + L_gmn + lambda * L_pic``, keys
    ``loss_cls``, ``loss_tri``, ``loss_gmn`` and ``loss_pic`` (lambda
    applied here). Logged (not losses): ``accuracy``, ``mnet_acc``,
    ``mnet_pos_acc``, ``mnet_neg_acc`` (clean pairs, threshold ``z = 0``;
    each left out of a batch without such pairs), ``pic_raw`` (L_pic
    before lambda, to calibrate lambda) and ``dp_on``.

    Pairs: all unordered ``i < j`` of the batch (or batch-hard ones); pair
    feature ``f_sp = (f_i - f_j)^2`` with ``f`` the post-BNNeck feature,
    L2-normalised (options). Pair labels come from the batch labels, which
    :class:`~mmreid.datasets.ConcatReIDDataset` makes unique across sources,
    so no positive is formed across datasets.

    DP (dropout-based perturbation) is active only when the head is in
    training mode **and** ``dp_enabled`` is True. ``dp_enabled`` is
    ``None`` (undecided) after construction and is set by
    ``GMNDPWarmupHook`` from the epoch (never stored in checkpoints); a
    training forward of a head with DP while it is still undecided is an
    error, because DP would silently never run (a leaf config whose
    ``custom_hooks`` replaces the base's list drops the hook). A custom
    training loop sets ``head.dp_enabled`` itself.

    The pair features, the M-Net and the pair losses run in fp32 with
    autocast disabled, because ``f_sp`` entries are ~1e-4 for normalised
    features.

    Args:
        in_channels (int): Feature dimension D.
        num_classes (int): Number of training identities (all sources).
        loss_cls (dict, optional): Identity loss on the post-BN feature.
        loss_tri (dict, optional): Triplet loss on the pre-BN feature
            (logged as ``loss_tri``).
        mnet (dict): The M-Net config, built from the registry (``type``
            defaults to :class:`~mmreid.models.layers.MNet`:
            ``hidden_channels=512``, ``num_layers=1``,
            ``output='logit'``); ``in_channels`` is set here (a given one
            must equal the head's). The built module must provide
            ``folded_params()`` for the test-time pair scorer.
        loss_gmn (dict): The pair verification loss (L_gmn), default
            ``dict(type='PairVerificationLoss', balance='balanced')``.
        pair_feat (str): ``'post_bn'`` (default) or ``'pre_bn'``: the
            instance feature paired (and returned at test time).
        pair_norm (str): ``'l2'`` (default) or ``'raw'``.
        pair_mining (str): ``'all'`` (default) or ``'batch_hard'``.
        dp (dict, optional): DP options, None to disable DP:
            ``rate=0.5``, ``position='pair'`` (dropout on ``f_sp``) or
            ``'instance'`` (on ``f_i``, ``f_j`` before squaring),
            ``mode='append'`` (M-Net input ``[f_sp; DP copies]``, labels
            duplicated) or ``'replace'``, ``n_copies=1`` (0-2),
            ``warmup_epochs=10`` (read by ``GMNDPWarmupHook``).
        pic (dict, optional): PIC options, None to disable PIC:
            ``weight`` (lambda, default 1.0), ``space='input'`` (the
            M-Net input, DP copies included) or ``'hidden'`` (the M-Net's
            last hidden activation); further keys (``center``,
            ``min_group_size``, ``detach_center``) go to :class:`PICLoss`.
        gmn_detach_backbone (bool): Stop the gradients of L_gmn and L_pic
            at the instance features (M-Net-only training). Defaults to
            False (end-to-end).
        test_feature (str, optional): The test feature is always the
            paired feature (see :meth:`predict`), chosen by ``pair_feat``;
            ``test_feature`` is accepted (so that a ``BNNeckHead`` config
            can become a ``GMNHead`` one) only when it names that same
            feature (``'after_bn'`` for ``post_bn``, ``'before_bn'`` for
            ``pre_bn``); anything else is an error.
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
        mnet: dict = dict(hidden_channels=512),
        loss_gmn: dict = dict(type='PairVerificationLoss', balance='balanced'),
        pair_feat: str = 'post_bn',
        pair_norm: str = 'l2',
        pair_mining: str = 'all',
        dp: Optional[dict] = DP_DEFAULTS,
        pic: Optional[dict] = PIC_DEFAULTS,
        gmn_detach_backbone: bool = False,
        test_feature: Optional[str] = None,
        init_cfg: Optional[Union[dict, List[dict]]] = dict(
            type='Normal', layer='Linear', std=0.001),
        loss_triplet: Optional[dict] = NOT_GIVEN,
    ) -> None:
        choices = dict(
            pair_feat=(pair_feat, PAIR_FEATS),
            pair_norm=(pair_norm, PAIR_NORMS),
            pair_mining=(pair_mining, PAIR_MININGS))
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f'GMNHead {name} must be one of {allowed}, '
                                 f'got {value!r}')
        paired = 'after_bn' if pair_feat == 'post_bn' else 'before_bn'
        if test_feature is not None and test_feature != paired:
            raise ValueError(
                f'GMNHead test_feature={test_feature!r} contradicts '
                f'pair_feat={pair_feat!r}: GMN tests on the paired feature '
                f'({paired!r}), the one its M-Net scores; choose it with '
                "pair_feat ('post_bn' or 'pre_bn') and drop test_feature")
        super().__init__(
            in_channels=in_channels,
            num_classes=num_classes,
            loss_cls=loss_cls,
            loss_tri=loss_tri,
            test_feature=paired,
            loss_triplet=loss_triplet,
            init_cfg=init_cfg)
        self.pair_feat = pair_feat
        self.pair_norm = pair_norm
        self.pair_mining = pair_mining
        self.gmn_detach_backbone = gmn_detach_backbone
        if not isinstance(mnet, dict):
            raise TypeError(f'GMNHead mnet must be a dict, got {mnet!r}')
        mnet = dict(mnet)
        mnet.setdefault('type', 'MNet')
        if mnet.setdefault('in_channels', in_channels) != in_channels:
            raise ValueError(f"GMNHead mnet.in_channels={mnet['in_channels']}"
                             f' differs from the head\'s in_channels='
                             f'{in_channels}')
        # Not init_cfg's Normal(std=0.001) (meant for the classifier):
        # the M-Net keeps PyTorch's default Linear init.
        self.mnet = MODELS.build(mnet)
        if not callable(getattr(self.mnet, 'folded_params', None)):
            raise TypeError(f"GMNHead mnet type {mnet['type']!r} has no "
                            'folded_params(), which the test-time pair '
                            'scorer needs')
        self.loss_gmn = MODELS.build(loss_gmn)

        self.dp = _merge_options('dp', dp, DP_DEFAULTS)
        if self.dp is not None:
            if not 0 <= self.dp['rate'] < 1:
                raise ValueError(f"GMNHead dp.rate must lie in [0, 1), got "
                                 f"{self.dp['rate']!r}")
            if self.dp['position'] not in DP_POSITIONS:
                raise ValueError(f'GMNHead dp.position must be one of '
                                 f"{DP_POSITIONS}, got "
                                 f"{self.dp['position']!r}")
            if self.dp['mode'] not in DP_MODES:
                raise ValueError(f'GMNHead dp.mode must be one of '
                                 f"{DP_MODES}, got {self.dp['mode']!r}")
            # Counts: int() would cut 2.5 to 2, and a negative E_dp would
            # switch DP on from the first epoch.
            for key in ('n_copies', 'warmup_epochs'):
                value = integer_label(self.dp[key], f'GMNHead dp.{key}')
                if value < 0:
                    raise ValueError(f'GMNHead dp.{key} must be >= 0, got '
                                     f'{value!r}')
                self.dp[key] = value
        #: Set by ``GMNDPWarmupHook``; DP also needs training mode.
        #: ``None`` until set: a training forward with DP then refuses.
        self.dp_enabled: Optional[bool] = None

        pic = _merge_options('pic', pic, PIC_DEFAULTS, extra_ok=True)
        self.pic = pic
        self.loss_pic = None
        if pic is not None:
            if pic['space'] not in PIC_SPACES:
                raise ValueError(f'GMNHead pic.space must be one of '
                                 f"{PIC_SPACES}, got {pic['space']!r}")
            for key in ('loss_weight', 'type'):
                if key in pic:
                    raise ValueError(
                        f'GMNHead pic.{key}={pic[key]!r} is not an option: '
                        "lambda (L_pic's weight) is pic.weight, applied by "
                        'the head, and the head builds PICLoss itself '
                        '(with loss_weight=1); the other keys go to '
                        'PICLoss: center, min_group_size, detach_center')
            extra = {
                k: v
                for k, v in pic.items() if k not in ('weight', 'space')
            }
            self.loss_pic = MODELS.build(
                dict(type='PICLoss', loss_weight=1.0, **extra))

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """The head's ``init_cfg``, then the M-Net's own.

        The head's ``Normal`` init of Linear layers reaches the M-Net's
        Linears too; they get PyTorch's default initialisation back, or
        the M-Net's own ``init_cfg`` when its config gives one. A
        pretrained ``init_cfg`` of the head keeps the M-Net it loaded.
        """
        super().init_weights()  # the M-Net's init_cfg runs after the head's
        # A pretrained init_cfg loaded the M-Net too: it is kept.
        if getattr(self.mnet, 'init_cfg', None) or has_pretrained_init(
                self.init_cfg):
            return
        for module in self.mnet.modules():
            if hasattr(module, 'reset_parameters'):
                module.reset_parameters()

    @property
    def dp_active(self) -> bool:
        """Whether DP perturbs the pairs of the next training forward.

        Raises:
            RuntimeError: In training with DP configured while
                ``dp_enabled`` is still ``None`` (no ``GMNDPWarmupHook``).
        """
        if not (self.training and self.dp is not None
                and int(self.dp['n_copies']) > 0 and self.dp['rate'] > 0):
            return False
        if self.dp_enabled is None:
            raise RuntimeError(
                'GMNHead: dp is configured but nothing switched it on or '
                'off (head.dp_enabled is None): the training needs '
                "dict(type='GMNDPWarmupHook') in custom_hooks (a config "
                "that sets custom_hooks replaces its base's list, so list "
                'it again there), or dp=None to train without DP. A custom '
                'training loop sets head.dp_enabled itself.')
        return bool(self.dp_enabled)

    def instance_feature(self, f_t: torch.Tensor,
                         f_b: torch.Tensor) -> torch.Tensor:
        """The paired feature ``f`` (fp32), shape (N, D)."""
        feats = (f_b if self.pair_feat == 'post_bn' else f_t).float()
        if self.pair_norm == 'l2':
            feats = F.normalize(feats, dim=1)
        return feats

    def build_pairs(
        self, feats: torch.Tensor, labels: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """M-Net inputs of a batch, DP copies included.

        Args:
            feats (Tensor): Instance features ``f``, shape (B, D), fp32.
            labels (Tensor): Globally unique pids, shape (B,).

        Returns:
            tuple: ``pair_feats`` (N, D), ``targets`` (N,) bool,
            ``keys`` (N, 2) pair-identity keys and ``is_clean`` (N,) bool
            (False for DP copies). Without DP ``N = P``; with DP in
            append mode ``N = (1 + n_copies) * P``, in replace mode
            ``n_copies * P``.
        """
        if self.pair_mining == 'all':
            idx_i, idx_j = all_pairs(len(labels), device=feats.device)
        else:
            idx_i, idx_j = batch_hard_pairs(feats, labels)
        clean = pair_features(feats, idx_i, idx_j)
        targets = labels[idx_i] == labels[idx_j]
        keys = pair_identity_keys(labels, idx_i, idx_j)
        if not self.dp_active:
            return clean, targets, keys, torch.ones_like(targets)
        rate = float(self.dp['rate'])
        copies = []
        for _ in range(int(self.dp['n_copies'])):
            if self.dp['position'] == 'pair':
                copies.append(F.dropout(clean, rate, training=True))
            else:
                # Independent masks on both members of every pair.
                diff = (
                    F.dropout(gather_rows(feats, idx_i), rate, training=True) -
                    F.dropout(gather_rows(feats, idx_j), rate, training=True))
                copies.append(diff.pow(2))
        parts = copies if self.dp['mode'] == 'replace' else [clean] + copies
        num = len(parts)
        is_clean = torch.zeros(
            num * len(targets), dtype=torch.bool, device=feats.device)
        if self.dp['mode'] == 'append':
            is_clean[:len(targets)] = True
        return (torch.cat(parts), targets.repeat(num), keys.repeat(num, 1),
                is_clean)

    def loss(self, feats: Union[torch.Tensor, Tuple[torch.Tensor, ...]],
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """GMN's training losses.

        Args:
            feats: Pooled features, (N, D) or a tuple whose last item is.
            data_samples (list[ReIDDataSample]): With ``gt_label``.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_tri``, ``loss_gmn``,
            ``loss_pic`` and the log values listed in the class doc.
        """
        f_t, f_b = self(feats)
        labels = torch.cat([s.gt_label for s in data_samples]).to(f_t.device)
        losses = dict()
        logits = self.classifier(f_b)
        if self.loss_cls is not None:
            losses['loss_cls'] = self.loss_cls(logits, labels)
        if self.loss_tri is not None:
            losses['loss_tri'] = self.loss_tri(f_t, labels)
        with torch.no_grad():
            losses['accuracy'] = (logits.argmax(1) == labels).float().mean()
        losses.update(self.pair_losses(f_t, f_b, labels))
        return losses

    def pair_losses(self, f_t: torch.Tensor, f_b: torch.Tensor,
                    labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """L_gmn, lambda * L_pic and the M-Net logs, in fp32."""
        with torch.autocast(device_type=f_t.device.type, enabled=False):
            feats = self.instance_feature(f_t, f_b)
            if self.gmn_detach_backbone:
                feats = feats.detach()
            pair_feats, targets, keys, is_clean = self.build_pairs(
                feats, labels)
            z, hidden = self.mnet(pair_feats, return_hidden=True)
            losses = dict(loss_gmn=self.loss_gmn(z, targets))
            if self.loss_pic is not None:
                space = pair_feats if self.pic['space'] == 'input' \
                    else hidden
                raw = self.loss_pic(space, keys, groups=group_ids(keys))
                losses['loss_pic'] = float(self.pic['weight']) * raw
                losses['pic_raw'] = raw.detach()
        with torch.no_grad():
            # Accuracies of the clean pairs only. DP in replace mode sends
            # none through the M-Net: the keys are then left out, not
            # taken from the perturbed copies (which change with the
            # dropout draw alone).
            z, targets = z[is_clean], targets[is_clean]
            correct = (z > 0) == targets
            if len(correct):
                losses['mnet_acc'] = correct.float().mean()
            # Left out, not 0, when a batch has no such pair: mmengine
            # averages each key over the iterations that logged it, where
            # a 0 would read as a measured accuracy and a NaN would turn
            # the whole averaging window into NaN.
            if targets.any():
                losses['mnet_pos_acc'] = correct[targets].float().mean()
            if (~targets).any():
                losses['mnet_neg_acc'] = correct[~targets].float().mean()
            losses['dp_on'] = z.new_tensor(float(self.dp_active))
        return losses

    def predict(
            self, feats: Union[torch.Tensor, Tuple[torch.Tensor,
                                                   ...]]) -> torch.Tensor:
        """The test feature: the paired feature ``f`` of training (N, D),
        fp32 (normalised when ``pair_norm='l2'``)."""
        f_t, f_b = self(feats)
        return self.instance_feature(f_t, f_b)
