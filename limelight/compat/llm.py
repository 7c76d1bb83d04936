"""The earlier synchronous OpenAI-compatible client (the ``LLM`` module), over limelight's.

Change the import and nothing else::

    from limelight.compat.llm import LLM, LLMConfig  # was: from LLM import LLM, LLMConfig

    with LLM(LLMConfig(base_url="http://127.0.0.1:8000", model="gpt-4")) as llm:
        print(llm.chat_completion([{"role": "user", "content": "Hi"}]).choices[0].message.content)

It maps to :class:`limelight.client.LLM` (calls through a provider pool: retries with
backoff on 429 and 5xx, attempt hooks, usage under the role ``"default"``) with the earlier
defaults, ``completion`` of a list of prompts, and INFO lines on the stdlib logger ``"LLM"``.
The response types are limelight's OpenAI shapes under their earlier names
(``ChatCompletionResponse`` is :class:`limelight.client.ChatCompletion`...); the errors are
those of :mod:`limelight.errors`.
"""

from ._llm import LLM as LLM
from ._llm import ChatCompletionChoice as ChatCompletionChoice
from ._llm import ChatCompletionRequest as ChatCompletionRequest
from ._llm import ChatCompletionResponse as ChatCompletionResponse
from ._llm import CompletionChoice as CompletionChoice
from ._llm import CompletionRequest as CompletionRequest
from ._llm import CompletionResponse as CompletionResponse
from ._llm import LLMAPIError as LLMAPIError
from ._llm import LLMConfig as LLMConfig
from ._llm import LLMConnectionError as LLMConnectionError
from ._llm import LLMError as LLMError
from ._llm import LLMResponseError as LLMResponseError
from ._llm import LLMTimeout as LLMTimeout
from ._llm import Message as Message
from ._llm import Model as Model
from ._llm import ModelsResponse as ModelsResponse
from ._llm import Usage as Usage

__all__ = [
    "LLM",
    "ChatCompletionChoice",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "CompletionChoice",
    "CompletionRequest",
    "CompletionResponse",
    "LLMAPIError",
    "LLMConfig",
    "LLMConnectionError",
    "LLMError",
    "LLMResponseError",
    "LLMTimeout",
    "Message",
    "Model",
    "ModelsResponse",
    "Usage",
]
