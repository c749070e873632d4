"""Cross-modality protocols: SYSU-MM01, LLCM and RegDB.

SYSU-MM01 and LLCM rank the queries of one modality against a gallery
re-drawn from the pool of the other modality in every trial
(:class:`TrialGalleryMetric`); RegDB ranks one trial's full query set
against its full gallery (:class:`RegDBMetric`).
"""
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from mmreid.registry import METRICS
from mmreid.utils.deprecation import warn_deprecated
from .reid_metric import FEATURE_OPTIONS, ReIDMetric
from .trial_gallery_metric import (GALLERY_DRAWS, TrialGalleryMetric,
                                   load_rand_perm_cam)

#: SYSU-MM01 gallery cameras (numbers, 1-based) per search mode, in the
#: order the reference code visits them.
SYSU_GALLERY_CAMS = dict(all=(1, 2, 4, 5), indoor=(1, 2))
SHOTS = dict(single=1, multi=10)
LLCM_VIS2IR_MODES = ('reference_transposed', 'symmetric')
LLCM_DIRECTIONS = ('ir2vis', 'vis2ir')
REGDB_DIRECTIONS = ('v2t', 't2v')
#: The ``modality`` of the records, as the datasets set it
#: (``MODALITIES`` of ``SYSUMM01``, ``RegDB`` and ``LLCM``).
VISIBLE, INFRARED = 0, 1
#: The modality of each direction's queries; the gallery is the other.
LLCM_QUERY_MODALITY = dict(ir2vis=INFRARED, vis2ir=VISIBLE)
REGDB_QUERY_MODALITY = dict(v2t=VISIBLE, t2v=INFRARED)

__all__ = [
    'SYSUMetric', 'LLCMMetric', 'RegDBMetric', 'TrialGalleryMetric',
    'VariantKeysMixin', 'DirectionMixin', 'ModalityMixin',
    'load_rand_perm_cam', 'GALLERY_DRAWS', 'SYSU_GALLERY_CAMS', 'SHOTS',
    'LLCM_VIS2IR_MODES', 'LLCM_DIRECTIONS', 'REGDB_DIRECTIONS'
]

# Names this module held before the protocol functions moved to
# ``mmreid.evaluation.functional``; importable from here for one release.
_MOVED_TO_FUNCTIONAL = ('group_pool', 'seeded_gallery_draw',
                        'official_gallery_draw', 'normalize_rand_perm_cam',
                        'PoolGroups', 'RandPermCam', 'RAND_PERM_LAYOUT',
                        'NUM_OFFICIAL_TRIALS', 'NUM_SYSU_CAMS')


def __getattr__(name: str) -> Any:
    """The old paths of the protocol functions (``FutureWarning``)."""
    if name in _MOVED_TO_FUNCTIONAL:
        warn_deprecated(
            f'mmreid.evaluation.metrics.cross_modality_metric.{name} moved '
            f'to mmreid.evaluation.functional.{name}; the old path will be '
            'removed')
        from .. import functional
        return getattr(functional, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


class VariantKeysMixin:
    """A protocol whose variants are different tasks (SYSU-MM01's all and
    indoor search, LLCM's and RegDB's directions): the metric's keys name
    its variant (``<default_prefix>-<variant>``: ``sysu-indoor/R1``,
    ``llcm-vis2ir/mAP``, ``regdb-t2v/R1``), so two variants are never
    logged under one key.

    The class sets :attr:`variant_arg` (the argument that picks the
    variant) and :attr:`variants` (its values, the default first).
    """
    #: The argument that picks the variant.
    variant_arg: str = 'direction'
    #: Its values, the default first.
    variants: Tuple[str, ...] = ()
    default_prefix: Optional[str]

    @classmethod
    def key_prefix(cls, prefix: Optional[str] = None, **options) -> str:
        """See :meth:`ReIDMetric.key_prefix`: ``'<default_prefix>-
        <variant>'`` unless ``prefix`` is given."""
        variant = options.get(cls.variant_arg) or cls.variants[0]
        return prefix or f'{cls.default_prefix}-{variant}'


class ModalityMixin:
    """A cross-modality protocol ranks the queries of one modality against
    a gallery of the other: every query record must be of
    :attr:`query_modality` and every gallery (pool) record of the other,
    checked on the records themselves when the metric computes, with or
    without ``dataset_meta``. Records without a ``modality`` are refused
    too.

    The class sets :attr:`query_modality` (0 visible, 1 infrared; a
    property where the direction decides) and :attr:`modality_names`.
    """
    #: The modality of the queries; the gallery is of the other.
    query_modality: int
    #: The names of modalities 0 and 1, for messages.
    modality_names: Tuple[str, str] = ('visible', 'infrared')

    def protocol_desc(self) -> str:
        """The metric and its variant, for messages."""
        return type(self).__name__

    def check_roles(self, query: List[dict], gallery: List[dict]) -> None:
        """Refuse query records not of :attr:`query_modality` and gallery
        records not of the other modality (see
        :meth:`~.records.RecordsMixin.check_roles`).

        Args:
            query: Query records, each sample once.
            gallery: Gallery (pool) records, each sample once.

        Raises:
            ValueError: Naming the metric, the role, how many records are
                wrong or lack a modality, an example ``img_path`` and the
                modality expected.
        """
        expected = dict(
            query=self.query_modality, gallery=1 - self.query_modality)
        names = self.modality_names
        for role, records in (('query', query), ('gallery', gallery)):
            modality = expected[role]
            wrong = [r for r in records if r.get('modality') != modality]
            if not wrong:
                continue
            missing = sum(r.get('modality') is None for r in wrong)
            example = wrong[0]
            if example.get('modality') is None:
                hint = ('the dataset sets each record\'s modality '
                        '(SYSUMM01, RegDB and LLCM do; PackReIDInputs '
                        'keeps it in meta_keys)')
            else:
                hint = ('they are of the other modality: records of '
                        'another direction, or roles swapped')
            raise ValueError(
                f'{self.protocol_desc()} ranks {names[expected["query"]]} '
                f'(modality {expected["query"]}) queries against a '
                f'{names[expected["gallery"]]} (modality '
                f'{expected["gallery"]}) gallery, but {len(wrong)} of '
                f'{len(records)} {role} records are not of modality '
                f'{modality} ({missing} without one), e.g. '
                f'{example.get("img_path")!r} (modality='
                f'{example.get("modality")!r}); {hint}')


class DirectionMixin(ModalityMixin, VariantKeysMixin):
    """A protocol of two directions (which modality is queried): its keys
    name the direction (:class:`VariantKeysMixin`), a dataset of another
    direction is refused, whose probes are the other modality, and so are
    records whose modalities are not the direction's
    (:class:`ModalityMixin`).

    The class sets :attr:`variants` (the directions, the default first),
    :attr:`query_modalities` (each direction's query modality) and
    :attr:`direction_source` (the dataset that stores
    ``dataset_meta['direction']``, for messages); ``__init__`` calls
    :meth:`check_direction_arg` and ``check_dataset_meta``
    :meth:`check_direction`.
    """
    #: What sets ``dataset_meta['direction']``, for messages.
    direction_source: str = ''
    #: The modality of the queries of each direction.
    query_modalities: Dict[str, int] = {}
    direction: str
    dataset_name: Callable[[dict], str]  # ReIDMetric's

    @property
    def query_modality(self) -> int:  # type: ignore[override]
        """The modality of this direction's queries."""
        return self.query_modalities[self.direction]

    def protocol_desc(self) -> str:
        """See :meth:`ModalityMixin.protocol_desc`."""
        return f'{type(self).__name__}(direction={self.direction!r})'

    def check_direction_arg(self, direction: str) -> None:
        """Raise if ``direction`` is none of :attr:`variants`."""
        if direction not in self.variants:
            raise ValueError(f'{type(self).__name__} direction must be '
                             f'{" or ".join(map(repr, self.variants))}, got '
                             f'{direction!r}')

    def check_direction(self, dataset_meta: dict) -> None:
        """Refuse a dataset that does not say its direction or says
        another than this metric's.

        Args:
            dataset_meta: The dataset's metainfo.
        """
        direction = dataset_meta.get('direction')
        name = self.dataset_name(dataset_meta)
        metric = f'{type(self).__name__}(direction={self.direction!r})'
        if direction is None:
            raise ValueError(
                f"{metric} needs dataset_meta['direction'] "
                f'({" or ".join(map(repr, self.variants))}, set by '
                f'{self.direction_source}); dataset {name} has none (keys '
                f'{sorted(dataset_meta)})')
        if direction != self.direction:
            raise ValueError(
                f'{metric} cannot evaluate dataset {name} (direction='
                f'{direction!r}): the directions differ, so the probes would '
                'be the other modality under this direction\'s keys. Give '
                'the metric and the dataset the same direction')


@METRICS.register_module()
class SYSUMetric(ModalityMixin, VariantKeysMixin, TrialGalleryMetric):
    """SYSU-MM01 visible-infrared evaluation, ten gallery trials.

    Queries are the infrared images (cams 3, 6); the gallery pool is the
    visible test images (``SYSUMM01(split='test')``). Each trial draws
    ``shot`` images per (identity, camera) from cams 1, 2, 4, 5
    (``mode='all'``) or 1, 2 (``'indoor'``): AGW's seeded draw
    (``random.seed(seed + trial)``; ``seed=0`` reproduces AGW) or the
    official ``rand_perm_cam.mat`` draw. Queries of cam3 (camid 2) ignore
    every cam2 (camid 1) gallery image, of any pid (the ``'sysu'`` rule,
    which works on the parser's 0-based camids). CMC is computed on the
    de-duplicated ranked list, mAP and mINP on the full list; distances are
    cosine (the ranking of AGW's negated dot product of L2-normalised
    features). Keys: see :class:`TrialGalleryMetric`, under
    ``sysu-all/`` or ``sysu-indoor/`` (the search mode,
    :class:`VariantKeysMixin`).

    Args:
        mode: ``'all'`` or ``'indoor'`` search. The pool may hold all
            visible cameras: indoor mode keeps cams 1 and 2 only.
        shot: ``'single'`` (1 image) or ``'multi'`` (10 images; seeded
            multi-shot uses ``random.sample``, mmreid's extension).
        num_trials: Number of trials (10 in the protocol).
        seed: Trial ``t`` uses seed ``seed + t`` (seeded draw only; the
            official draw refuses another seed than 0).
        rand_perm_cam: Path of the official ``rand_perm_cam.mat``; when
            given (and ``gallery_draw`` is not set) the official draws are
            used.
        gallery_draw: ``'agw_seeded'`` or ``'official_rand_perm'``;
            defaults to the official draw when ``rand_perm_cam`` is given.
        **kwargs: See :class:`TrialGalleryMetric` and :class:`ReIDMetric`.

    Examples:
        >>> test_evaluator = dict(type='SYSUMetric', mode='all',
        ...                       shot='single')
    """
    default_prefix: Optional[str] = 'sysu'
    query_modality = INFRARED
    variant_arg = 'mode'
    variants = tuple(SYSU_GALLERY_CAMS)
    dataset_protocol = 'SYSUMetric'
    protocol_datasets = "SYSUMM01 and SynthReIDVI with split='test'"

    def __init__(self,
                 mode: str = 'all',
                 shot: str = 'single',
                 num_trials: int = 10,
                 seed: int = 0,
                 rand_perm_cam: Optional[Union[str, list]] = None,
                 gallery_draw: Optional[str] = None,
                 junk_rule: str = 'sysu',
                 cmc_mode: str = 'dedup',
                 **kwargs) -> None:
        if mode not in SYSU_GALLERY_CAMS:
            raise ValueError(f'mode must be "all" or "indoor", got {mode!r}')
        if shot not in SHOTS:
            raise ValueError(f'shot must be "single" or "multi", got '
                             f'{shot!r}')
        if gallery_draw is None:
            gallery_draw = ('agw_seeded'
                            if rand_perm_cam is None else 'official_rand_perm')
        self.mode = mode
        kwargs['prefix'] = self.key_prefix(kwargs.get('prefix'), mode=mode)
        super().__init__(
            gallery_cams=SYSU_GALLERY_CAMS[mode],
            shots=SHOTS[shot],
            num_trials=num_trials,
            seed=seed,
            gallery_draw=gallery_draw,
            rand_perm_cam=rand_perm_cam,
            junk_rule=junk_rule,
            cmc_mode=cmc_mode,
            **kwargs)

    def protocol_desc(self) -> str:
        """See :meth:`ModalityMixin.protocol_desc`."""
        return f'SYSUMetric(mode={self.mode!r})'

    def protocol_settings(self) -> Dict[str, str]:
        """See :meth:`TrialGalleryMetric.protocol_settings`, with the
        search mode (``sysu_mode``: ``'all'`` or ``'indoor'``)."""
        return dict(super().protocol_settings(), sysu_mode=self.mode)

    def check_dataset_meta(self, dataset_meta: dict) -> None:
        """Refuse a dataset that does not declare
        ``protocol_metric='SYSUMetric'`` (see
        :meth:`TrialGalleryMetric.check_dataset_meta`), and all-search on
        an indoor dataset, whose pool holds cams 1 and 2 only (indoor
        search on an all-search pool keeps cams 1 and 2 and is accepted).

        Args:
            dataset_meta: The dataset's metainfo; ``SYSUMM01`` stores its
                ``mode``.
        """
        super().check_dataset_meta(dataset_meta)
        mode = dataset_meta.get('mode')
        if self.mode == 'all' and mode == 'indoor':
            raise ValueError(
                f"SYSUMetric(mode='all') cannot evaluate dataset "
                f"{self.dataset_name(dataset_meta)} (mode='indoor'): its "
                'gallery pool holds cams 1 and 2 only, so the numbers '
                "would be indoor search. Use SYSUMetric(mode='indoor') or "
                "the dataset with mode='all'")


@METRICS.register_module()
class LLCMMetric(DirectionMixin, TrialGalleryMetric):
    """LLCM evaluation, ten single-shot gallery trials.

    The gallery pool is every test image of the other modality
    (``LLCM(split='test', direction=...)``); each trial draws one image per
    (identity, camera) with ``random.seed(seed + trial)``. Removal: same
    pid and same camid (``'market'``; VIS and NIR camera K share camid
    K - 1). CMC de-duplicated, mAP and mINP on the full list.

    VIS->IR: the reference builds the all-VIS query and the sampled NIR
    gallery, then transposes the distances, so the sampled NIR images are
    the probes and all VIS images the gallery (``vis2ir_mode=
    'reference_transposed'``, the default, comparable to published
    numbers); ``'symmetric'`` keeps all VIS images as queries.

    The keys name the direction (``llcm-ir2vis/R1``, ``llcm-vis2ir/mAP``),
    so the two directions are never logged under one key; see
    :class:`TrialGalleryMetric` for the keys under the prefix.

    Args:
        direction: ``'ir2vis'`` or ``'vis2ir'``; must match the dataset's
            (``dataset_meta['direction']``, set by ``LLCM``): a dataset of
            another direction, or one without a direction, is refused.
        vis2ir_mode: ``'reference_transposed'`` or ``'symmetric'``.
        num_trials: Number of trials (10 in the protocol).
        seed: Trial ``t`` uses seed ``seed + t``.
        **kwargs: See :class:`TrialGalleryMetric` and :class:`ReIDMetric`
            (``prefix`` defaults to ``'llcm-<direction>'``).

    Examples:
        >>> test_evaluator = dict(type='LLCMMetric', direction='vis2ir')
    """
    default_prefix: Optional[str] = 'llcm'
    variants = LLCM_DIRECTIONS
    query_modalities = LLCM_QUERY_MODALITY
    modality_names = ('visible', 'NIR')
    direction_source = "LLCM(split='test')"
    dataset_protocol = 'LLCMMetric'
    protocol_datasets = "LLCM with split='test'"

    def __init__(self,
                 direction: str = LLCM_DIRECTIONS[0],
                 vis2ir_mode: str = 'reference_transposed',
                 num_trials: int = 10,
                 seed: int = 0,
                 junk_rule: str = 'market',
                 cmc_mode: str = 'dedup',
                 **kwargs) -> None:
        self.check_direction_arg(direction)
        if vis2ir_mode not in LLCM_VIS2IR_MODES:
            raise ValueError(f'vis2ir_mode must be one of '
                             f'{LLCM_VIS2IR_MODES}, got {vis2ir_mode!r}')
        self.direction = direction
        self.vis2ir_mode = vis2ir_mode
        kwargs['prefix'] = self.key_prefix(
            kwargs.get('prefix'), direction=direction)
        super().__init__(
            gallery_cams=None,
            shots=1,
            num_trials=num_trials,
            seed=seed,
            transpose=(direction == 'vis2ir'
                       and vis2ir_mode == 'reference_transposed'),
            junk_rule=junk_rule,
            cmc_mode=cmc_mode,
            **kwargs)

    def protocol_settings(self) -> Dict[str, str]:
        """See :meth:`TrialGalleryMetric.protocol_settings`, with the
        ``direction`` and ``vis2ir_mode`` (``'none'`` for IR->VIS, which
        it does not change)."""
        return dict(
            super().protocol_settings(),
            direction=self.direction,
            vis2ir_mode=(self.vis2ir_mode
                         if self.direction == 'vis2ir' else 'none'))

    def check_dataset_meta(self, dataset_meta: dict) -> None:
        """Refuse a dataset that does not declare
        ``protocol_metric='LLCMMetric'`` (see
        :meth:`TrialGalleryMetric.check_dataset_meta`), one of the other
        direction (its probes are the other modality) or one that does not
        say its direction.

        Args:
            dataset_meta: The dataset's metainfo; ``LLCM`` stores its
                ``direction``.
        """
        super().check_dataset_meta(dataset_meta)
        self.check_direction(dataset_meta)


@METRICS.register_module()
class RegDBMetric(DirectionMixin, ReIDMetric):
    """RegDB visible-thermal evaluation of one trial (AGW's protocol).

    The query and gallery are the trial's full test sets of the two
    modalities (``RegDB(split='test', trial=t, direction=...)``, 2,060
    images each): nothing is sampled and nothing is removed from the
    gallery (``junk_rule='none'``: the query and gallery cameras never
    coincide). Standard CMC, mAP and mINP, on cosine distances. One model
    is trained per trial; the protocol's number is the mean over the ten
    trials' models.

    The keys name the direction (``regdb-v2t/R1``, ``regdb-t2v/mAP``, as a
    multi-target loop names the two targets), so the two directions of one
    model are never logged under one key. Re-ranking, query expansion and
    verification rates are not part of the protocol and are refused, as
    :class:`SYSUMetric` and :class:`LLCMMetric` refuse them.

    Args:
        direction: ``'v2t'`` (visible queries, thermal gallery; the
            default) or ``'t2v'``; must match the dataset's
            (``dataset_meta['direction']``, set by ``RegDB``).
        junk_rule: See :class:`ReIDMetric`; ``'none'`` in the protocol.
        prefix: Key prefix; defaults to ``'regdb-<direction>'``.
        **kwargs: Other :class:`ReIDMetric` arguments (``distance``
            defaults to ``'cosine'``, as AGW evaluates).

    Examples:
        >>> test_evaluator = dict(type='RegDBMetric', direction='t2v')
    """
    default_prefix: Optional[str] = 'regdb'
    variants = REGDB_DIRECTIONS
    query_modalities = REGDB_QUERY_MODALITY
    modality_names = ('visible', 'thermal')
    direction_source = "RegDB(split='test')"
    default_distance = 'cosine'
    unsupported_options = FEATURE_OPTIONS

    def __init__(self,
                 direction: str = REGDB_DIRECTIONS[0],
                 junk_rule: str = 'none',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        self.check_direction_arg(direction)
        self.direction = direction
        super().__init__(
            junk_rule=junk_rule,
            prefix=self.key_prefix(prefix, direction=direction),
            **kwargs)

    def protocol_settings(self) -> Dict[str, str]:
        """See :meth:`ReIDMetric.protocol_settings`: the ``direction``."""
        return dict(direction=self.direction)

    def check_dataset_meta(self, dataset_meta: dict) -> None:
        """Refuse a dataset that is not a RegDB test set
        (``protocol_metric='RegDBMetric'``) or is of the other direction,
        whose queries are the other modality.

        Args:
            dataset_meta: The dataset's metainfo; ``RegDB`` stores its
                ``direction``.
        """
        super().check_dataset_meta(dataset_meta)
        name = self.dataset_name(dataset_meta)
        declared = dataset_meta.get('protocol_metric')
        if declared != 'RegDBMetric':
            raise ValueError(
                f'RegDBMetric cannot evaluate dataset {name} '
                f'(protocol_metric={declared!r}): it evaluates the test set '
                "of RegDB(split='test'), which declares protocol_metric="
                "'RegDBMetric'. Evaluate this dataset with its own metric "
                "(dict(type='ReIDMetric') for one query/gallery set)")
        self.check_direction(dataset_meta)
