"""Model profiles (context window, prices, capabilities) in a registry users can extend."""

from ._models import BUILTIN_PROFILES as BUILTIN_PROFILES
from ._models import ModelProfile as ModelProfile
from ._models import get_model_profile as get_model_profile
from ._models import model_profiles as model_profiles
from ._models import register_model as register_model

__all__ = [
    "BUILTIN_PROFILES",
    "ModelProfile",
    "get_model_profile",
    "model_profiles",
    "register_model",
]
