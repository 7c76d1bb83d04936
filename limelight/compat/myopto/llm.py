"""The earlier role router's backend classes (``myopto.utils.llm``), over limelight's roles.

Change the import and nothing else::

    from limelight.compat.myopto.llm import LLM  # was myopto.utils.llm

    llm = LLM(role="executor")
    response = llm(messages=[{"role": "user", "content": "Hello"}])

``LLM`` calls a role's model on its backend (else ``TRACE_DEFAULT_LLM_BACKEND``);
``LiteLLM``, ``CustomLLM`` and ``LocalSLM`` pin theirs. Each maps to a
:class:`limelight.roles.RoleLLM` of the role: the role's provider pool, counted under the
role in :mod:`limelight.usage`. AutoGen is not offered (``AutoGenLLM`` says so).
"""

from .._myopto import HAS_MLX as HAS_MLX
from .._myopto import HAS_TRANSFORMERS as HAS_TRANSFORMERS
from .._myopto_llm import LLM as LLM
from .._myopto_llm import AbstractModel as AbstractModel
from .._myopto_llm import AutoGenLLM as AutoGenLLM
from .._myopto_llm import ChatResponse as ChatResponse
from .._myopto_llm import CustomLLM as CustomLLM
from .._myopto_llm import LiteLLM as LiteLLM
from .._myopto_llm import LocalSLM as LocalSLM

__all__ = [
    "HAS_MLX",
    "HAS_TRANSFORMERS",
    "LLM",
    "AbstractModel",
    "AutoGenLLM",
    "ChatResponse",
    "CustomLLM",
    "LiteLLM",
    "LocalSLM",
]
