"""The earlier role router's ``myopto.utils``, over limelight's role router and usage tracker.

Change the import and nothing else::

    from limelight.compat.myopto import set_role_models, get_llm, llm_json  # was myopto.utils

It maps to :mod:`limelight.roles` (``set_role_config``, ``set_role_models``, ``get_llm``,
``llm_json``, ``llm_text``) and :mod:`limelight.usage`: the backends ``"LiteLLM"``,
``"CustomLLM"`` and ``"LocalSLM"`` (``use_mlx=True``: mlx) become limelight's ``litellm``,
``openai-compatible``, ``mlx`` and ``transformers``; the ``TRACE_*`` environment variables
keep their meaning and defaults; every call goes through the role's provider pool and is
counted under the role. The backend classes are in :mod:`limelight.compat.myopto.llm`.
"""

from .._myopto import RoleLLMConfig as RoleLLMConfig
from .._myopto import clear_role_config as clear_role_config
from .._myopto import get_role_config as get_role_config
from .._myopto import set_role_config as set_role_config
from .._myopto import set_role_models as set_role_models
from .._myopto_llm import LLM as LLM
from .._myopto_llm import AbstractModel as AbstractModel
from .._myopto_llm import AutoGenLLM as AutoGenLLM
from .._myopto_llm import ChatResponse as ChatResponse
from .._myopto_llm import CustomLLM as CustomLLM
from .._myopto_llm import LiteLLM as LiteLLM
from .._myopto_llm import LocalSLM as LocalSLM
from .._myopto_llm import extract_text as extract_text
from .._myopto_llm import get_llm as get_llm
from .._myopto_llm import llm_json as llm_json
from .._myopto_llm import llm_text as llm_text
from .._myopto_llm import try_parse_json as try_parse_json
from .._myopto_usage import UsageRecord as UsageRecord
from .._myopto_usage import configure_usage as configure_usage
from .._myopto_usage import get_cost_by_role as get_cost_by_role
from .._myopto_usage import get_tokens_by_role as get_tokens_by_role
from .._myopto_usage import get_total_cost as get_total_cost
from .._myopto_usage import get_usage_summary as get_usage_summary
from .._myopto_usage import print_usage_summary as print_usage_summary
from .._myopto_usage import reset_usage as reset_usage
from .._myopto_usage import track_response as track_response

__all__ = [
    "LLM",
    "AbstractModel",
    "AutoGenLLM",
    "ChatResponse",
    "CustomLLM",
    "LiteLLM",
    "LocalSLM",
    "RoleLLMConfig",
    "UsageRecord",
    "clear_role_config",
    "configure_usage",
    "extract_text",
    "get_cost_by_role",
    "get_llm",
    "get_role_config",
    "get_tokens_by_role",
    "get_total_cost",
    "get_usage_summary",
    "llm_json",
    "llm_text",
    "print_usage_summary",
    "reset_usage",
    "set_role_config",
    "set_role_models",
    "track_response",
    "try_parse_json",
]
