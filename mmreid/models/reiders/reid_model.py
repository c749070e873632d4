import inspect
import numbers
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel, is_model_wrapper

from mmreid.evaluation.functional import Scorer, compute_distance
from mmreid.models.losses.checks import check_weight
from mmreid.models.modality_routing import (as_modality_labels,
                                            modality_aware_modules,
                                            set_modality)
from mmreid.models.weight_init import init_cfg_keys, init_in_mmreid_scope
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from mmreid.utils.deprecation import warn_deprecated
from mmreid.utils.labels import integer_label

DISTANCES = ('euclidean', 'sqeuclidean', 'cosine')
#: mmengine's ``BaseModel.parse_losses`` sums every output key containing
#: this: a log-only key must not contain it.
LOSS_MARK = 'loss'

#: A stage weight of auxiliary losses: one number for every stage or one
#: per backbone stage.
StageWeights = Union[float, Sequence[float]]
#: The default of the deprecated ``aux_loss`` keyword: not given.
_NOT_GIVEN = object()


def get_model_scorers(model) -> Optional[Dict[str, Scorer]]:
    """The model's own distances (see :meth:`ReIDModel.scorers`).

    The one place where evaluation asks a model how its features are
    compared: mmreid's val/test loops, ``rank_gallery`` and
    ``RankedListHook`` all call it.

    Args:
        model (nn.Module): A model, possibly in a wrapper (DDP, ...).

    Returns:
        dict[str, Callable] | None: Mode name -> scorer, the primary mode
        first; None when the model compares features with a feature
        distance that the metric configures (plain ``ReIDModel``) or has
        no ``scorers`` method at all.

    Raises:
        RuntimeError: The model declares its own distance
            (``has_own_distance``) but gives no scorer.
        TypeError: A scorer is not callable or a name is not a string.
    """
    if is_model_wrapper(model):
        model = model.module
    method = getattr(model, 'scorers', None)
    scorers = method() if callable(method) else None
    if not scorers:
        if getattr(model, 'has_own_distance', False):
            raise RuntimeError(f'{type(model).__name__} compares features '
                               'with its own distance but its scorers() '
                               'returned none')
        return None
    scorers = dict(scorers)
    for name, scorer in scorers.items():
        if not isinstance(name, str) or not callable(scorer):
            raise TypeError(f'{type(model).__name__}.scorers() must map '
                            f'mode names to callables, got {name!r}: '
                            f'{scorer!r}')
    return scorers


def feature_ranking(model) -> Dict[str, Union[str, bool]]:
    """How the model ranks its test features, for the files that carry
    them without the model (an ONNX graph, ``extract_features.py``'s
    ``meta.json``).

    Args:
        model (nn.Module): A model, possibly in a wrapper (DDP, ...).

    Returns:
        dict: ``distance`` (``'euclidean'``, ``'sqeuclidean'``,
        ``'cosine'``, or the primary mode of the model's own distance,
        e.g. GMN's ``'mnet'``), ``normalization`` (``'l2'``: the distance
        L2-normalises the features first, i.e. cosine; ``'none'``; or
        ``'model'`` for the model's own distance), ``own_distance``
        (whether the ranking needs the model's :meth:`ReIDModel.scorers`,
        which features alone do not compute) and ``note``, a sentence
        saying so.
    """
    inner = model.module if is_model_wrapper(model) else model
    name = type(inner).__name__
    scorers = get_model_scorers(inner)
    if scorers:
        primary = next(iter(scorers))
        return dict(
            distance=primary,
            normalization='model',
            own_distance=True,
            note=(f'{name} ranks with its own distance {primary!r} (its '
                  'scorers(), e.g. the M-Net of GMN), computed by the model '
                  'from pairs of these features: a feature distance on them '
                  'is not the model\'s ranking (for GMN, Euclidean gives '
                  'its "euclid" mode, not the primary mode); rank with '
                  'mmreid.apis.rank_gallery'))
    distance = getattr(inner, 'distance_type', 'euclidean')
    normalization = 'l2' if distance == 'cosine' else 'none'
    how = ('L2-normalised, then ' if normalization == 'l2' else '') + \
        f'{distance} distance, smaller = closer'
    return dict(
        distance=distance,
        normalization=normalization,
        own_distance=False,
        note=(f'rank these features as {name} does ({how}): the ranking '
              'of mmreid.apis.rank_gallery'))


@MODELS.register_module()
class ReIDModel(BaseModel):
    """Person ReID model: backbone -> neck (pooling) -> head.

    ``forward(mode=...)`` follows mmengine:

    * ``'loss'``: a dict of ``loss_*`` tensors (summed by mmengine) and log
      values whose names do not contain ``loss``;
    * ``'predict'``: the data samples with ``pred_feature`` (D,) set;
    * ``'tensor'``: the test features, shape (N, D).

    The model also owns how two features are compared
    (:meth:`distance`), so that a learned matcher can replace the Euclidean
    distance without the evaluator knowing. A model with its own distance
    (``has_own_distance = True``, e.g. GMN's M-Net) returns it from
    :meth:`scorers`; mmreid's val/test loops hand those scorers to every
    metric, and :meth:`val_step`/:meth:`test_step` refuse to run in a loop
    that does not (see :meth:`scorers_handed_to`), so such a model is never
    evaluated with another distance by mistake. A model with
    ``distance='cosine'`` is refused there too: only mmreid's loops check
    that each metric ranks as it does.

    Args:
        backbone (dict): Backbone config, e.g. ``ReIDResNet``.
        neck (dict, optional): Pooling config, e.g. ``GlobalAvgPool``.
        head (dict): Head config, e.g. ``BNNeckHead``.
        data_preprocessor (dict, optional): Defaults to
            ``ReIDDataPreprocessor`` with ImageNet statistics.
        distance (str): ``'euclidean'`` (default), ``'sqeuclidean'`` or
            ``'cosine'``; used by :meth:`distance`.
        test_cfg (dict, optional): Test-time options. ``flip=True`` averages
            the features of each image and its horizontal mirror (flip
            test-time augmentation). Defaults to no augmentation.
        aux_losses (dict, optional): One loss per backbone plugin that
            gives auxiliary outputs in training (see ``ReIDResNet``), keyed
            by the plugin's abbreviation, e.g. ``dict(snr=dict(type=
            'DualCausalityLoss'))``; ``None`` as a value discards that
            plugin's outputs on purpose. Every such plugin needs an entry
            and every entry a plugin that gives outputs: anything else is a
            ``ValueError`` at build time naming the abbreviation. For
            stage ``b`` (1-based) of plugin ``abbr`` the loss is called as
            ``loss(**aux, labels=labels)`` with the plugin's aux dict minus
            its ``log_*`` entries and the identities (N,), plus
            ``return_terms=True`` if its ``forward`` takes that argument;
            it returns a scalar or ``(scalar, terms)``. The model logs the
            weighted loss as ``loss_{abbr}_stage{b}`` and the terms and the
            ``log_*`` entries as ``{abbr}_stage{b}_{name}``. Since mmengine
            sums every output whose key contains ``loss``, an abbreviation
            with a loss that contains ``loss`` is a ``ValueError`` at build
            time, and so is, at the forward, a term or ``log_*`` name that
            puts ``loss`` into its key or two names giving one key.
            Defaults to None (no plugin may give auxiliary outputs).
        aux_stage_weights (dict, optional): Plugin abbreviation -> weight of
            its auxiliary loss, a number or one per backbone stage, e.g.
            ``dict(snr=(0.1, 0.1, 0.5, 0.5))``; stages of weight 0 are
            skipped. Each key needs a loss in ``aux_losses``. Defaults to
            None (weight 1 everywhere).
        aux_loss (dict, optional): Deprecated, use ``aux_losses``: one loss
            config with a ``stage_weights`` entry, applied to every plugin
            with auxiliary outputs (None: their outputs are discarded).
            Mapped to ``aux_losses``/``aux_stage_weights`` with a
            ``FutureWarning``; to be removed in the next release.
        init_cfg (dict, optional): Initialisation config.

    **Modality labels.** If the model has modality-aware submodules (any
    module with a ``set_modality`` method, e.g. ``MBN`` norm layers or a
    two-stream backbone), every forward first sets on them the modality of
    each sample, read from ``data_samples[i].metainfo['modality']`` (0
    visible, 1 infrared), or from the ``modality`` argument of
    :meth:`forward` (an int for the whole batch or one label per sample),
    which takes precedence. ``'tensor'`` mode without either raises, and
    so does :meth:`predict` without data samples: labels left on the
    modules by an earlier batch are never used. Models without such
    modules ignore modality entirely.
    """

    #: Whether features must be compared with :meth:`scorers` (a learned
    #: distance that no metric knows) rather than a feature distance.
    has_own_distance: bool = False

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = dict(type='GlobalAvgPool'),
                 data_preprocessor: Optional[dict] = None,
                 distance: str = 'euclidean',
                 test_cfg: Optional[dict] = None,
                 aux_losses: Optional[Dict[str, Optional[dict]]] = None,
                 aux_stage_weights: Optional[Dict[str, StageWeights]] = None,
                 aux_loss: Optional[dict] = _NOT_GIVEN,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ReIDDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # Built here, not by BaseModel, so that mmreid's registry is
            # used even when no default scope is set.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if distance not in DISTANCES:
            raise ValueError(f'distance must be one of {DISTANCES}, got '
                             f'{distance!r}')
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck else None
        self.head = MODELS.build(head)
        self.distance_type = distance
        self.test_cfg = dict(test_cfg or {})
        unknown = set(self.test_cfg) - {'flip'}
        if unknown:
            raise ValueError(f'unknown test_cfg keys {sorted(unknown)}; '
                             'supported: flip')
        #: Who hands :meth:`scorers` to the metrics of the running
        #: evaluation (set by :meth:`scorers_handed_to`).
        self.scorers_consumer: Optional[str] = None
        if aux_loss is not _NOT_GIVEN:
            if aux_losses is not None or aux_stage_weights is not None:
                raise TypeError('give aux_losses/aux_stage_weights or the '
                                'deprecated aux_loss, not both')
            aux_losses, aux_stage_weights = self._map_deprecated_aux_loss(
                aux_loss)
        self._build_aux_losses(aux_losses or {}, aux_stage_weights or {})

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """mmengine's ``init_weights`` in the mmreid scope, so that
        ``init_cfg`` ``'Pretrained'`` is mmreid's strict
        ``ReportingPretrainedInit`` even without a default scope. A failed
        load names the config key, e.g. ``model.backbone.init_cfg``."""
        with init_cfg_keys(self):
            super().init_weights()

    def _aux_plugin_stages(self) -> Dict[str, Tuple[int, ...]]:
        """Plugin abbr -> stages with auxiliary outputs of the backbone."""
        method = getattr(self.backbone, 'aux_plugin_stages', None)
        return method() if callable(method) else {}

    def _map_deprecated_aux_loss(
        self, aux_loss: Optional[dict]
    ) -> Tuple[Dict[str, Optional[dict]], Dict[str, StageWeights]]:
        """``aux_loss`` (one config for every plugin, ``stage_weights``
        inside) in the shape of ``aux_losses``/``aux_stage_weights``."""
        abbrs = tuple(self._aux_plugin_stages())
        loss_cfg = dict(aux_loss) if aux_loss else None
        stage_weights = (loss_cfg or {}).pop('stage_weights', None)
        example = ', '.join(f'{abbr}={loss_cfg!r}' for abbr in abbrs)
        warn_deprecated(
            'ReIDModel(aux_loss=...) is deprecated and will be removed in '
            'the next release: give one loss per plugin, keyed by its '
            f'abbreviation, e.g. aux_losses=dict({example}), and the stage '
            'weights as aux_stage_weights=dict(<abbr>=...)',
            stacklevel=3)
        if loss_cfg is not None and not abbrs:
            raise ValueError(
                f'aux_loss={aux_loss!r} is set but no plugin of the '
                f'backbone ({type(self.backbone).__name__}) gives '
                'auxiliary outputs')
        weights = dict()
        if stage_weights is not None:
            weights = {abbr: stage_weights for abbr in abbrs}
        return {abbr: loss_cfg for abbr in abbrs}, weights

    def _build_aux_losses(self, aux_losses: Dict[str, Optional[dict]],
                          aux_stage_weights: Dict[str, StageWeights]) -> None:
        """Build and check the per-plugin auxiliary losses (see the class
        docstring); sets ``aux_losses``, ``discarded_aux`` and
        ``aux_stage_weights``."""
        stages = self._aux_plugin_stages()
        plugins = tuple(getattr(self.backbone, 'plugin_abbrs', ()))
        for abbr, cfg in aux_losses.items():
            if abbr not in plugins:
                raise ValueError(
                    f'aux_losses[{abbr!r}]: the backbone '
                    f'({type(self.backbone).__name__}) has no plugin '
                    f'{abbr!r}; its plugins are {list(plugins)}')
            if cfg is not None and abbr not in stages:
                raise ValueError(
                    f'aux_losses[{abbr!r}] is set but plugin {abbr!r} gives '
                    'no auxiliary outputs (no module of it declares '
                    'has_aux_outputs, e.g. SNR(restitution=False)); set '
                    f'aux_losses[{abbr!r}] = None or drop it')
        for abbr, cfg in aux_losses.items():
            if cfg is not None and LOSS_MARK in abbr:
                raise ValueError(
                    f'aux_losses[{abbr!r}]: the abbreviation of plugin '
                    f'{abbr!r} contains {LOSS_MARK!r}, so each of its log '
                    f'keys ({abbr}_stage<b>_<name>) would be summed into '
                    'the optimised loss by mmengine; give the plugin class '
                    'an _abbr_ without it')
        for abbr in stages:
            if abbr not in aux_losses:
                raise ValueError(
                    f'plugin {abbr!r} gives auxiliary outputs in training '
                    'but aux_losses has no entry for it: add aux_losses='
                    f'dict({abbr}=dict(type=...)) for its loss, or '
                    f'aux_losses=dict({abbr}=None) to discard them')
        #: Plugin abbr -> its auxiliary loss.
        self.aux_losses = torch.nn.ModuleDict({
            abbr: MODELS.build(cfg)
            for abbr, cfg in aux_losses.items() if cfg is not None
        })
        #: Plugins whose auxiliary outputs are discarded on purpose.
        self.discarded_aux: Tuple[str, ...] = tuple(
            abbr for abbr, cfg in aux_losses.items() if cfg is None)
        #: Plugin abbr -> stage weight(s) of its loss (1 if not given).
        self.aux_stage_weights: Dict[str, Union[float, Tuple[float, ...]]] = {}
        num_stages = getattr(self.backbone, 'num_stages', None)
        for abbr, weights in aux_stage_weights.items():
            if abbr not in self.aux_losses:
                raise ValueError(
                    f'aux_stage_weights[{abbr!r}] is set but aux_losses has '
                    f'no loss for {abbr!r}')
            name = f'aux_stage_weights[{abbr!r}]'
            if isinstance(weights, numbers.Real):
                weights = check_weight(type(self).__name__, name, weights)
            else:
                weights = tuple(
                    check_weight(type(self).__name__, name, w)
                    for w in weights)
                if num_stages is not None and len(weights) != num_stages:
                    raise ValueError(
                        f'aux_stage_weights[{abbr!r}] has {len(weights)} '
                        f'entries, the backbone has {num_stages} stages')
            self.aux_stage_weights[abbr] = weights
        self._aux_takes_terms = {
            abbr: 'return_terms' in inspect.signature(loss.forward).parameters
            for abbr, loss in self.aux_losses.items()
        }

    def extract_feat(self, inputs: torch.Tensor, return_aux: bool = False):
        """Backbone and pooling: (N, 3, H, W) -> pooled features.

        Args:
            inputs (Tensor): Images, shape (N, 3, H, W).
            return_aux (bool): Also return the backbone's auxiliary plugin
                outputs (``{}`` for a backbone without such plugins).

        Returns:
            Tensor | tuple[Tensor] | tuple: The pooled features, and with
            ``return_aux`` the auxiliary outputs ``aux[abbr][stage]``.
        """
        if return_aux and self._aux_plugin_stages():
            feats, aux = self.backbone(inputs, return_aux=True)
        else:
            feats, aux = self.backbone(inputs), {}
        if self.neck is not None:
            feats = self.neck(feats)
        return (feats, aux) if return_aux else feats

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[ReIDDataSample]] = None,
                mode: str = 'tensor',
                modality: Optional[Union[int, Sequence[int],
                                         torch.Tensor]] = None):
        """Run the model in ``mode`` (see the class docstring).

        Args:
            inputs (Tensor): Images, shape (N, 3, H, W).
            data_samples (list[ReIDDataSample], optional): Required for
                ``'loss'``; their ``metainfo['modality']`` routes
                modality-aware modules.
            mode (str): ``'loss'``, ``'predict'`` or ``'tensor'``.
            modality (int | Sequence[int] | Tensor, optional): Modality
                labels, overriding the data samples' (e.g. ``'tensor'``
                mode without data samples). Ignored by models without
                modality-aware modules.
        """
        self.route_modality(inputs, data_samples, modality)
        # loss() and predict() route by themselves only when called
        # directly, so that an explicit ``modality`` is not overridden.
        self._modality_routed = True
        try:
            if mode == 'loss':
                return self.loss(inputs, data_samples)
            if mode == 'predict':
                return self.predict(inputs, data_samples)
            if mode == 'tensor':
                return self.extract_test_feature(inputs)
        finally:
            self._modality_routed = False
        raise ValueError(f'invalid mode {mode!r}: expected "loss", '
                         '"predict" or "tensor"')

    def route_modality(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[ReIDDataSample]] = None,
        modality: Optional[Union[int, Sequence[int], torch.Tensor]] = None
    ) -> None:
        """Set the batch's modality labels on modality-aware modules.

        A no-op for a model without such modules. Otherwise the labels are
        ``modality`` if given, else each data sample's
        ``metainfo['modality']``.

        Raises:
            KeyError: A data sample has no ``modality`` metainfo.
            ValueError: No labels are available, or their number differs
                from the batch size.
        """
        modules = modality_aware_modules(self)
        if not modules:
            return
        batch_size = inputs.size(0)
        if modality is None:
            if data_samples is None:
                raise ValueError(
                    f'{type(self).__name__} has modality-aware modules '
                    f'({type(modules[0]).__name__}, ...): pass modality='
                    f'<int or one label per sample> to forward() in '
                    f'"tensor" mode, or data samples with '
                    f'metainfo["modality"]')
            labels = []
            for i, sample in enumerate(data_samples):
                value = sample.metainfo.get('modality')
                if value is None:
                    raise KeyError(
                        f'data sample {i} has no "modality" in its '
                        f'metainfo, needed by the modality-aware '
                        f'{type(modules[0]).__name__}; set it in the '
                        f'dataset records (0 visible, 1 infrared) and keep '
                        f'"modality" in PackReIDInputs meta_keys')
                # int() took 0.7 as visible, True and '1' as infrared
                labels.append(
                    integer_label(value,
                                  f'data sample {i} metainfo["modality"]'))
            modality = labels
        # Floats and bools are refused, not converted; a NumPy integer
        # is one label for the whole batch, as an int.
        modality = as_modality_labels(modality)
        if not isinstance(modality, int):
            if modality.numel() != batch_size:
                raise ValueError(
                    f'got {modality.numel()} modality labels for a batch '
                    f'of {batch_size} images')
        set_modality(self, modality)

    def extract_test_feature(self, inputs: torch.Tensor) -> torch.Tensor:
        """Test features (N, D), with flip augmentation if configured."""
        feats = self.head.predict(self.extract_feat(inputs))
        if self.test_cfg.get('flip', False):
            flipped = self.head.predict(self.extract_feat(inputs.flip(3)))
            feats = (feats + flipped) / 2
        return feats

    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """Losses of a training batch.

        The head's losses (see its ``loss``) plus one
        ``loss_{abbr}_stage{b}`` per stage of every plugin with an
        auxiliary loss (see ``aux_losses``).
        """
        if not getattr(self, '_modality_routed', False):
            self.route_modality(inputs, data_samples)
        feats, aux_outputs = self.extract_feat(inputs, return_aux=True)
        losses = self.head.loss(feats, data_samples)
        aux_losses = self.loss_aux(aux_outputs, data_samples)
        clash = sorted(set(losses) & set(aux_losses))
        if clash:
            raise ValueError(
                f'the auxiliary losses and log values {clash} have the '
                f'names of outputs of the head ({type(self.head).__name__})'
                '; rename the plugin (_abbr_) or its outputs')
        losses.update(aux_losses)
        return losses

    def loss_aux(
            self, aux_outputs: Dict[str, Dict[int, Dict[str, torch.Tensor]]],
            data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """Weighted auxiliary losses of the backbone's plugin outputs.

        Args:
            aux_outputs (dict): Plugin abbr -> 0-based stage -> aux dict
                (see ``ReIDResNet.forward(return_aux=True)``).
            data_samples (list[ReIDDataSample]): With ``gt_label``.

        Returns:
            dict[str, Tensor]: ``loss_{abbr}_stage{b}`` and log values, in
            the order of ``aux_losses`` and then of the stages.

        Raises:
            RuntimeError: A plugin gave outputs that no entry of
                ``aux_losses`` expects, or a plugin with a loss gave none,
                or none at one of its stages (e.g. a module in eval mode).
            ValueError: A term of a loss or a ``log_*`` entry of a plugin
                gives a log key that contains ``'loss'`` (mmengine would
                optimise it) or that another one of the stage has.
        """
        for abbr, stage_aux in aux_outputs.items():
            if stage_aux and abbr not in self.aux_losses \
                    and abbr not in self.discarded_aux:
                raise RuntimeError(
                    f'plugin {abbr!r} gave auxiliary outputs that aux_losses '
                    'does not expect (its modules do not declare '
                    'has_aux_outputs?)')
        losses = dict()
        if not len(self.aux_losses):
            return losses
        labels = torch.cat([s.gt_label for s in data_samples])
        for abbr, loss_fn in self.aux_losses.items():
            if not aux_outputs.get(abbr):
                raise RuntimeError(
                    f'aux_losses[{abbr!r}] is set but plugin {abbr!r} gave '
                    'no auxiliary outputs (not in training mode?)')
            expected = self._aux_plugin_stages().get(abbr)
            missing = sorted(set(expected or ()) - set(aux_outputs[abbr]))
            if expected is not None and missing:
                raise RuntimeError(
                    f'plugin {abbr!r} gave no auxiliary outputs at stage(s) '
                    f'{[stage + 1 for stage in missing]} of '
                    f'{[stage + 1 for stage in sorted(expected)]}: their '
                    'loss would be left out without a word (a module of it '
                    'in eval mode?)')
            weights = self.aux_stage_weights.get(abbr, 1.0)
            for stage, aux in sorted(aux_outputs[abbr].items()):
                weight = weights if isinstance(weights,
                                               float) else weights[stage]
                if weight == 0:
                    continue
                prefix = f'{abbr}_stage{stage + 1}'
                inputs = {
                    k: v
                    for k, v in aux.items() if not k.startswith('log_')
                }
                kwargs = dict(
                    labels=labels.to(next(iter(inputs.values())).device))
                if self._aux_takes_terms[abbr]:
                    kwargs['return_terms'] = True
                out = loss_fn(**inputs, **kwargs)
                loss, terms = out if isinstance(out, tuple) else (out, {})
                losses[f'loss_{prefix}'] = weight * loss
                for name, value in terms.items():
                    self._add_log_value(
                        losses, f'{prefix}_{name}', value,
                        f'term {name!r} of aux_losses'
                        f'[{abbr!r}] ({type(loss_fn).__name__})')
                for name, value in aux.items():
                    if name.startswith('log_'):
                        self._add_log_value(
                            losses, f'{prefix}_{name[4:]}', value,
                            f'entry {name!r} of plugin {abbr!r}')
        return losses

    @staticmethod
    def _add_log_value(losses: Dict[str, torch.Tensor], key: str,
                       value: torch.Tensor, source: str) -> None:
        """Add the log-only ``value`` under ``key``, refusing a key that
        mmengine would sum into the loss or that is already taken.

        Args:
            losses (dict[str, Tensor]): The outputs of :meth:`loss_aux`.
            key (str): ``{abbr}_stage{b}_{name}``.
            value (Tensor): A log value.
            source (str): Where the name comes from, for messages.

        Raises:
            ValueError: ``key`` contains ``'loss'`` (mmengine's
                ``parse_losses`` would optimise it) or is already used.
        """
        if LOSS_MARK in key:
            raise ValueError(
                f'{source} is logged as {key!r}, which contains '
                f'{LOSS_MARK!r}: mmengine would sum this log-only value '
                'into the optimised loss; rename it')
        if key in losses:
            raise ValueError(
                f'{source} is logged as {key!r}, a key that another term '
                'or log entry of the same stage already uses; rename one '
                'of them')
        losses[key] = value

    def predict(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[ReIDDataSample]] = None
    ) -> List[ReIDDataSample]:
        """Write each sample's test feature into ``pred_feature``.

        Called directly (not through :meth:`forward`), a model with
        modality-aware modules takes the labels from ``data_samples`` and
        refuses to run without them, as :meth:`forward` does: labels set
        before (by an earlier batch) are not this batch's.
        """
        if not getattr(self, '_modality_routed', False):
            self.route_modality(inputs, data_samples)
        feats = self.extract_test_feature(inputs)
        if data_samples is None:
            data_samples = [ReIDDataSample() for _ in range(feats.size(0))]
        for sample, feat in zip(data_samples, feats):
            sample.set_pred_feature(feat)
        return data_samples

    def distance(self, query: torch.Tensor,
                 gallery: torch.Tensor) -> torch.Tensor:
        """Distances between query and gallery features (smaller = closer).

        Args:
            query (Tensor): Shape (Q, D).
            gallery (Tensor): Shape (G, D).

        Returns:
            Tensor: Shape (Q, G), fp32.
        """
        return compute_distance(query, gallery, distance=self.distance_type)

    def scorers(self) -> Optional[Dict[str, Scorer]]:
        """The model's own distances, one per reported mode.

        A model that compares features with something no metric knows (a
        learned matcher) returns ``{mode: scorer}``, the primary mode
        first; each scorer maps ``(query_chunk (Qc, D), gallery (G, D))``
        to distances (Qc, G), smaller = closer, with the weights as they
        are now. mmreid's val/test loops hand them to every metric before
        it computes (no hook or config line is needed), and
        ``rank_gallery`` and ``RankedListHook`` rank with the primary one.

        Returns:
            dict[str, Callable] | None: None here: a plain ``ReIDModel``
            compares features with a feature distance, configured on the
            metric (``ReIDMetric(metric=...)``).
        """
        return None

    @contextmanager
    def scorers_handed_to(self, consumer: str) -> Iterator[None]:
        """Declare that ``consumer`` hands :meth:`scorers` to the metrics.

        mmreid's loops enter this around an evaluation. A model with its
        own distance refuses :meth:`val_step`/:meth:`test_step` outside
        it, because a loop that does not hand the scorers over (mmengine's
        ``ValLoop``/``TestLoop``, a custom loop) would let the metric fall
        back to its Euclidean distance and print a wrong number. So does a
        model with ``distance='cosine'``: only mmreid's loops check that
        the metrics rank as it does (``check_model_distance``).

        Args:
            consumer (str): Who hands the scorers over, for messages.
        """
        previous = self.scorers_consumer
        self.scorers_consumer = consumer
        try:
            yield
        finally:
            self.scorers_consumer = previous

    def _require_scorers_consumer(self, step: str) -> None:
        if self.scorers_consumer is not None:
            return
        if self.has_own_distance:
            what = ('hand the model\'s own distance (scorers()) to the '
                    'metric, which would then rank with its own distance')
        elif self.distance_type == 'cosine':
            # mmreid's loops check that every metric ranks as
            # model.distance (check_model_distance); another loop would
            # report the metric's ranking as this model's.
            what = (f'check that the metrics rank as model.distance='
                    f'{self.distance_type!r}; a metric configured with '
                    'another distance would report a number that '
                    'init_model/rank_gallery do not give')
        else:
            return
        raise RuntimeError(
            f'{type(self).__name__}.{step} ran in a loop that does not '
            f'{what}. Use mmreid\'s loops: val_cfg = '
            "dict(type='ReIDValLoop'), test_cfg = dict(type="
            "'ReIDTestLoop') or the MultiTarget loops (tools/train.py "
            'and tools/test.py choose them when the config names no '
            'loop type).')

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        """mmengine's ``val_step``, refused when the model's own distance
        cannot reach the metric (see :meth:`scorers_handed_to`)."""
        self._require_scorers_consumer('val_step')
        return super().val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        """mmengine's ``test_step``, refused when the model's own distance
        cannot reach the metric (see :meth:`scorers_handed_to`)."""
        self._require_scorers_consumer('test_step')
        return super().test_step(data)
