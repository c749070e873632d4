import functools
import os.path as osp
import re
from contextlib import contextmanager
from typing import (Callable, Dict, Iterator, List, Mapping, Optional,
                    Sequence, Set, Tuple)
from urllib.error import URLError
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

from mmreid.registry import WEIGHT_INITIALIZERS
from mmreid.utils.checkpoint import _names, hub_cache_dir

#: The scope whose ``WEIGHT_INITIALIZERS`` hold mmreid's ``'Pretrained'``.
MMREID_SCOPE = 'mmreid'

#: ``id(module)`` -> the config key of its ``init_cfg``, while a model
#: initialises (see :func:`init_cfg_keys`).
_INIT_CFG_KEYS: Dict[int, str] = {}


@contextmanager
def init_cfg_keys(model: nn.Module, root: str = 'model') -> Iterator[None]:
    """Name each submodule's ``init_cfg`` by its config key in the block.

    A pretrained load that fails then names the key to change, e.g.
    ``model.backbone.init_cfg`` (see :func:`load_pretrained`).

    Args:
        model (nn.Module): The module built from the config key ``root``.
        root (str): Its config key. Defaults to ``'model'``.
    """
    keys = {
        id(module): '.'.join(filter(None, (root, name, 'init_cfg')))
        for name, module in model.named_modules()
    }
    _INIT_CFG_KEYS.update(keys)
    try:
        yield
    finally:
        for key in keys:
            _INIT_CFG_KEYS.pop(key, None)


def _init_cfg_key(module: nn.Module) -> str:
    """The config key of ``module``'s ``init_cfg``, or ``'init_cfg'``."""
    return _INIT_CFG_KEYS.get(id(module), 'init_cfg')


@contextmanager
def mmreid_default_scope() -> Iterator[None]:
    """Make ``mmreid`` the default scope inside the block, if it is not.

    mmengine's ``initialize`` builds every ``init_cfg`` through its *root*
    ``WEIGHT_INITIALIZERS``, which resolves ``'Pretrained'`` in the current
    default scope: without a scope (a plain Python script) or under
    another project's, that is mmengine's lenient ``PretrainedInit``
    (partial load, one warning), not :class:`ReportingPretrainedInit`.
    """
    current = DefaultScope.get_current_instance()
    if current is not None and current.scope_name == MMREID_SCOPE:
        yield
        return
    with DefaultScope.overwrite_default_scope(MMREID_SCOPE):
        yield


def init_in_mmreid_scope(init_weights: Callable) -> Callable:
    """Decorate an mmreid module's ``init_weights`` so that a
    ``'Pretrained'`` ``init_cfg`` (its own or a submodule's) is mmreid's
    strict one whatever the current default scope (see
    :func:`mmreid_default_scope`). Every ``BaseModule`` registered in
    mmreid's ``MODELS`` has it.

    Only a module that loads weights switches the scope: a random init
    keeps the caller's, so a submodule of another project finds its own
    initializers; with a load, such an initializer is named with its
    scope (``type='myproj.MyInit'``), as the error then says."""

    @functools.wraps(init_weights)
    def wrapper(self, *args, **kwargs):
        self.init_cfg = _unscope_pretrained(getattr(self, 'init_cfg', None))
        if not any(
                has_pretrained_init(getattr(module, 'init_cfg', None))
                for module in self.modules()):
            # Nothing to load: the caller's scope stays, so a submodule of
            # another project keeps its own initializers.
            return init_weights(self, *args, **kwargs)
        try:
            with mmreid_default_scope():
                return init_weights(self, *args, **kwargs)
        except KeyError as error:
            if 'weight initializer' not in str(error):
                raise
            raise KeyError(
                f'{error.args[0]}. {type(self).__name__}.init_weights runs '
                'in the mmreid scope because it loads pretrained weights '
                "(mmreid's strict 'Pretrained'): name an initializer of "
                "another project with its scope, type='<scope>.<name>'"
            ) from error

    wrapper.in_mmreid_scope = True
    return wrapper


def _unscope_pretrained(init_cfg):
    """``init_cfg`` with ``'mmreid.Pretrained'`` written ``'Pretrained'``.

    The same initializer in the mmreid scope, but only the bare name is
    recognised by mmengine (which loads it after the other entries and the
    submodules' ``init_weights``, so they cannot overwrite the loaded
    weights) and by mmpretrain's ResNet (which then skips
    ``zero_init_residual``).
    """
    if isinstance(init_cfg, dict):
        if init_cfg.get('type') == f'{MMREID_SCOPE}.Pretrained':
            return dict(init_cfg, type='Pretrained')
        return init_cfg
    if isinstance(init_cfg, (list, tuple)):
        return [_unscope_pretrained(cfg) for cfg in init_cfg]
    return init_cfg


def has_pretrained_init(init_cfg) -> bool:
    """Whether an ``init_cfg`` (a dict or a list of them) loads weights:
    an entry of type ``'Pretrained'``, ``'<scope>.Pretrained'`` or a
    pretrained initializer class (mmengine's or mmreid's)."""
    from mmengine.model.weight_init import PretrainedInit
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        kind = cfg.get('type') if isinstance(cfg, dict) else None
        if isinstance(kind, str) and kind.split('.')[-1] == 'Pretrained':
            return True
        if isinstance(kind, type) and issubclass(
                kind, (PretrainedInit, ReportingPretrainedInit)):
            return True
    return False


def init_cfg_sets(init_cfg, module: nn.Module, name: str) -> bool:
    """Whether an ``init_cfg`` (a dict or a list of them) sets ``module``,
    the child ``name`` of the module it belongs to: a pretrained entry
    (:func:`has_pretrained_init`), an entry whose ``layer`` names the
    module's class or one of its bases (mmengine's matching rule), or an
    ``override`` naming it. A module's own initialisation steps after its
    ``init_cfg`` (BNNeck gamma = 1, ...) must then leave it alone.
    """
    classes = {cls.__name__ for cls in type(module).__mro__}
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        if not isinstance(cfg, dict):
            continue
        if has_pretrained_init(cfg):
            return True
        layers = cfg.get('layer') or []
        layers = [layers] if isinstance(layers, str) else list(layers)
        if classes & set(layers):
            return True
        overrides = cfg.get('override') or []
        if isinstance(overrides, dict):
            overrides = [overrides]
        if any(
                isinstance(o, dict) and o.get('name') == name
                for o in overrides):
            return True
    return False


def extract_state_dict(checkpoint,
                       prefix: Optional[str] = None,
                       source: str = '') -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint, optionally under ``prefix``.

    Accepts a bare state dict or one wrapped in ``state_dict``/``model``;
    strips a DataParallel ``module.`` prefix.

    Raises:
        TypeError: Not a dict.
        ValueError: Both ``state_dict`` and ``model`` hold weights, a key
            is there with and without ``module.`` (different values), or
            weights are NumPy arrays: which tensor loads would be a guess,
            and a dropped array a silent partial load.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'checkpoint {source!r} holds a '
                        f'{type(checkpoint).__name__}, expected a dict')
    wrappers = [
        key for key in ('state_dict', 'model')
        if isinstance(checkpoint.get(key), dict) and any(
            isinstance(v, (torch.Tensor, np.ndarray))
            for v in checkpoint[key].values())
    ]
    if len(wrappers) > 1:
        raise ValueError(f'checkpoint {source!r} holds weights under both '
                         "'state_dict' and 'model': keep the one to load")
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    arrays = sorted(k for k, v in checkpoint.items()
                    if isinstance(v, np.ndarray))
    if arrays:
        raise ValueError(
            f'checkpoint {source!r} holds NumPy arrays where tensors are '
            f'expected ({len(arrays)}: {arrays[:3]}); they would be left '
            'out of the load. Save them as torch tensors '
            '(torch.from_numpy).')
    state_dict: Dict[str, torch.Tensor] = {}
    for k, v in checkpoint.items():
        if not isinstance(v, torch.Tensor):
            continue
        name = k[len('module.'):] if k.startswith('module.') else k
        if name in state_dict and not torch.equal(state_dict[name], v):
            raise ValueError(
                f'checkpoint {source!r} holds {name!r} both with and '
                "without the DataParallel prefix 'module.', with different "
                'values: which one to load is a guess')
        state_dict[name] = v
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        picked = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not picked:
            raise KeyError(f'no key of checkpoint {source!r} starts with '
                           f'prefix {prefix!r}; first keys: '
                           f'{sorted(state_dict)[:5]}')
        state_dict = picked
    return state_dict


def not_in_pretrained_prefixes(module: nn.Module) -> List[str]:
    """Key prefixes of the submodules that pretrained sources lack.

    A module class declares itself an addition to the networks that
    pretrained weights come from (e.g. ImageNet ResNets) with a true class
    attribute ``not_in_pretrained``, as :class:`~mmreid.models.SNR` and
    :class:`~mmreid.models.layers.AGWNonLocal` do. ``module``
    itself is not looked at: weights loaded into it are meant for it.

    Returns:
        list[str]: ``'<name>.'`` of every such submodule, outermost only.
    """
    prefixes: List[str] = []
    for name, child in module.named_modules():
        if not name or not getattr(child, 'not_in_pretrained', False):
            continue
        if not any(name.startswith(p) for p in prefixes):
            prefixes.append(name + '.')
    return prefixes


def _modules_of(keys: Sequence[str], prefixes: Sequence[str]) -> List[str]:
    """The prefixes (without the final dot) that ``keys`` fall under."""
    return [p[:-1] for p in prefixes if any(k.startswith(p) for k in keys)]


#: The attribute of a module loaded by :func:`load_pretrained` holding
#: ``(checkpoint, meta)`` of each checkpoint with a ``meta`` dict: the
#: training sets its weights trained on (``meta['dataset_meta']`` and
#: ``meta['pretrained_dataset_meta']``) are then those of the run that
#: trains from them (``training_sets.trained_dataset_metas``).
SOURCE_META_ATTR = 'pretrained_source_metas'


def record_source_meta(module: nn.Module, raw, checkpoint: str) -> None:
    """Keep on ``module`` the ``meta`` of a checkpoint it is loaded from.

    A fine-tune whose ``init_cfg`` loads a trained ReID model (RegDB trial
    2's, to train trial 1) has trained on that model's training sets: the
    check that a model is not tested on identities it trained on must see
    them, as it sees a ``load_from`` checkpoint's.
    """
    meta = raw.get('meta') if isinstance(raw, dict) else None
    # A ReID training's meta (mmengine writes the training set's metainfo,
    # mmreid its dataset_name); not an ImageNet network's class names.
    if isinstance(meta, dict) and (
            isinstance(meta.get('dataset_meta'), dict)
            and 'dataset_name' in meta['dataset_meta']
            or meta.get('pretrained_dataset_meta')):
        found = getattr(module, SOURCE_META_ATTR, None) or []
        found.append((checkpoint, meta))
        setattr(module, SOURCE_META_ATTR, found)


def load_pretrained(module: nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    map_location: str = 'cpu',
                    allow_missing: Sequence[str] = ()) -> dict:
    """Load pretrained weights into ``module`` and check the key match.

    Every tensor of ``module`` must come from the checkpoint (BN
    ``num_batches_tracked`` counters aside), except those of:

    * submodules that declare themselves additions to the pretrained
      networks (``not_in_pretrained``, see
      :func:`not_in_pretrained_prefixes`): SNR plugins, AGW non-local
      blocks; they keep their own initialisation, reported in one line;
    * the key prefixes in ``allow_missing``, for a source that lacks
      other parts of the module (e.g. ``['head.', 'neck.']`` when
      ``init_cfg`` of a whole ``ReIDModel`` loads an ImageNet network).

    Anything else missing (ResNet-50 weights in a ResNet-101, a plain
    ResNet in an IBN-Net) is an error naming the tensors: training would
    otherwise start from a partly random network after one warning line.
    A checkpoint that matches *no* tensor of the module is an error too
    (the usual cause is a wrong ``prefix``). Checkpoint tensors that the
    module does not have are logged when they lie outside its submodules
    (an ImageNet classifier ``fc.*``) and an error under one of them
    (``layer3.6.*`` of a ResNet-101 in a ResNet-50: the same names for
    another architecture), except under an ``allow_missing`` prefix, where
    the source's part may differ either way.

    Args:
        module (nn.Module): The module to load into.
        checkpoint (str): A path, an ``http(s)://`` URL or one of
            mmengine's named checkpoints (``torchvision://resnet50``).
        prefix (str, optional): Only keys under this prefix are loaded, with
            the prefix removed (e.g. ``'backbone.'``).
        map_location (str): Defaults to ``'cpu'``.
        allow_missing (Sequence[str]): Key prefixes of ``module`` (after
            ``prefix`` is removed from the checkpoint's keys) that the
            checkpoint may lack, or hold other tensors under (of other
            names, or of other shapes, which are not loaded), e.g.
            ``['layer4.']`` or, to fine-tune a whole model on other
            identities, ``['head.classifier.']``. Each must name at least
            one tensor of ``module``. Defaults to ``()``.

    Returns:
        dict: ``loaded`` (the tensors of ``module`` the checkpoint filled,
        also through the load hooks that map a source key to others, e.g.
        a plain BN to every :class:`~mmreid.models.layers.MBN` modality),
        ``missing`` (those it did not fill, including those allowed, BN
        ``num_batches_tracked`` counters aside) and ``unexpected`` key
        lists.

    Raises:
        RuntimeError: The checkpoint matches no tensor of ``module``,
            lacks tensors that are neither declared nor allowed, or holds
            tensors under a submodule that the submodule does not have.
        ValueError: An ``allow_missing`` entry names no tensor.
    """
    if isinstance(allow_missing, str):
        allow_missing = [allow_missing]
    own = module.state_dict()
    unused = [
        p for p in allow_missing if not any(k.startswith(p) for k in own)
    ]
    if unused:
        raise ValueError(
            f'init_cfg Pretrained allow_missing={list(allow_missing)} of '
            f'{type(module).__name__}: {unused} name no tensor of the '
            f'module (key prefixes such as {sorted(own)[:2]}; a typo?)')
    key = _init_cfg_key(module)
    try:
        raw = _load_checkpoint(checkpoint, map_location=map_location)
    except URLError as error:
        raise _not_downloaded(key, checkpoint, error) from error
    state_dict = extract_state_dict(raw, prefix, checkpoint)
    record_source_meta(module, raw, checkpoint)
    # Under an allow_missing prefix the source's part may differ: a tensor
    # of another shape (a classifier of other identities) is not loaded.
    reshaped = [
        k for k, v in state_dict.items()
        if k in own and k.startswith(tuple(allow_missing))
        and v.shape != own[k].shape
    ]
    for k in reshaped:
        state_dict.pop(k)
    _check_shapes(module, state_dict, key, checkpoint)
    if not any(k in own for k in state_dict):
        raise RuntimeError(
            f'checkpoint {checkpoint!r} (prefix={prefix!r}) matches no key '
            f'of {type(module).__name__}. Checkpoint keys start with '
            f'{sorted(state_dict)[:3]}, the module expects '
            f'{sorted(own)[:3]}. Set init_cfg.prefix accordingly.')
    # A module added to the pretrained network (SNR's) keeps its
    # initialisation only when the checkpoint has none of its tensors: one
    # it holds in part would be half trained, half random.
    declared = [
        p for p in not_in_pretrained_prefixes(module)
        if not any(k.startswith(p) for k in state_dict)
    ]
    with _recording_filled(module) as filled:
        incompatible = module.load_state_dict(state_dict, strict=False)
    loaded = sorted(filled)
    missing = [
        k for k in incompatible.missing_keys
        if not k.endswith('num_batches_tracked')
    ]
    unexpected = list(incompatible.unexpected_keys)
    refused = [
        k for k in missing
        if not k.startswith(tuple(declared) + tuple(allow_missing))
    ]
    if refused:
        example = '.'.join(refused[0].split('.')[:2]) + '.'
        raise RuntimeError(
            f'checkpoint {checkpoint!r} (prefix={prefix!r}) lacks '
            f'{len(refused)} tensors of {type(module).__name__}: '
            f'{_names(refused)}; they would keep their random initial '
            f'values. Is it the checkpoint of this architecture (depth, '
            f'norm layers)? If the pretrained network has no such modules, '
            f'list their key prefixes in the init_cfg, e.g. '
            f"init_cfg=dict(type='Pretrained', ..., "
            f"allow_missing=[{example!r}]).")
    # A tensor under a child the module has, which that child lacks: the
    # same names for another architecture (ResNet-101 blocks layer3.6-22
    # in a ResNet-50, IBN or SE tensors in plain blocks).
    children = tuple(f'{name}.' for name, _ in module.named_children())
    foreign = [
        k for k in unexpected
        if k.startswith(children) and not k.endswith('num_batches_tracked')
        and not k.startswith(tuple(allow_missing))
    ]
    if foreign:
        raise RuntimeError(
            f'checkpoint {checkpoint!r} (prefix={prefix!r}) has '
            f'{len(foreign)} tensors under submodules of '
            f'{type(module).__name__} that it does not have: '
            f'{_names(foreign)}; they would be ignored, and the module '
            f'would compute another network than the pretrained one. Is it '
            f'the checkpoint of this architecture (depth, block type, norm '
            f'layers)?')
    kept = [k for k in missing if k.startswith(tuple(declared))]
    allowed = [k for k in missing if k not in kept]
    # BN counters the checkpoint lacks (torch fills them from the module).
    counters = len(own) - len(loaded) - len(missing)
    print_log(
        f'{type(module).__name__}: loaded {len(loaded)} of {len(own)} '
        f'tensors from {checkpoint}' +
        (f'; {len(kept)} tensors of modules added to the pretrained '
         f'network keep their initialisation: '
         f'{", ".join(_modules_of(kept, declared))}' if kept else '') +
        (f'; {len(allowed)} tensors keep their initialisation '
         f'(allow_missing={list(allow_missing)}): {_names(allowed)}'
         if allowed else '') +
        (f' ({len(reshaped)} of them of another shape in the checkpoint: '
         f'{_names(reshaped)})' if reshaped else '') +
        (f'; {counters} BN counters (num_batches_tracked) keep their '
         f'initialisation' if counters else '') +
        (f'; unexpected keys ({len(unexpected)}): {", ".join(unexpected)}'
         if unexpected else ''),
        logger='current',
        level=30 if unexpected else 20)
    return dict(loaded=loaded, missing=missing, unexpected=unexpected)


@contextmanager
def _recording_filled(module: nn.Module) -> Iterator[Set[str]]:
    """Record which tensors of ``module`` a ``load_state_dict`` in the
    block fills from the state dict it is given.

    Counted after the load hooks, which map a source key to others (a
    plain BN to every MBN modality, a single stem to every AGW stem), so
    the keys that match by name undercount. A value that is the module's
    own tensor is not the checkpoint's: torch's BN puts its own
    ``num_batches_tracked`` into a state dict that lacks it, before the
    hooks run.

    Yields:
        set[str]: Filled as the load runs, keys of ``module.state_dict()``.
    """
    filled: Set[str] = set()

    def record(sub: nn.Module, state_dict: dict, prefix: str, *args) -> None:
        tensors = [(n, p) for n, p in sub._parameters.items() if p is not None]
        tensors += [
            (n, b) for n, b in sub._buffers.items()
            if b is not None and n not in sub._non_persistent_buffers_set
        ]
        filled.update(prefix + n for n, own in tensors
                      if state_dict.get(prefix + n, own) is not own)

    # Registered after the modules' own hooks, so it runs after them.
    handles = [
        sub._register_load_state_dict_pre_hook(functools.partial(record, sub))
        for sub in module.modules()
    ]
    try:
        yield filled
    finally:
        for handle in handles:
            handle.remove()


def _not_downloaded(key: str, url: str, error: URLError) -> OSError:
    """The error for a pretrained checkpoint URL that cannot be read."""
    cached = osp.join(hub_cache_dir(), osp.basename(urlparse(url).path))
    return OSError(
        f'{key}.checkpoint={url!r} could not be downloaded '
        f'({error.reason}). Download it where the URL can be reached and '
        f'put it at {cached} (or give its local path as '
        f'{key}.checkpoint=PATH), or set {key}=None to start from random '
        f'weights.')


def _resnet_depth(state_dict: Mapping[str, torch.Tensor],
                  arch_settings: Mapping[int, tuple]) -> Optional[int]:
    """The ResNet depth whose blocks ``state_dict`` holds, if any.

    Args:
        state_dict (Mapping[str, Tensor]): Keys ``layer<i>.<j>.*``.
        arch_settings (Mapping[int, tuple]): depth -> (block class, blocks
            per stage), as ``ResNet.arch_settings``.

    Returns:
        int | None: The depth whose block type (``conv3`` only in
        bottleneck blocks) and block counts match, else None.
    """
    counts: Dict[int, int] = {}
    bottleneck = False
    for name in state_dict:
        match = re.match(r'layer(\d+)\.(\d+)\.(\w+)', name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), block + 1)
            bottleneck |= match.group(3) == 'conv3'
    stages = tuple(counts[i] for i in sorted(counts))
    for depth, (block, blocks) in arch_settings.items():
        if (tuple(blocks) == stages
                and ('Bottleneck' in block.__name__) == bottleneck):
            return depth
    return None


def check_dtypes(own: Dict[str, torch.Tensor],
                 state_dict: Dict[str, torch.Tensor], where: str) -> None:
    """Refuse checkpoint tensors that loading would change, not only
    round: an integer, bool or complex tensor for a floating-point one of
    the model (``copy_`` takes the integers as weights and drops an
    imaginary part with a warning torch prints once per process). Another
    floating-point precision (fp16, bf16, fp64) is converted.

    Raises:
        RuntimeError: Naming ``where``, the first such tensor and both
            dtypes.
    """
    wrong = [(k, v.dtype, own[k].dtype) for k, v in state_dict.items()
             if k in own and own[k].is_floating_point()
             and not v.is_floating_point()]
    if wrong:
        name, theirs, mine = wrong[0]
        raise RuntimeError(
            f'{where}: {len(wrong)} tensor(s) are not floating point where '
            f'the model\'s are, the first {name}: {theirs} in the '
            f'checkpoint, {mine} in the model; loading would change them')


def _check_shapes(module: nn.Module, state_dict: Dict[str, torch.Tensor],
                  key: str, checkpoint: str) -> None:
    """Refuse checkpoint tensors of other shapes than ``module``'s.

    Raises:
        RuntimeError: Naming ``key``, the first mismatching tensor and, for
            a ResNet, the checkpoint's depth against the module's.
    """
    own = module.state_dict()
    check_dtypes(own, state_dict, f'{key}.checkpoint={checkpoint!r}')
    mismatched: List[Tuple[str, tuple, tuple]] = [
        (name, tuple(tensor.shape), tuple(own[name].shape))
        for name, tensor in state_dict.items()
        if name in own and tensor.shape != own[name].shape
    ]
    if not mismatched:
        return
    name, theirs, mine = mismatched[0]
    arch = ''
    depth = getattr(module, 'depth', None)
    settings = getattr(module, 'arch_settings', None)
    if isinstance(depth, int) and isinstance(settings, dict):
        found = _resnet_depth(state_dict, settings)
        if found is not None and found != depth:
            arch = (f' It holds ResNet-{found} weights; the '
                    f'{type(module).__name__} has depth={depth}.')
    raise RuntimeError(
        f'{key}.checkpoint={checkpoint!r} does not fit '
        f'{type(module).__name__}: {len(mismatched)} tensors have other '
        f'shapes, the first {name}: {theirs} in the checkpoint, {mine} in '
        f'the model.{arch} Give {key}.checkpoint the weights of this '
        f'architecture, or set {key}=None to start from random weights; '
        f'a part that may differ (e.g. a classifier of other identities '
        f'when fine-tuning) keeps its initialisation when its key prefix '
        f"is in allow_missing ({key}=dict(type='Pretrained', ..., "
        f"allow_missing=[{'.'.join(name.split('.')[:-1]) + '.'!r}])).")


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class ReportingPretrainedInit:
    """``init_cfg=dict(type='Pretrained', checkpoint=...)`` for mmreid.

    Same arguments as mmengine's ``Pretrained``, which it replaces in the
    mmreid scope, plus ``allow_missing``. It checks the key match (see
    :func:`load_pretrained`): a checkpoint that lacks tensors of the module
    is an error naming them, except for submodules that declare themselves
    additions to the pretrained networks (SNR plugins, AGW non-local
    blocks) and the key prefixes in ``allow_missing``. It loads through
    mmreid's safe loaders (tensors only for downloads).

    Args:
        checkpoint (str): A path, an ``http(s)://`` URL or one of
            mmengine's named checkpoints (``torchvision://resnet50``).
        prefix (str, optional): Only keys under this prefix are loaded, with
            the prefix removed (e.g. ``'backbone.'``).
        map_location (str): Defaults to ``'cpu'``.
        allow_missing (Sequence[str]): Key prefixes of the module that the
            checkpoint may lack (they keep their initialisation), e.g.
            ``['head.', 'neck.']`` for an ImageNet network loaded into a
            whole ``ReIDModel``. Defaults to ``()``.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 map_location: str = 'cpu',
                 allow_missing: Sequence[str] = ()) -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location
        self.allow_missing = allow_missing

    def __call__(self, module: nn.Module) -> None:
        load_pretrained(module, self.checkpoint, self.prefix,
                        self.map_location, self.allow_missing)
        if hasattr(module, '_params_init_info'):
            update_init_info(
                module,
                init_info=f'{type(self).__name__}: load from '
                f'{self.checkpoint}')
