"""The check of a config against the network a checkpoint records.

``init_model`` (and ``tools/extract_features.py`` with its loader),
``tools/test.py`` (the runner's checkpoint load), ``pytorch2onnx.py``,
``wrt_regime.py`` and ``load_from`` call :func:`check_source_arch`
before loading a checkpoint, each with its own wording of the fix. A
converted checkpoint carries its source network's facts
(:mod:`mmreid.utils.source_arch`), an mmreid one its run's config
(:mod:`mmreid.utils.trained_arch`); a config that builds another network,
or feeds it other test images, is refused with the overrides that give
the recorded settings.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from .key_mapping import MMREID_KEY_PREFIXES
from .pipeline_source import find_transform
from .source_arch import DISTANCES, FACT_OPTIONS, HARMLESS_UNMAPPED
from .trained_arch import (RESIZE_DEFAULTS, _shown, _trained_model_problems,
                           trained_config_facts)

#: How a caller's own option is written for a value (``own_options``).
OptionWriter = Callable[[Any], str]

#: The fact of each ``ReIDResize`` argument.
RESIZE_FACTS = dict(
    size='input_size', interpolation='interpolation', backend='resize_backend')


def _override(key: str, value) -> str:
    if isinstance(value, (list, tuple)):
        value = '[' + ','.join(str(v) for v in value) + ']'
    return f'{key}={value}'


def _copied_test_fixes(cfg, fixes: List[Tuple[str, object]]) -> list:
    """The ``test_*`` twins of the ``val_*`` fixes whose transform the test
    loader holds too (``test_dataloader = val_dataloader`` in the dataset
    bases): an option on the validation loader alone is refused there
    (:func:`mmreid.utils.config.overrides.check_variable_overrides`), and
    the test loader feeds the same network."""
    from .config.keys import _option_value
    plain = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    given = {key for key, _ in fixes}
    twins = []
    for key, value in fixes:
        if not key.startswith('val_'):
            continue
        twin = 'test_' + key[len('val_'):]
        parent, twin_parent = key.rsplit('.', 1)[0], twin.rsplit('.', 1)[0]
        transform = _option_value(plain, parent)
        if twin not in given and isinstance(transform, dict) and \
                _option_value(plain, twin_parent) == transform:
            twins.append((twin, value))
    return twins


def _test_pipelines(cfg,
                    api: bool,
                    split: str = 'test') -> List[Tuple[str, list]]:
    """``(config path, transforms)`` of the pipelines that feed the test.

    The runner (``api=False``) evaluates ``split``: ``runner.test()`` with
    ``test_dataloader`` and every target of a multi-target test loop
    (``test_cfg.targets``), ``runner.val()`` with ``val_dataloader`` and
    ``val_cfg.targets``. The API (``init_model``, ``extract_features``)
    and the tools read them in ``tools/test.py``'s order (see
    :func:`mmreid.utils.pipeline_source.inference_pipelines`): the test
    pipelines, else ``test_pipeline``, else the validation ones.
    """
    from .pipeline_source import inference_pipelines, split_pipelines
    found = inference_pipelines(cfg) if api else split_pipelines(cfg, split)
    return [(s.path, list(s.pipeline)) for s in found]


def _config_rankings(
        model: torch.nn.Module, cfg, api: bool,
        split: str) -> List[Tuple[str, str, Optional[str], str, bool]]:
    """How the config ranks the test features, for the ``distance`` fact.

    Every test metric (each target's of a multi-target loop) of the split
    the runner evaluates (``'test'`` for the API, as
    :func:`mmreid.apis.rankings.evaluated_ranking` reads it), and the
    model's ``distance`` where it is not the default (``init_model``'s
    ``rank_gallery`` ranks with it, and the loops refuse a metric that
    ranks otherwise) or no metric mmreid knows is configured. A model
    with its own distance (GMN's M-Net) has none of these.

    Returns:
        list[tuple]: ``(config key, option, ranking, shown, normalize)``:
        the key of the metric or ``'model.distance'``; the key that sets
        its distance (the metric's ``distance``, or its deprecated alias
        ``metric`` where the config gives that); ``'cosine'`` or
        ``'euclidean'`` (:data:`~mmreid.utils.source_arch.DISTANCES`),
        None for another distance; how the config sets it, for the
        message; whether the metric L2-normalises the features first.
    """
    from mmreid.apis.rankings import configured_rankings
    from mmreid.engine.runner.reid_loops import _ranks_as
    from mmreid.models.reiders.reid_model import get_model_scorers
    from .config.keys import _option_value
    if get_model_scorers(model):
        return []
    plain = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    found = []
    for r in configured_rankings(cfg, 'test' if api else split):
        metric = _option_value(plain, r.key)
        field = 'metric' if isinstance(metric, dict) and metric.get(
            'distance') is None and metric.get('metric') is not None \
            else 'distance'
        found.append(
            (r.key, f'{r.key}.{field}', _ranks_as(r.distance, r.normalize),
             f'{field}={r.distance!r}, normalize={r.normalize}', r.normalize))
    own = getattr(model, 'distance_type', None)
    if isinstance(own, str) and (own != 'euclidean' or not found):
        found.append(('model.distance', 'model.distance',
                      _ranks_as(own, False), f'distance={own!r}', False))
    return found


def mmreid_conversion(meta: Optional[dict], filename: str) -> str:
    """Why a converted checkpoint is no source's conversion, or ``''``.

    Before the converters refused an mmreid checkpoint (see
    :func:`mmreid.utils.key_mapping.mmreid_evidence`), one run on it wrote
    a file: fast-reid's mapped the ResNet tensors, left mmreid's own layers
    (:data:`~mmreid.utils.key_mapping.MMREID_KEY_PREFIXES`) unmapped,
    recorded fast-reid's defaults and put an identity BNNeck in place of
    the trained one. Its ``meta['unmapped']`` (kept by
    ``publish_model.py``) tells: no source layout has those keys.

    Args:
        meta (dict, optional): The checkpoint's ``meta``.
        filename (str): The checkpoint, for the message.

    Returns:
        str: The message naming the file, the lost layers and the fix.
    """
    if not isinstance(meta, dict) or 'source' not in meta:
        return ''
    unmapped = meta.get('unmapped') or []
    lost = [
        f'{prefix}* ({count} tensors)' for prefix in MMREID_KEY_PREFIXES
        for count in [sum(str(k).startswith(prefix) for k in unmapped)]
        if count
    ]
    if not lost:
        return ''
    original = meta.get('converted_from')
    original = f' {original!r}' if original else ''
    source = meta['source']
    return (f'checkpoint {filename!r} is not a {source} model: an mmreid '
            'converter of before the converters refused mmreid checkpoints '
            f'wrote it from the mmreid checkpoint{original}, dropping '
            f'mmreid\'s own layers (meta[\'unmapped\']: {", ".join(lost)}) '
            f'and putting {source}\'s defaults in their place. Load the '
            f'original mmreid checkpoint{original} as it is (init_model, '
            'tools/test.py): it needs no conversion.')


def check_source_arch(
        meta: Optional[dict],
        model: torch.nn.Module,
        cfg,
        filename: str,
        test: bool = True,
        api: bool = False,
        strict: bool = True,
        split: str = 'test',
        overrides: Optional[str] = None,
        opt_out: Optional[str] = None,
        own_options: Optional[Dict[str, OptionWriter]] = None) -> List[str]:
    """Refuse a config that computes another network than the source.

    A checkpoint converted from fast-reid or torchreid carries the source
    network's facts (``meta['source_arch']``, see
    :func:`mmreid.utils.source_arch.source_arch`).
    The stem pooling, last stride and pooling are compared with the built
    ``model``; at test time also the test feature, the normalisation, the
    flip averaging (``test_cfg.flip``), the ranking distance (the test
    metrics' ``distance``/``normalize`` and a non-default
    ``model.distance``, :func:`_config_rankings`) and the test pipeline's
    ``ReIDResize`` (size, interpolation, library).

    A file an old converter wrote from an mmreid checkpoint is refused
    as such (:func:`mmreid_conversion`).

    A checkpoint of an mmreid run carries its config (``meta['cfg']``):
    at test time its normalisation and test resize
    (:func:`~mmreid.utils.trained_arch.trained_config_facts`) are
    compared likewise, since a model
    fed images of another size or scale still gives features, and a
    number far from its own (a cross-dataset test with another dataset's
    config); so is its ``model``
    (:func:`~mmreid.utils.trained_arch.network_differences`), since a
    setting without tensors (a parameter-free neck, the last stride)
    builds another network that loads the same tensors. Loading it for
    training (``load_from``) is not checked.

    Args:
        meta (dict, optional): The checkpoint's ``meta``; nothing is
            checked without ``source_arch`` or (at test time) ``cfg``.
        model (nn.Module): The built (bare) model.
        cfg (Config): Its config.
        filename (str): The checkpoint, for the message.
        test (bool): Check the test-time facts too. Defaults to True.
        api (bool): Read the test pipelines in the order of the API and
            the tools (``init_model``, ``extract_features.py``) instead of
            the runner's ``split``, and word the fix for ``init_model``
            unless ``overrides`` says otherwise. Defaults to False.
        strict (bool): Raise; False logs the mismatches as a warning.
        split (str): With ``test``, whose pipelines the runner feeds:
            ``'test'`` (``runner.test()``, the default) or ``'val'``
            (``runner.val()``).
        overrides (str, optional): How the caller's user overrides config
            keys, for the fix: ``'--cfg-options'`` (a command-line tool)
            or ``'cfg_options'`` (``init_model(..., cfg_options={...})``).
            Defaults to ``'cfg_options'`` with ``api``, else
            ``'--cfg-options'``.
        opt_out (str, optional): How the caller's user loads a checkpoint
            of another config on purpose, quoted after "load it with";
            ``''``: the caller has no such switch, and the message says
            so. Defaults to ``init_model(..., strict=False)`` with ``api``,
            else ``--strict false (load_strict = False)`` (the runner's).
        own_options (dict, optional): Config keys the caller set from an
            option of its own, each with how that option is written for a
            value (e.g. ``pytorch2onnx.py``'s ``--shape H W`` for the
            ``ReIDResize`` size): a difference in such a key names the
            option as given, and its fix is the option with the recorded
            value (a ``--cfg-options`` override would be replaced by it).

    Returns:
        list[str]: The mismatches (empty when the config matches).

    Raises:
        ValueError: A mismatch and ``strict``.
    """
    if not isinstance(meta, dict):
        return []
    own_options = own_options or {}
    converted = mmreid_conversion(meta, filename)
    if converted:
        return _refuse_or_warn(converted, strict)
    facts = meta.get('source_arch')
    trained = not facts
    if trained and not test:
        return []
    model_changes = []
    if trained:
        facts = trained_config_facts(meta.get('cfg'))
        model_changes = _trained_model_problems(meta, cfg)
    if not facts and not model_changes:
        return []
    # Who the facts are of, in each line of the message.
    owner = 'the checkpoint\'s config has' if trained else 'the source has'
    problems: List[str] = []
    fixes: List[Tuple[str, object]] = []
    own_fixes: List[str] = []  # the caller's own options (own_options)
    dropped = [
        k for k in meta.get('unmapped', [])
        if not k.endswith(HARMLESS_UNMAPPED)
    ]
    if dropped:
        problems.append(f'the source has {len(dropped)} tensors the '
                        f'converter did not map ({", ".join(dropped[:10])}'
                        f'{", ..." if len(dropped) > 10 else ""}): layers '
                        'mmreid does not build, so no config computes the '
                        'source network')

    assumed = set(facts.get('assumed') or ())
    guessed: List[str] = []

    def differ(what, want, have, key=None, value=None, fact=None):
        note = ''
        if fact in assumed:
            note = ' (assumed by the converter)'
            guessed.append(fact)
        given = ''
        if key in own_options:
            given = f' (given by {own_options[key](have)})'
            own_fixes.append(own_options[key](want))
        problems.append(
            f'{what}: {owner} {want}{note}, the config {have}{given}')
        if key is not None and key not in own_options:
            fixes.append((key, want if value is None else value))

    unset = []  # model keys --cfg-options cannot set to the trained value
    for key, want, have, options in model_changes:
        problems.append(
            f'{key}: {owner} {_shown(want)}, the config {_shown(have)}')
        if options is None:
            unset.append(key)
        else:
            fixes += options
    model_problems = len(model_changes)

    backbone = getattr(model, 'backbone', None)
    pool = getattr(backbone, 'maxpool', None)
    if 'stem_pool' in facts and isinstance(pool, torch.nn.MaxPool2d):
        for name, want in facts['stem_pool'].items():
            have = getattr(pool, name)
            if isinstance(have, tuple) and len(set(have)) == 1:
                have = have[0]
            if have != want:
                differ(
                    f'stem max pooling {name}',
                    want,
                    have,
                    f'model.backbone.stem_pool.{name}',
                    fact='stem_pool')
    if facts.get('last_stride') is not None and backbone is not None:
        have = getattr(backbone, 'last_stride', None)
        if have != facts['last_stride']:
            differ(
                'last stride',
                facts['last_stride'],
                have,
                'model.backbone.last_stride',
                fact='last_stride')
    neck = type(getattr(model, 'neck', None)).__name__
    pooling = dict(GlobalAvgPool='avg', GeMPool='gem').get(neck)
    if facts.get('pooling') and pooling != facts['pooling']:
        differ(
            'pooling',
            facts['pooling'],
            f'{neck} ({pooling})',
            'model.neck.type',
            dict(avg='GlobalAvgPool', gem='GeMPool')[facts['pooling']],
            fact='pooling')
    if test:
        head = getattr(model, 'head', None)
        have = getattr(head, 'test_feature', None)
        if facts.get('test_feature') and have != facts['test_feature']:
            differ(
                'test feature',
                facts['test_feature'],
                have,
                'model.head.test_feature',
                fact='test_feature')
        preprocessor = getattr(model, 'data_preprocessor', None)
        for name in ('mean', 'std'):
            want = facts.get(name)
            have = getattr(preprocessor, name, None)
            if want is None or have is None:
                continue
            have = [round(float(v), 4) for v in have.flatten()]
            if len(have) != len(want) or any(
                    abs(a - b) > 1e-3 for a, b in zip(have, want)):
                differ(
                    f'normalisation {name} (0-255)',
                    want,
                    have,
                    f'model.data_preprocessor.{name}',
                    fact=name)
        if facts.get('flip') is not None:
            test_cfg = getattr(model, 'test_cfg', None) or {}
            have = bool(test_cfg.get('flip', False))
            if have != facts['flip']:
                differ(
                    'test-time flip (mirrored-image averaging)',
                    facts['flip'],
                    have,
                    'model.test_cfg.flip',
                    fact='flip')
        want = facts.get('distance')
        if want is not None:
            for key, option, have, shown, normalize in _config_rankings(
                    model, cfg, api, split):
                if have == want:
                    continue
                differ(
                    f'ranking distance ({key})',
                    DISTANCES.get(want, repr(want)),
                    f'{DISTANCES.get(have, "another distance")} ({shown})',
                    option,
                    want,
                    fact='distance')
                if want == 'euclidean' and normalize:
                    fixes.append((f'{key}.normalize', False))
        if facts.get('colour_order', 'rgb') != 'rgb':
            problems.append(f'colour order: the source takes '
                            f'{facts["colour_order"]} images, mmreid feeds '
                            'RGB (no config switch)')
        pipelines = _test_pipelines(cfg, api, split) \
            if 'input_size' in facts else []
        wanted = (f'{facts.get("input_size")} with '
                  f'{facts.get("resize_backend")} '
                  f'{facts.get("interpolation")}')
        if not pipelines and 'input_size' in facts:
            problems.append(
                f'the config has no {split} pipeline (' +
                ('test_pipeline, ' if api else '') +
                f'{split}_dataloader.dataset.pipeline or {split}_cfg.targets)'
                ' to '
                f'compare with the resize to {wanted} ({owner} it)')
        for path, pipeline in pipelines:
            found = find_transform(pipeline, 'ReIDResize', path)
            if found is None:
                problems.append(f'{path} has no ReIDResize; {owner} a '
                                f'resize to {wanted}')
                continue
            index, resize = found
            for name, fact in RESIZE_FACTS.items():
                have = resize.get(name, RESIZE_DEFAULTS[name])
                have = list(have) if isinstance(have, (list, tuple)) \
                    else have
                if have != facts[fact]:
                    differ(
                        f'{path} ReIDResize {name}',
                        facts[fact],
                        have,
                        f'{path}.{index}.{name}',
                        fact=fact)
    if not problems:
        return []
    fixes += _copied_test_fixes(cfg, fixes)
    source = facts.get('source', meta.get('source', 'another toolbox'))
    if overrides is None:
        overrides = 'cfg_options' if api else '--cfg-options'
    fix = ''
    if fixes and overrides == 'cfg_options':
        fix = 'init_model(..., cfg_options={' + ', '.join(
            f'{k!r}: {v!r}' for k, v in fixes) + '})'
    elif fixes:
        fix = f'{overrides} ' + ' '.join(_override(k, v) for k, v in fixes)
    fix = ' '.join(list(dict.fromkeys(own_fixes)) + ([fix] if fix else []))
    if trained:
        what = []
        if model_problems:
            what.append('builds another network at test time')
        if len(problems) > model_problems:
            what.append('feeds it other test images')
        message = (f'checkpoint {filename!r} was trained with a config '
                   f'(its meta[\'cfg\']) that {" and ".join(what)} than '
                   'this config: ' + '; '.join(problems) + '.')
        if fix:
            message += f' Use the settings it was trained with: {fix}'
        if unset:
            message += ((' ' if message.endswith('.') else '. ') +
                        f'No option gives the trained value of '
                        f'{", ".join(unset)} (a key its config does not '
                        'have, or dicts in a list): test it with the '
                        'config it was trained with.')
        if opt_out is None:
            opt_out = 'init_model(..., strict=False)' if api else \
                '--strict false (load_strict = False)'
        message += ' ' if message.endswith('.') else '. '
        if opt_out:
            message += (f'To test it with this config\'s settings on '
                        f'purpose, load it with {opt_out}' +
                        (' (tensors of other shapes are refused all the '
                         'same).' if model_problems else '.'))
        else:
            message += ('This tool has no switch that loads it with this '
                        'config\'s settings.')
    else:
        message = (f'checkpoint {filename!r} was converted from {source}, '
                   'and this config computes another network: ' +
                   '; '.join(problems) + '.')
        if fix:
            message += f' Use the source\'s settings: {fix}'
    if guessed:
        options = ', '.join(FACT_OPTIONS[f] for f in dict.fromkeys(guessed))
        message += ((' ' if message.endswith('.') else '. ') +
                    'The facts marked assumed are not in the source '
                    f'checkpoint: the converter took {source}\'s defaults; '
                    'if the source was trained otherwise, convert it again '
                    f'giving them ({options}).')
    _refuse_or_warn(message, strict)
    return problems


def _refuse_or_warn(message: str, strict: bool) -> List[str]:
    """Raise ``message`` (``strict``) or log it as a warning; ``[message]``
    otherwise."""
    if strict:
        raise ValueError(message)
    from mmengine.logging import print_log
    print_log(
        message + ' (accepted: strict loading is off)',
        logger='current',
        level=30)
    return [message]


__all__ = ['mmreid_conversion', 'check_source_arch']
