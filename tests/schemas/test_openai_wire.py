"""The one model of OpenAI's wire format: requests send only what is given, answers send
every field (nulls included) but those left out on purpose, and decoding is lenient."""

from __future__ import annotations

import msgspec
import pytest
from msgspec import UNSET

from limelight.schemas import Message, ToolSpec
from limelight.schemas._openai import (
    OMIT,
    ChatBody,
    ChatCompletion,
    ChatMessage,
    ChatToolCall,
    ChunkChoice,
    CompletionUsage,
    FunctionCall,
    RequestMessage,
    StreamOptions,
    TextBody,
    Tool,
    chat_body_decoder,
    chat_chunk_decoder,
    chat_completion_decoder,
    encoder,
    error_body,
    error_body_decoder,
    text_body_decoder,
    text_completion_decoder,
    usage_only_decoder,
)


def test_a_request_sends_only_the_fields_given() -> None:
    body = ChatBody(messages=[Message.user("hi")])
    assert encoder.encode(body) == b'{"messages":[{"role":"user","content":"hi"}]}'
    streamed = ChatBody(
        model="m",
        messages=[Message.user("hi")],
        tools=[Tool(function=ToolSpec(name="f"))],
        stream=True,
        stream_options=StreamOptions(include_usage=True),
    )
    assert msgspec.json.decode(encoder.encode(streamed)) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_a_tool_calling_message_sends_its_null_content() -> None:
    call = ChatToolCall(id="c1", function=FunctionCall(name="f", arguments="{}"))
    message = RequestMessage(role="assistant", content=None, tool_calls=[call])
    assert encoder.encode(message) == (
        b'{"role":"assistant","content":null,"tool_calls":'
        b'[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}'
    )


def test_a_decoded_request_tells_a_missing_field_from_a_null_one() -> None:
    body = chat_body_decoder.decode(
        b'{"messages":[{"role":"assistant","tool_calls":[]},{"role":"user","content":null}]}'
    )
    assert [m.content for m in body.messages] == [UNSET, None]
    assert text_body_decoder.decode(b'{"prompt":"p"}').max_tokens is UNSET
    assert text_body_decoder.decode(b'{"prompt":"p","max_tokens":null}').max_tokens is None
    assert encoder.encode(TextBody(prompt="p")) == b'{"prompt":"p"}'


def test_a_decoded_request_offers_tools_as_tool_specs() -> None:
    body = chat_body_decoder.decode(
        b'{"messages":[{"role":"user","content":"x"}],'
        b'"tools":[{"type":"function","function":{"name":"f","strict":true}}]}'
    )
    assert body.tools is not None
    assert body.tools[0].function == ToolSpec(name="f", strict=True)
    with pytest.raises(msgspec.ValidationError, match=r"missing required field `role`"):
        chat_body_decoder.decode(b'{"messages":[{"content":"x"}]}')


def test_an_answer_sends_every_field_but_those_left_out() -> None:
    assert msgspec.json.decode(encoder.encode(ChatCompletion(id="x"))) == {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "",
        "choices": [],
        "usage": None,
        "system_fingerprint": None,
    }
    message = ChatMessage(content="hi", tool_calls=OMIT, name=OMIT, tool_call_id=OMIT)
    assert encoder.encode(message) == (
        b'{"role":"assistant","content":"hi","refusal":null,"reasoning_content":null}'
    )
    usage = CompletionUsage(prompt_tokens=2, completion_tokens=OMIT, total_tokens=2)
    assert encoder.encode(usage) == (
        b'{"prompt_tokens":2,"total_tokens":2,"prompt_tokens_details":null}'
    )
    assert b'"text"' not in encoder.encode(ChunkChoice(text=OMIT))


def test_decoded_answers_never_hold_omit() -> None:
    completion = chat_completion_decoder.decode(b'{"choices":[{"message":{"content":"hi"}}]}')
    message = completion.choices[0].message
    assert (message.role, message.content, message.tool_calls, message.refusal) == (
        "assistant",
        "hi",
        None,
        None,
    )
    assert completion.usage is None
    chunk = chat_chunk_decoder.decode(b'{"choices":[{"delta":{"content":"a"}}]}')
    assert (chunk.object, chunk.usage, chunk.choices[0].text) == (
        "chat.completion.chunk",
        None,
        None,
    )
    text = text_completion_decoder.decode(b'{"choices":[{"text":"t"}]}')
    assert (text.object, text.choices[0].text, text.usage) == ("text_completion", "t", None)


def test_usage_only_reads_the_usage_of_any_answer() -> None:
    raw = b'{"id":"x","choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}'
    usage = usage_only_decoder.decode(raw).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (1, 2)
    assert usage_only_decoder.decode(b'{"choices":[]}').usage is None


def test_error_body_is_openais_with_every_key() -> None:
    body = error_body("bad", param="n", code="invalid_value")
    assert body == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": "n",
            "code": "invalid_value",
        }
    }
    assert encoder.encode(error_body("x", type="server_error")) == (
        b'{"error":{"message":"x","type":"server_error","param":null,"code":null}}'
    )
    assert error_body_decoder.decode(encoder.encode(body)).error.param == "n"
