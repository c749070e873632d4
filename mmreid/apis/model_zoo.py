"""The model zoo as data: ``model-index.yml`` and the method metafiles.

``model-index.yml`` (repository root, and ``mmreid/.mim/`` in an installed
package, see ``setup.py``) imports every ``configs/<method>/metafile.yml``.
A metafile lists ``Collections`` (one per method: paper, techniques) and
``Models``, each with ``Name``, ``In Collection``, ``Config``, optional
``Metadata``, ``Results`` (``Task``, ``Dataset``, ``Metrics``) and
``Weights`` (a URL, only for checkpoints that really exist).
"""
import fnmatch
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import yaml

INDEX_NAME = 'model-index.yml'


@dataclass
class ModelInfo:
    """One ``Models`` entry of a metafile.

    Attributes:
        name (str): Unique model name.
        config (str): Absolute path of the config file.
        collection (str, optional): Name of its collection (method).
        metadata (dict): ``Metadata`` (training data, epochs, ...).
        results (list[dict]): ``Results``: ``Task``, ``Dataset``,
            ``Metrics``.
        weights (str, optional): URL of the released checkpoint.
        metafile (str): Absolute path of the metafile that defines it.
    """
    name: str
    config: str
    collection: Optional[str] = None
    metadata: dict = field(default_factory=dict)
    results: List[dict] = field(default_factory=list)
    weights: Optional[str] = None
    metafile: str = ''


@dataclass
class ModelIndex:
    """All collections and models of a model index, in file order."""
    root: str
    metafiles: List[str]
    collections: Dict[str, dict]
    models: Dict[str, ModelInfo]


def find_model_index() -> str:
    """Path of ``model-index.yml``: the installed package's ``.mim`` copy,
    else the source checkout's root.

    Raises:
        FileNotFoundError: Neither exists.
    """
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    candidates = [
        osp.join(package, '.mim', INDEX_NAME),
        osp.join(osp.dirname(package), INDEX_NAME),
    ]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'{INDEX_NAME} not found; looked at '
                            f'{candidates}. Install mmreid with pip (which '
                            'copies it into mmreid/.mim) or run from a '
                            'source checkout.')


def _read_yaml(path: str) -> dict:
    with open(path, encoding='utf-8') as f:
        content = yaml.safe_load(f) or {}
    if not isinstance(content, dict):
        raise ValueError(f'{path}: expected a mapping at the top level, got '
                         f'{type(content).__name__}')
    return content


def load_model_index(index_file: Optional[str] = None) -> ModelIndex:
    """Read ``model-index.yml`` and every metafile it imports.

    Paths in the index and the metafiles (``Import``, ``Config``,
    ``README``) are relative to the directory of the index.

    Args:
        index_file (str, optional): Defaults to :func:`find_model_index`.

    Returns:
        ModelIndex: Collections and models in file order.

    Raises:
        ValueError: Naming the metafile: a collection or model that is no
            mapping, or has no ``Name`` (a model no ``Config``), or two
            collections or two models with one name.
    """
    index_file = osp.abspath(index_file or find_model_index())
    root = osp.dirname(index_file)
    index = _read_yaml(index_file)
    metafiles = [osp.join(root, p) for p in index.get('Import') or []]
    collections: Dict[str, dict] = dict()
    collection_files: Dict[str, str] = dict()
    models: Dict[str, ModelInfo] = dict()
    # The index itself may also hold collections and models.
    for metafile in [index_file] + metafiles:
        content = index if metafile == index_file else _read_yaml(metafile)
        for i, collection in enumerate(content.get('Collections') or []):
            if not isinstance(collection, dict) or not collection.get('Name'):
                raise ValueError(f'{metafile}: collection #{i} is not a '
                                 f'mapping with a Name: {collection!r}')
            name = collection['Name']
            if name in collections:
                raise ValueError(
                    f'collection name {name!r} is defined twice: in '
                    f'{collection_files[name]} and {metafile}')
            collections[name] = collection
            collection_files[name] = metafile
        for i, entry in enumerate(content.get('Models') or []):
            if not isinstance(entry, dict):
                raise ValueError(f'{metafile}: model #{i} is not a mapping: '
                                 f'{entry!r}')
            missing = [k for k in ('Name', 'Config') if not entry.get(k)]
            if missing:
                raise ValueError(f'{metafile}: model #{i} has no '
                                 f'{" and ".join(missing)}')
            name = entry['Name']
            if name in models:
                raise ValueError(f'model name {name!r} is defined twice: in '
                                 f'{models[name].metafile} and {metafile}')
            models[name] = ModelInfo(
                name=name,
                config=osp.join(root, entry['Config']),
                collection=entry.get('In Collection'),
                metadata=dict(entry.get('Metadata') or {}),
                results=list(entry.get('Results') or []),
                weights=entry.get('Weights'),
                metafile=metafile)
    return ModelIndex(root, metafiles, collections, models)


def list_models(pattern: Optional[str] = None,
                index_file: Optional[str] = None) -> List[str]:
    """Names of the model zoo's models, sorted.

    Args:
        pattern (str, optional): Case-insensitive shell-style pattern
            (``'snr_*'``); a pattern without wildcards matches names that
            contain it (``'r18'``). Defaults to all models.
        index_file (str, optional): Defaults to :func:`find_model_index`.

    Returns:
        list[str]: Matching names.
    """
    names = sorted(load_model_index(index_file).models)
    if not pattern:
        return names
    pattern = pattern.lower()
    if not any(c in pattern for c in '*?['):
        pattern = f'*{pattern}*'
    return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern)]


def get_model_info(name: str, index_file: Optional[str] = None) -> ModelInfo:
    """The :class:`ModelInfo` of model ``name``.

    Raises:
        KeyError: Unknown name (the message suggests close names).
    """
    models = load_model_index(index_file).models
    if name not in models:
        import difflib
        close = difflib.get_close_matches(name, list(models), n=3)
        hint = f'; did you mean {close}?' if close else ''
        raise KeyError(f'{name!r} is not in the model zoo{hint} '
                       'See mmreid.apis.list_models().')
    return models[name]


__all__ = [
    'ModelInfo', 'ModelIndex', 'find_model_index', 'load_model_index',
    'list_models', 'get_model_info'
]
