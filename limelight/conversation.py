"""Conversations with truncation to a model's context window, fork, save and load."""

from .actors._conversation import CHARS_PER_TOKEN as CHARS_PER_TOKEN
from .actors._conversation import MESSAGE_OVERHEAD_TOKENS as MESSAGE_OVERHEAD_TOKENS
from .actors._conversation import Conversation as Conversation
from .actors._conversation import Truncation as Truncation
from .actors._conversation import message_tokens as message_tokens

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "Conversation",
    "Truncation",
    "message_tokens",
]
