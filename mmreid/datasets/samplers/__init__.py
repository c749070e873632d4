from .cross_modality_sampler import CrossModalityIdentitySampler
from .domain_sampler import DomainIdentitySampler
from .epoch_plan_sampler import EpochPlanSampler
from .identity_sampler import IdentitySampler
from .sample_seed import SeededIndex, sample_seeds

__all__ = [
    'EpochPlanSampler', 'IdentitySampler', 'DomainIdentitySampler',
    'CrossModalityIdentitySampler', 'SeededIndex', 'sample_seeds'
]
