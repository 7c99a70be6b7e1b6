"""vqvae_lib: the tested library behind the VQ-VAE brain-MRI notebook series."""
from .config import PROFILES, Profile, TrainConfig, VQVAEConfig, get_profile
from .utils import get_device, set_seed

__all__ = ["PROFILES", "Profile", "TrainConfig", "VQVAEConfig", "get_device", "get_profile", "set_seed"]
__version__ = "0.1.0"
