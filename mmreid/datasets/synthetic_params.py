"""The parameters of a SynthReID folder: sizes, options and their checks.

:func:`_resolve_params` turns the generator's arguments into the ``params``
a folder's manifest records; nothing is clamped or coerced, so a folder is
written, and found again, under the parameters asked for.
"""
import numbers
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .synthetic_plan import MAX_PID, _count
from .synthetic_render import check_ir_options

#: Format version of a generated folder. Bump it whenever the pixels or the
#: file plan of an existing parameter set change, so that folders written
#: before are refused instead of silently reused (a stale folder once gave
#: numbers a fresh clone could not reproduce). New opt-in parameters whose
#: defaults keep the old output need no bump. History: 1 = first release
#: (the manifest held a hash of the source files); 2 = the same images, the
#: manifest holds per-split counts and canary renders instead. Manifests of
#: version 2 now also hold ``plan_sha256`` (a digest of the file plan) and
#: one canary per domain and split; those written before are still read,
#: checked by their file names instead (see :func:`_check_plan`).
SYNTHREID_VERSION = 2
#: Number of domains of ``modality='visible'`` when none is given.
DEFAULT_DOMAINS = 4
#: Version of the infrared sensor model behind ``ir_gap > 0``, recorded in
#: the manifest of such folders only (folders with ``ir_gap=0`` are
#: unchanged). 2 = the sensor's tone curve and coarse-pitch noise; the
#: first ``ir_gap`` (thermal halo, blur, fixed-pattern noise, warm
#: backgrounds) recorded none and did not enlarge the gap a per-modality
#: stem leaves, so its folders are refused (``ir_gap_version`` differs).
IR_GAP_VERSION = 2
#: Test identities added after the ``num_ids_test`` ones (an override, like
#: them; 0 by default). They are drawn from the identities left over, with a
#: stream of their own, so a folder with them holds every file of the folder
#: without them (training split, test identities, distractors) plus theirs:
#: a model trained on one is tested on a larger test set of the other.
#: Raising ``num_ids_test`` instead re-draws the training identities too.
ADDED_TEST_IDS = 'num_ids_test_added'

#: Named sizes. ``num_ids_*`` and ``num_distractors``/``num_junk`` count per
#: domain; ``imgs_per_cam`` is the number of images of an identity in each
#: camera it appears in. ``num_ids_val`` is used by ``modality='vi'`` only
#: (SYSU-MM01 lists train and val ids, both used for training).
SYNTHREID_PRESETS: Dict[str, dict] = dict(
    tiny=dict(
        num_ids_train=4,
        num_ids_test=3,
        num_ids_val=1,
        num_cams=3,
        imgs_per_cam=2,
        num_distractors=2,
        num_junk=2),
    small=dict(
        num_ids_train=16,
        num_ids_test=12,
        num_ids_val=4,
        num_cams=4,
        imgs_per_cam=2,
        num_distractors=6,
        num_junk=4),
    demo=dict(
        num_ids_train=150,
        num_ids_test=100,
        num_ids_val=30,
        num_cams=4,
        imgs_per_cam=3,
        num_distractors=40,
        num_junk=20),
)
#: Generator options and the values of the first release's images. A
#: manifest records an option only when it differs from this value, so
#: folders written before an option existed keep loading (and keep meaning
#: what they meant: a manifest without ``ir_mode`` holds 'hard' images).
SYNTHREID_OPTIONS: Dict[str, object] = dict(
    ir_mode='hard',
    ir_luminance=0.0,
    ir_gap=0.0,
    ir_contrast=1.0,
    style_control=False)

#: What ``modality='vi'`` renders when the options are not given (SynthReID
#: v2.2, issue 16): infrared follows the dyes, mixed 0.3 : 0.7 with the
#: luminance (v2 and v2.1 took 0.5). ``ir_luminance`` defaults to 0 with
#: ``ir_mode='hard'``.
VI_DEFAULTS: Dict[str, object] = dict(ir_mode='dye', ir_luminance=0.7)


def preset_overrides(overrides: Optional[dict], kwargs: dict) -> dict:
    """The preset fields given to a dataset, in ``overrides`` or as keywords.

    Args:
        overrides (dict, optional): The ``overrides`` argument.
        kwargs (dict): The other keyword arguments; the preset fields
            (:data:`SYNTHREID_PRESETS`, :data:`ADDED_TEST_IDS`) are moved
            out of it.

    Returns:
        dict: Every preset field given.

    Raises:
        TypeError: A field is given both ways.
    """
    overrides = dict(overrides or {})
    for key in list(kwargs):
        if key in PRESET_FIELDS:
            if key in overrides:
                raise TypeError(
                    f'SynthReID: {key} is given twice, as a keyword '
                    f'argument ({kwargs[key]!r}) and in overrides '
                    f'({overrides[key]!r}); give it once.')
            overrides[key] = kwargs.pop(key)
    return overrides


#: Range of each count, ``(minimum, maximum)`` (``None``: no maximum).
#: Two cameras at least: every identity is seen by two; at most nine:
#: Market-1501 names have a one-digit camera.
_COUNT_RANGES: Dict[str, Tuple[int, Optional[int]]] = dict(
    num_ids_train=(1, None),
    num_ids_test=(1, None),
    num_ids_val=(1, None),
    num_cams=(2, 9),
    imgs_per_cam=(1, None),
    num_distractors=(0, None),
    num_junk=(0, None),
    num_ids_test_added=(0, None))

#: The generator's count fields (the presets' and ``num_ids_test_added``),
#: and those that take one count per domain (``'visible'``).
PRESET_FIELDS = tuple(sorted(_COUNT_RANGES))
PER_DOMAIN_FIELDS = ('num_ids_test', ADDED_TEST_IDS)


def _as_int(name: str,
            value,
            minimum: Optional[int] = None,
            maximum: Optional[int] = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``.

    Only an ``int`` or a numpy integer is taken: a bool, a float (even
    ``2.0``) or a string is refused, not truncated by ``int()`` (a seed of
    1.5 reused the folder of seed 1).

    Raises:
        ValueError: ``value`` is not an integer or is out of range; names
            ``name``, the value and the range.
    """
    if minimum is None:
        rule = ''
    elif maximum is None:
        rule = f'>= {minimum}'
    else:
        rule = f'in [{minimum}, {maximum}]'
    if isinstance(value,
                  (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f'SynthReID: {name} must be an integer'
                         f'{" " + rule if rule else ""}, got {value!r} '
                         f'({type(value).__name__})')
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None
                                                     and value > maximum):
        raise ValueError(f'SynthReID: {name} must be {rule}, got {value}')
    return value


def _resolve_options(modality: str, domains: int, options: dict) -> dict:
    """Validate the options; returns those that differ from the first
    release's values (``None``: the default of the modality)."""
    unknown = set(options) - set(SYNTHREID_OPTIONS)
    if unknown:
        raise TypeError(f'unknown SynthReID option(s) {sorted(unknown)}; '
                        f'known: {sorted(SYNTHREID_OPTIONS)}')
    options = {k: v for k, v in options.items() if v is not None}
    if modality == 'vi':
        options.setdefault('ir_mode', VI_DEFAULTS['ir_mode'])
        if options['ir_mode'] == 'dye':
            options.setdefault('ir_luminance', VI_DEFAULTS['ir_luminance'])
    opts = dict(SYNTHREID_OPTIONS, **options)
    # The renderer's own check, so that a direct caller of render_image
    # meets the same rules.
    opts['ir_luminance'], opts['ir_gap'], opts['ir_contrast'] = \
        check_ir_options(opts['ir_mode'], opts['ir_luminance'],
                         opts['ir_gap'], opts['ir_contrast'])
    if not isinstance(opts['style_control'], (bool, np.bool_)):
        raise ValueError(f'SynthReID: style_control must be True or False, '
                         f'got {opts["style_control"]!r} '
                         f'({type(opts["style_control"]).__name__})')
    opts['style_control'] = bool(opts['style_control'])
    changed = {k: v for k, v in opts.items() if v != SYNTHREID_OPTIONS[k]}
    if changed.get('ir_gap'):
        # The sensor model behind ir_gap > 0 (see SYNTHREID_VERSION).
        changed['ir_gap_version'] = IR_GAP_VERSION
    infrared = {'ir_mode', 'ir_luminance', 'ir_gap', 'ir_contrast'
                } & set(changed)
    if modality != 'vi' and infrared:
        raise ValueError(f'{sorted(infrared)} need modality="vi"')
    if changed.get('style_control') and (modality != 'visible' or domains < 2):
        raise ValueError('style_control needs modality="visible" and at '
                         f'least two domains, got modality={modality!r}, '
                         f'domains={domains}')
    return changed


def _check_pid_range(modality: str, domains: int, params: dict,
                     added: Union[int, List[int]]) -> None:
    """Refuse identities that do not fit in 4-digit pids.

    The domains of ``'visible'`` own disjoint pid ranges of
    ``MAX_PID // domains`` pids each, which hold a domain's training, test
    and added test identities; the one domain of ``'vi'`` holds all.

    Raises:
        ValueError: Names the fields, their sum, ``domains`` and the limit.
    """
    if modality == 'vi':
        fields = ('num_ids_train', 'num_ids_val', 'num_ids_test')
        counts = [params[k] for k in fields] + [added]
        if sum(counts) > MAX_PID:
            raise ValueError(
                f'SynthReID: {" + ".join(fields)} + {ADDED_TEST_IDS} = '
                f'{" + ".join(map(str, counts))} = {sum(counts)} identities '
                f'do not fit in the {MAX_PID} 4-digit pids')
        return
    block = MAX_PID // domains
    for d in range(domains):
        counts = [
            params['num_ids_train'],
            _count(params['num_ids_test'], d),
            _count(added, d)
        ]
        if sum(counts) > block:
            raise ValueError(
                f'SynthReID: num_ids_train + num_ids_test + {ADDED_TEST_IDS} '
                f'= {" + ".join(map(str, counts))} = {sum(counts)} identities '
                f'of domain d{d} do not fit in its pids: 4-digit pids give '
                f'each domain {MAX_PID} // domains = {block} (domains='
                f'{domains}); lower the counts or domains')


def _resolve_params(size: str,
                    modality: str,
                    domains: Optional[int],
                    seed: int,
                    img_size: Sequence[int],
                    overrides: dict,
                    options: Optional[dict] = None) -> dict:
    """Validate the generator's arguments; returns the manifest's params.

    Nothing is clamped or coerced: a count, the seed, ``domains`` and the
    image size must be integers (``int`` or a numpy integer; not a bool,
    a float or a string) in their range (:data:`_COUNT_RANGES`), so that
    every folder is written, and found again, under the parameters asked
    for.

    Raises:
        ValueError: A value is out of range or of another type; names the
            parameter, the value and what is expected.
        TypeError: An unknown parameter, or a list for a field that takes
            one count.
    """
    if size not in SYNTHREID_PRESETS:
        raise ValueError(f'unknown SynthReID size {size!r}; choose from '
                         f'{sorted(SYNTHREID_PRESETS)}')
    if modality not in ('visible', 'vi'):
        raise ValueError(f'modality must be "visible" or "vi", got '
                         f'{modality!r}')
    seed = _as_int('seed', seed)
    if domains is not None:
        domains = _as_int('domains', domains, 1)
    if isinstance(img_size, (str, bytes)) or not hasattr(
            img_size, '__len__') or len(img_size) != 2:
        raise ValueError(f'SynthReID: img_size must be (height, width), two '
                         f'integers >= 16, got {img_size!r}')
    h, w = (_as_int(f'img_size[{i}]', s, 16) for i, s in enumerate(img_size))
    params = dict(SYNTHREID_PRESETS[size])
    if modality == 'vi':
        if domains not in (None, 1):
            raise ValueError('modality="vi" renders a single domain; got '
                             f'domains={domains}')
        domains = 1
        # SYSU-MM01 has six fixed cameras and no distractor files.
        for key in ('num_cams', 'num_distractors', 'num_junk'):
            params.pop(key)
    else:
        params.pop('num_ids_val')
    # Not a preset field: recorded only when it adds identities, so the
    # manifests of folders written before it existed still match.
    params[ADDED_TEST_IDS] = 0
    unknown = set(overrides) - set(params)
    if unknown:
        raise TypeError(f'unknown SynthReID parameter(s) {sorted(unknown)} '
                        f'for modality={modality!r}; known: '
                        f'{sorted(params)}')
    for key, value in overrides.items():
        if isinstance(value, (list, tuple)):
            if key not in PER_DOMAIN_FIELDS or modality != 'visible':
                raise TypeError(f'only {" and ".join(PER_DOMAIN_FIELDS)} '
                                f'(visible) may be lists (one count per '
                                f'domain), got {key}={value}')
            value = list(value)
        params[key] = value
    for key, value in params.items():
        bounds = _COUNT_RANGES[key]
        if isinstance(value, list):
            params[key] = [
                _as_int(f'{key}[{i}]', v, *bounds) for i, v in enumerate(value)
            ]
        else:
            params[key] = _as_int(key, value, *bounds)
    added = params.pop(ADDED_TEST_IDS)
    domains = DEFAULT_DOMAINS if domains is None else domains
    for key, value in (('num_ids_test', params['num_ids_test']),
                       (ADDED_TEST_IDS, added)):
        if isinstance(value, list) and len(value) != domains:
            raise ValueError(f'{key} lists {len(value)} counts for '
                             f'{domains} domains')
    _check_pid_range(modality, domains, params, added)
    if any(added if isinstance(added, list) else [added]):
        params[ADDED_TEST_IDS] = added
    return dict(
        version=SYNTHREID_VERSION,
        modality=modality,
        domains=domains,
        seed=seed,
        img_size=[h, w],
        **params,
        **_resolve_options(modality, domains, options or {}))
