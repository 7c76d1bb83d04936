"""OpenAI's usage object, including the cached part of the prompt, decodes to ``Usage``."""

from __future__ import annotations

import msgspec

from limelight.schemas import Usage
from limelight.schemas._openai import CompletionUsage


def test_cached_prompt_tokens_are_kept() -> None:
    raw = (
        b'{"prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230,'
        b' "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0}}'
    )
    usage = msgspec.json.decode(raw, type=CompletionUsage).to_usage()
    assert usage == Usage(
        prompt_tokens=1200, completion_tokens=30, total_tokens=1230, cached_tokens=1024
    )


def test_servers_that_say_nothing_of_caching_give_zero() -> None:
    for raw in (
        b'{"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}',
        b'{"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,'
        b' "prompt_tokens_details": null}',
        b'{"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,'
        b' "prompt_tokens_details": {"cached_tokens": null}}',
    ):
        assert msgspec.json.decode(raw, type=CompletionUsage).to_usage() == Usage.of(3, 4)


def test_sums_add_the_cached_part_too() -> None:
    a = Usage(prompt_tokens=10, completion_tokens=1, total_tokens=11, cached_tokens=8)
    assert (a + a).cached_tokens == 16
