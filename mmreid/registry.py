"""Registries of mmreid.

Every registry is a child of the mmengine root registry of the same name, so a
config may name mmreid components directly (``type='ReIDModel'``) and
foreign ones with their scope (``type='mmpretrain.ResNet'``). Each registry
sets ``locations``: building from a config imports the module that defines a
class, so no manual import is needed.

An unknown ``type`` (a misspelt ``'ResNett'``, or mmpretrain's ``'ResNet'``
written without its scope) raises
:class:`~mmreid.utils.registry_suggestions.UnknownTypeError` naming the config
key path and the closest registered names of every scope ("did you mean
'ReIDResNet' or 'mmpretrain.ResNet'?"). For that, the mmengine root registries
below (and so their children, ours included) build through
:func:`~mmreid.utils.registry_suggestions.with_suggestions`, which changes
nothing but the error of an unknown type.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import \
    RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import \
    WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

from mmreid.utils.registry_suggestions import install as _install_suggestions

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'STRATEGIES', 'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'FUNCTIONS',
    'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TASK_UTILS', 'METRICS',
    'EVALUATOR', 'VISUALIZERS', 'VISBACKENDS', 'INFERENCERS'
]

# Before the children below are created: they copy their parent's build.
_install_suggestions([
    MMENGINE_RUNNERS, MMENGINE_RUNNER_CONSTRUCTORS, MMENGINE_LOOPS,
    MMENGINE_HOOKS, MMENGINE_LOG_PROCESSORS, MMENGINE_STRATEGIES,
    MMENGINE_OPTIMIZERS, MMENGINE_OPTIM_WRAPPERS,
    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, MMENGINE_PARAM_SCHEDULERS,
    MMENGINE_DATASETS, MMENGINE_DATA_SAMPLERS, MMENGINE_TRANSFORMS,
    MMENGINE_FUNCTIONS, MMENGINE_MODELS, MMENGINE_MODEL_WRAPPERS,
    MMENGINE_WEIGHT_INITIALIZERS, MMENGINE_TASK_UTILS, MMENGINE_METRICS,
    MMENGINE_EVALUATOR, MMENGINE_VISUALIZERS, MMENGINE_VISBACKENDS,
    MMENGINE_INFERENCERS
])

# Training and test execution.
RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, locations=['mmreid.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor',
    parent=MMENGINE_RUNNER_CONSTRUCTORS,
    locations=['mmreid.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmreid.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmreid.engine'])
LOG_PROCESSORS = Registry(
    'log processor',
    parent=MMENGINE_LOG_PROCESSORS,
    locations=['mmreid.engine'])
STRATEGIES = Registry(
    'strategy', parent=MMENGINE_STRATEGIES, locations=['mmreid.engine'])
OPTIMIZERS = Registry(
    'optimizer', parent=MMENGINE_OPTIMIZERS, locations=['mmreid.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    locations=['mmreid.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmreid.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMENGINE_PARAM_SCHEDULERS,
    locations=['mmreid.engine'])

# Data.
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['mmreid.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMENGINE_DATA_SAMPLERS,
    locations=['mmreid.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['mmreid.datasets'])
# Functions a config names, e.g. a dataloader's collate_fn.
FUNCTIONS = Registry(
    'function', parent=MMENGINE_FUNCTIONS, locations=['mmreid.datasets'])

# Models.
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmreid.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    locations=['mmreid.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMENGINE_WEIGHT_INITIALIZERS,
    locations=['mmreid.models'])
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, locations=['mmreid.models'])

# Evaluation.
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, locations=['mmreid.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMENGINE_EVALUATOR, locations=['mmreid.evaluation'])

# Visualisation and inference.
VISUALIZERS = Registry(
    'visualizer',
    parent=MMENGINE_VISUALIZERS,
    locations=['mmreid.visualization'])
VISBACKENDS = Registry(
    'vis_backend',
    parent=MMENGINE_VISBACKENDS,
    locations=['mmreid.visualization'])
INFERENCERS = Registry(
    'inferencer', parent=MMENGINE_INFERENCERS, locations=['mmreid.apis'])
