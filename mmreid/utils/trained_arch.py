"""The facts of a network trained by mmreid, kept in its checkpoint.

mmreid's (mmengine's) checkpoints keep the run's config as text
(``meta['cfg']``). Testing the checkpoint with another config can feed it
other test images (:func:`trained_config_facts`: the test resize and the
normalisation) or build another network that loads the same tensors
(:func:`network_differences`: the ``model`` settings that change what the
trained network computes at test time, less those of
:data:`TEST_TIME_FREE_ARGS`).
:func:`mmreid.utils.arch_check.check_source_arch` refuses either, with the
settings it was trained with.
"""
from typing import Dict, List, Optional, Tuple

#: ``ReIDResize``'s defaults, for a config that does not set them.
RESIZE_DEFAULTS = dict(
    size=[256, 128], interpolation='bilinear', backend='cv2')

#: The top-level keys of a config that hold its test pipelines (read by
#: :func:`mmreid.utils.pipeline_source.inference_pipelines`).
PIPELINE_KEYS = ('test_dataloader', 'test_cfg', 'test_pipeline',
                 'val_dataloader', 'val_cfg')


def trained_config_facts(text) -> dict:
    """The test-time input facts of the config an mmreid run saved.

    mmreid's (mmengine's) checkpoints keep the run's config as text
    (``meta['cfg']``). It is parsed, never run
    (:func:`~mmreid.engine.runner.resume_checks.config_literal`), and
    gives what a test config can change without any error: the test
    pipeline's ``ReIDResize`` (size, interpolation, library; read as
    ``tools/test.py`` reads the pipelines, and only when they all agree)
    and the ``model.data_preprocessor`` mean and std (those it sets, else
    its class's defaults).

    Args:
        text: A checkpoint's ``meta['cfg']``.

    Returns:
        dict: Facts as :func:`mmreid.utils.arch_check.check_source_arch`
        compares them
        (``input_size``, ``interpolation``, ``resize_backend``, ``mean``,
        ``std``): those the text states; empty for no config text.
    """
    from mmengine.config import Config

    from mmreid.engine.runner.resume_checks import (config_ast, config_literal,
                                                    config_text_value)
    from .pipeline_source import find_transform, inference_pipelines
    tree = config_ast(text)

    def read(name):
        try:
            return config_literal(config_text_value(tree, name))
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None

    facts: dict = {}
    model = read('model')
    model = model if isinstance(model, dict) else {}
    preprocessor = model.get('data_preprocessor')
    if model and preprocessor is None:  # ReIDModel's default one
        preprocessor = _default(model_class(model), 'data_preprocessor')
    preprocessor = preprocessor if isinstance(preprocessor, dict) else {}
    kind = model_class(preprocessor)
    for name in ('mean', 'std'):
        # Left out: the class's default (network_differences leaves the
        # statistics to this check).
        value = preprocessor.get(name, _default(kind, name))
        if isinstance(value, (list, tuple)):
            facts[name] = [float(v) for v in value]
    keys = {name: read(name) for name in PIPELINE_KEYS}
    unread = [
        name for name, value in keys.items()
        if value is None and config_text_value(tree, name) is not None
    ]
    if unread:  # a pipeline it cannot read: no resize fact
        return facts
    saved = Config({k: v for k, v in keys.items() if v is not None})
    resizes = []
    for source in inference_pipelines(saved):
        found = find_transform(source.pipeline, 'ReIDResize', source.path)
        resizes.append([
            list(v) if isinstance(v, (list, tuple)) else v
            for v in (dict(RESIZE_DEFAULTS, **found[1])[k]
                      for k in RESIZE_DEFAULTS)
        ] if found else None)
    if resizes and resizes[0] is not None and all(r == resizes[0]
                                                  for r in resizes):
        size, interpolation, backend = resizes[0]
        facts.update(
            input_size=size,
            interpolation=interpolation,
            resize_backend=backend)
    return facts


#: Why a constructor argument leaves the network a trained checkpoint
#: computes at test time as it is (the reasons of :data:`TEST_TIME_FREE_ARGS`).
_INIT = "an initialisation: the checkpoint's tensors replace it"
_LOSS = 'read by the training losses only'
_TRAIN = 'acts in training mode only'
_EVAL = ('an evaluation choice, changed at test time on one checkpoint '
         '(docs/get_started.md, configs/gmn/README.md, configs/mbn/README.md)')

#: The constructor arguments, by class name (a class has those of its
#: bases; ``''``: every class), that do not change what a trained model
#: computes at test time, each with the code's reason;
#: :func:`network_differences` leaves them out. Read from the code:
#:
#: * ``ReIDModel``: ``aux_losses``/``aux_stage_weights``/``aux_loss`` are
#:   used in ``loss()`` only; ``distance`` (the ranking distance, which the
#:   metric must share) and ``test_cfg`` (``flip``; GMN's ``distance``,
#:   ``fuse_beta``, ``mnet_topk``, ``report_modes``, ``memory_budget_mb``,
#:   ``method``, ``check_queries``, ``max_logit_error``) are evaluation
#:   choices;
#: * ``BNNeckHead``: ``num_classes`` sizes the classifier, which
#:   ``predict()`` does not use (a classifier of another size is skipped at
#:   load); ``loss_cls``, ``loss_tri`` (``loss_triplet``) and
#:   ``triplet_feat`` are read by ``loss()`` only; ``test_feature`` is an
#:   evaluation choice (docs/get_started.md's ``--cfg-options
#:   model.head.test_feature=before_bn``);
#: * ``GMNHead``: ``loss_gmn``, ``pair_mining`` and ``pic`` are read by
#:   ``pair_losses()`` only, ``gmn_detach_backbone`` stops training
#:   gradients, ``dp`` perturbs pairs only while ``self.training``
#:   (``dp_active``);
#: * mmpretrain's ``ResNet``: ``frozen_stages``, ``norm_eval`` (``train()``),
#:   ``with_cp`` (checkpointing while training), ``drop_path_rate``
#:   (``DropPath`` is the identity in eval mode); ``zero_init_residual``
#:   is an initialisation;
#: * ``GeMPool``: ``p`` is the initial exponent (the trained one is the
#:   tensor ``neck.p``), ``learnable`` its ``requires_grad``;
#: * ``SNR``: ``log_gate`` adds a log value to the training outputs;
#: * norms (``_BatchNorm``, ``MBN``, ``IBN``): ``momentum`` (running
#:   statistics are updated in training only), ``requires_grad`` (mmcv's
#:   ``build_norm_layer``); ``MBN``'s ``eval_stats`` and its threshold
#:   ``min_per_modality`` are evaluation choices (configs/mbn/README.md);
#: * ``ReIDDataPreprocessor``: ``mean`` and ``std`` are compared with the
#:   test images (:func:`trained_config_facts`), ``non_blocking`` is how
#:   the batch is copied;
#: * every class: ``init_cfg``, and ``_scope_`` (types are compared by the
#:   class they resolve to).
TEST_TIME_FREE_ARGS: Dict[str, Dict[str, str]] = {
    '':
    dict(init_cfg=_INIT, _scope_='types are compared by class'),
    'ReIDModel':
    dict(
        aux_losses=_LOSS,
        aux_stage_weights=_LOSS,
        aux_loss=_LOSS,
        distance=_EVAL,
        test_cfg=_EVAL),
    'BNNeckHead':
    dict(
        num_classes='sizes the classifier, which test features do not use',
        loss_cls=_LOSS,
        loss_tri=_LOSS,
        loss_triplet=_LOSS,
        triplet_feat=_LOSS,
        test_feature=_EVAL),
    'GMNHead':
    dict(
        loss_gmn=_LOSS,
        pair_mining=_LOSS,
        pic=_LOSS,
        gmn_detach_backbone=_TRAIN,
        dp=_TRAIN),
    'ResNet':
    dict(
        frozen_stages=_TRAIN,
        norm_eval=_TRAIN,
        with_cp=_TRAIN,
        drop_path_rate=_TRAIN,
        zero_init_residual=_INIT),
    'GeMPool':
    dict(p=_INIT, learnable=_TRAIN),
    'SNR':
    dict(log_gate=_TRAIN),
    '_BatchNorm':
    dict(momentum=_TRAIN, requires_grad=_TRAIN),
    'IBN':
    dict(momentum=_TRAIN, requires_grad=_TRAIN),
    'MBN':
    dict(
        momentum=_TRAIN,
        requires_grad=_TRAIN,
        eval_stats=_EVAL,
        min_per_modality=_EVAL),
    'ReIDDataPreprocessor':
    dict(
        mean='compared with the test images',
        std='compared with the test images',
        non_blocking='how the batch is copied to the device'),
}

#: Defaults that a constructor computes from a None (its signature says
#: None): ``ReIDModel`` builds ``ReIDDataPreprocessor`` for none.
_IMPLIED_DEFAULTS: Dict[Tuple[str, str], object] = {
    ('ReIDModel', 'data_preprocessor'): dict(type='ReIDDataPreprocessor'),
}

#: A key neither side of a comparison has.
_ABSENT = object()


def model_class(node) -> Optional[type]:
    """The class a model config node builds, or None.

    ``type`` is looked up in mmreid's ``MODELS`` (and its parents), so a
    scope prefix (``'mmreid.MBN'``) and a name registered as an alias (a
    deprecated name builds the class it wraps) give the class itself.

    Args:
        node: A config dict (or anything else: None).

    Returns:
        type | None: The class; None without a ``type`` or for one that is
        not registered (e.g. a custom module not imported now).
    """
    value = node.get('type') if isinstance(node, dict) else None
    if isinstance(value, str):
        from mmreid.registry import MODELS
        try:
            value = MODELS.get(value)
        except (KeyError, ImportError):
            value = None
    value = getattr(value, '__wrapped__', value)  # a registered alias
    return value if isinstance(value, type) else None


def _free_reason(classes, arg) -> str:
    """Why ``arg`` of any of ``classes`` does not change the test-time
    network (:data:`TEST_TIME_FREE_ARGS`), or ``''``."""
    for cls in classes:
        for klass in getattr(cls, '__mro__', ()):
            reason = TEST_TIME_FREE_ARGS.get(klass.__name__, {}).get(arg)
            if reason:
                return reason
    return TEST_TIME_FREE_ARGS[''].get(arg, '')


def _default(cls, arg):
    """The value ``cls`` takes for ``arg`` when a config leaves it out (its
    or a base's signature, :data:`_IMPLIED_DEFAULTS`), or ``_ABSENT``."""
    import inspect
    for klass in getattr(cls, '__mro__', ()):
        implied = _IMPLIED_DEFAULTS.get((klass.__name__, arg), _ABSENT)
        if implied is not _ABSENT:
            return implied
        try:
            parameter = inspect.signature(klass).parameters.get(arg)
        except (TypeError, ValueError):
            continue
        if parameter is not None and \
                parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return _ABSENT


def _at(tree, path):
    """The value at ``path`` (keys and list indices), or ``_ABSENT``."""
    for key in path:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        elif isinstance(tree, (list, tuple)) and isinstance(key, int) \
                and key < len(tree):
            tree = tree[key]
        else:
            return _ABSENT
    return tree


def network_differences(saved: dict, current: dict,
                        path: tuple = ('model', )) -> list:
    """Where two model configs build networks that test differently.

    The leaves where they differ (:func:`~mmreid.utils.model_state.
    model_config_differences`) are kept unless:

    * an argument on the way to the leaf does not change the test-time
      network (:data:`TEST_TIME_FREE_ARGS`, for the class of its node on
      either side);
    * it is a ``type`` and both resolve to one class
      (:func:`model_class`: a scope prefix, a registered alias);
    * one side leaves an argument out and the other gives the value the
      class then takes (its default), compared likewise.

    Args:
        saved (dict): The ``model`` a checkpoint was trained with.
        current (dict): The current ``cfg.model``.
        path (tuple): Where ``saved`` and ``current`` are, for the keys.

    Returns:
        list[tuple]: ``(key path, saved value, current value)`` per kept
        difference, ``_ABSENT`` for a side without the key.
    """
    from .model_state import model_config_differences
    found = []
    for leaf, _ in model_config_differences(saved, current):
        rel = leaf[1:]  # without 'model'
        want, have = _at(saved, rel), _at(current, rel)
        nodes = [(_at(saved, rel[:i]), _at(current, rel[:i]), arg)
                 for i, arg in enumerate(rel)]
        if any(
                isinstance(arg, str) and _free_reason((model_class(a),
                                                       model_class(b)), arg)
                for a, b, arg in nodes):
            continue
        if rel and rel[-1] == 'type' and _ABSENT not in (want, have):
            classes = [model_class(dict(type=v)) for v in (want, have)]
            if classes[0] is not None and classes[0] is classes[1]:
                continue
        if rel and (want is _ABSENT) != (have is _ABSENT):
            parent = nodes[-1][:2]
            cls = model_class(parent[1]) or model_class(parent[0])
            default = _default(cls, rel[-1]) if isinstance(rel[-1],
                                                           str) else _ABSENT
            if default is not _ABSENT:
                pair = (default, have) if want is _ABSENT else (want, default)
                found += network_differences(*pair, path + rel)
                continue
        found.append((path + rel, want, have))
    return found


def _cfg_options(key: str, value) -> Optional[List[Tuple[str, object]]]:
    """``(key, value)`` options that set ``key`` to ``value``: one per leaf
    of a dict; None for what ``--cfg-options`` cannot write (a dict in a
    list, or a key to remove)."""
    if value is _ABSENT:
        return None
    if isinstance(value, dict):
        options: List[Tuple[str, object]] = []
        for name, item in value.items():
            inner = _cfg_options(f'{key}.{name}', item)
            if inner is None:
                return None
            options += inner
        return options
    if isinstance(value, (list, tuple)) and any(
            isinstance(v, (dict, list, tuple)) for v in value):
        return None
    return [(key, value)]


def _trained_model_problems(meta: dict, cfg) -> List[tuple]:
    """``(key, saved, current, options)`` per test-time model difference
    of a trained checkpoint's config (``meta['cfg']``) from ``cfg``;
    ``options`` is None where ``--cfg-options`` cannot set it."""
    from .model_state import saved_model_config
    saved = saved_model_config(meta)
    current = cfg.get('model') if hasattr(cfg, 'get') else None
    if saved is None or not isinstance(current, dict):
        return []
    if hasattr(current, 'to_dict'):
        current = current.to_dict()
    problems = []
    for path, want, have in network_differences(saved, current):
        key = '.'.join(str(k) for k in path)
        problems.append((key, want, have, _cfg_options(key, want)))
    return problems


def _shown(value) -> str:
    """A config value in a message; ``'nothing'`` for a key not given."""
    return 'nothing' if value is _ABSENT else repr(value)


__all__ = [
    'RESIZE_DEFAULTS', 'PIPELINE_KEYS', 'TEST_TIME_FREE_ARGS',
    'trained_config_facts', 'model_class', 'network_differences'
]
