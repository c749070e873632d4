from .snr import SNR

__all__ = ['SNR']
