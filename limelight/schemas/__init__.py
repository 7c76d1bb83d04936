"""msgspec Structs for every message that crosses an actor boundary or a wire."""

from ._llm import CompletionRequest as CompletionRequest
from ._llm import CompletionResult as CompletionResult
from ._llm import EmbeddingRequest as EmbeddingRequest
from ._llm import EmbeddingResult as EmbeddingResult
from ._llm import Message as Message
from ._llm import ModelInfo as ModelInfo
from ._llm import ModelList as ModelList
from ._llm import Role as Role
from ._llm import StreamEvent as StreamEvent
from ._llm import StreamEventType as StreamEventType
from ._llm import ToolCall as ToolCall
from ._llm import ToolSpec as ToolSpec
from ._llm import Usage as Usage

__all__ = [
    "CompletionRequest",
    "CompletionResult",
    "EmbeddingRequest",
    "EmbeddingResult",
    "Message",
    "ModelInfo",
    "ModelList",
    "Role",
    "StreamEvent",
    "StreamEventType",
    "ToolCall",
    "ToolSpec",
    "Usage",
]
