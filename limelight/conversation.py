"""Conversations with truncation to a model's context window, fork, save and load."""

from ._conversation import CHARS_PER_TOKEN as CHARS_PER_TOKEN
from ._conversation import MESSAGE_OVERHEAD_TOKENS as MESSAGE_OVERHEAD_TOKENS
from ._conversation import Conversation as Conversation
from ._conversation import Truncation as Truncation
from ._conversation import message_tokens as message_tokens

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "Conversation",
    "Truncation",
    "message_tokens",
]
