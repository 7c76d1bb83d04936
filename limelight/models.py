"""Model profiles (context window, prices, capabilities) in a registry users can extend."""

from .actors._models import BUILTIN_PROFILES as BUILTIN_PROFILES
from .actors._models import ModelProfile as ModelProfile
from .actors._models import get_model_profile as get_model_profile
from .actors._models import model_profiles as model_profiles
from .actors._models import register_model as register_model

__all__ = [
    "BUILTIN_PROFILES",
    "ModelProfile",
    "get_model_profile",
    "model_profiles",
    "register_model",
]
