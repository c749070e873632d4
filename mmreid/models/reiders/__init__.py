from .gmn_reid import GMNReID
from .reid_model import ReIDModel

__all__ = ['ReIDModel', 'GMNReID']
