"""A plain synchronous client for OpenAI-compatible servers, for code with no event loop.

It talks to vLLM, llama.cpp, mlx_lm.server, OpenAI or the limelight simulator: chat and text
completions and the model list, with retries.

Its calls take the pipeline every model call takes: a :class:`~limelight.actors.ProviderPool`
whose workers drive :class:`~limelight.providers.OpenAICompatible`, with the pool's retries,
attempt hooks (a shared rate limiter's, analytics) and usage accounting. The pool runs on a
:class:`~limelight.Runtime` in a background thread (or in the runtime of the rate limiter the
client was given), reached through the runtime's blocking portal; so, unlike a
``requests.Session``, one client is safe to share between any number of threads::

    from limelight.client import LLM, LLMConfig

    with LLM(LLMConfig(base_url="http://127.0.0.1:8080", model="qwen")) as llm:
        reply = llm.chat_completion([{"role": "user", "content": "Hi"}])
        print(reply.choices[0].message.content)
"""

from __future__ import annotations

from ._client import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._client import LLM as LLM
from ._client import RETRY_STATUSES as RETRY_STATUSES
from ._client import LLMConfig as LLMConfig
from .errors import LLMAPIError as LLMAPIError
from .errors import LLMConnectionError as LLMConnectionError
from .errors import LLMError as LLMError
from .errors import LLMResponseError as LLMResponseError
from .errors import LLMTimeout as LLMTimeout
from .schemas._openai import ChatChoice as ChatChoice
from .schemas._openai import ChatCompletion as ChatCompletion
from .schemas._openai import ChatMessage as ChatMessage
from .schemas._openai import CompletionUsage as CompletionUsage
from .schemas._openai import Model as Model
from .schemas._openai import ModelsPage as ModelsPage
from .schemas._openai import TextChoice as TextChoice
from .schemas._openai import TextCompletion as TextCompletion

__all__ = [
    "DEFAULT_BASE_URL",
    "RETRY_STATUSES",
    "ChatChoice",
    "ChatCompletion",
    "ChatMessage",
    "CompletionUsage",
    "LLM",
    "LLMAPIError",
    "LLMConfig",
    "LLMConnectionError",
    "LLMError",
    "LLMResponseError",
    "LLMTimeout",
    "Model",
    "ModelsPage",
    "TextChoice",
    "TextCompletion",
]
