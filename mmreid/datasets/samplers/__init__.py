from .domain_sampler import DomainIdentitySampler
from .identity_sampler import IdentitySampler

__all__ = ['IdentitySampler', 'DomainIdentitySampler']
