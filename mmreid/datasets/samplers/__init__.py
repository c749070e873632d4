from .cross_modality_sampler import CrossModalityIdentitySampler
from .domain_sampler import DomainIdentitySampler
from .identity_sampler import IdentitySampler

__all__ = [
    'IdentitySampler', 'DomainIdentitySampler', 'CrossModalityIdentitySampler'
]
