"""Model profiles, where the actors' code looked them up before they moved down to the pure
core :mod:`limelight._models` (re-exported here; import them from :mod:`limelight.models`)."""

from .._models import BUILTIN_PROFILES as BUILTIN_PROFILES
from .._models import ModelProfile as ModelProfile
from .._models import get_model_profile as get_model_profile
from .._models import litellm_cost_map as litellm_cost_map
from .._models import model_profiles as model_profiles
from .._models import register_model as register_model

__all__ = [
    "BUILTIN_PROFILES",
    "ModelProfile",
    "get_model_profile",
    "litellm_cost_map",
    "model_profiles",
    "register_model",
]
