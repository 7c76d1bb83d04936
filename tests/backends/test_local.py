"""MLX and transformers specifics, on tiny models built here: one load per process shared by
every instance, JSON schema asked for in the prompt, stop strings, the event loop kept free
while a model generates, and clear errors for what cannot load."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from limelight.errors import BadRequest, ConfigError
from limelight.providers import MLX, Transformers
from limelight.providers._local import LocalBackend, _StopStrings, prompt_messages
from limelight.schemas import CompletionRequest, EmbeddingRequest, Message, StreamEventType

HELLO = [Message.user("Hello there!")]


@pytest.fixture(params=["mlx", "transformers"])
def local(request: pytest.FixtureRequest) -> tuple[type[LocalBackend], Path]:
    if request.param == "mlx":
        return MLX, request.getfixturevalue("tiny_model")
    return Transformers, request.getfixturevalue("tiny_hf_model")


def make(local: tuple[type[LocalBackend], Path], **options: object) -> LocalBackend:
    cls, path = local
    return cls(str(path), **options)  # type: ignore[arg-type]


def test_the_model_is_loaded_once_per_process_and_shared(
    local: tuple[type[LocalBackend], Path],
) -> None:
    first, second = make(local), make(local, temperature=0.7)
    assert first.loaded() is second.loaded()


def test_json_schema_output_is_asked_for_in_the_prompt() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = CompletionRequest(
        messages=[Message.system("be brief"), *HELLO],
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    messages = prompt_messages(request)
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[-1]["content"].startswith("Hello there!\n\n")
    assert (
        '{"properties": {"city": {"type": "string"}}, "type": "object"}' in messages[-1]["content"]
    )
    plain = prompt_messages(CompletionRequest(prompt="hi", response_format={"type": "text"}))
    assert plain == [{"role": "user", "content": "hi"}]
    with pytest.raises(BadRequest, match="not supported"):
        prompt_messages(CompletionRequest(prompt="hi", response_format={"type": "regex"}))


@pytest.mark.parametrize(
    ("pieces", "stops", "expected"),
    [
        (["ab", "cS", "TOPde"], ["STOP"], "abc"),
        (["abc"], [], "abc"),
        (["a", "b", "c"], ["x"], "abc"),
        (["xx<", "|en", "d|>yy"], ["<|end|>", "zz"], "xx"),
    ],
)
def test_stop_strings_cut_the_text_even_across_pieces(
    pieces: list[str], stops: list[str], expected: str
) -> None:
    cutter = _StopStrings(stops)
    out = ""
    for piece in pieces:
        out += cutter.feed(piece)
        if cutter.stopped:
            break
    else:
        out += cutter.flush()
    assert out == expected


@pytest.mark.anyio
async def test_generation_with_a_stop_string_and_a_schema(
    local: tuple[type[LocalBackend], Path],
) -> None:
    provider = make(local)
    full = await provider.complete(CompletionRequest(messages=HELLO, max_tokens=30))
    assert full.content
    stop = full.content[3:8]
    cut = await provider.complete(CompletionRequest(messages=HELLO, max_tokens=30, stop=[stop]))
    assert cut.content == full.content[: full.content.index(stop)]
    assert cut.finish_reason == "stop"
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    answered = await provider.complete(
        CompletionRequest(messages=HELLO, max_tokens=4, response_format=schema)
    )
    assert answered.usage is not None
    assert answered.usage.prompt_tokens > full.usage.prompt_tokens  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_the_event_loop_stays_free_while_the_model_generates(
    local: tuple[type[LocalBackend], Path],
) -> None:
    provider = make(local)
    await provider.complete(CompletionRequest(messages=HELLO, max_tokens=1))  # load first
    ticks = 0
    done = False

    async def tick() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await anyio.sleep(0.001)  # a busy loop would starve the thread of the GIL

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        tokens = 0
        async for event in provider.stream(CompletionRequest(messages=HELLO, max_tokens=200)):
            tokens += event.type is StreamEventType.TOKEN
        done = True
    assert tokens > 0
    # The ticker ran while generation went on in its thread (a blocked loop gives 1 or 2).
    assert ticks > 10


@pytest.mark.anyio
async def test_a_model_loads_and_runs_on_one_thread_of_its_own(
    local: tuple[type[LocalBackend], Path],
) -> None:
    # mlx ties arrays to the thread that evaluated them: the load, each generation and each
    # embedding of a model all run on the same thread, never the caller's.
    cls, path = local
    seen: list[tuple[str, threading.Thread]] = []

    class Spy(cls):  # type: ignore[valid-type,misc]
        key = object()  # a cache entry of this test's own: the model loads here

        def _cache_key(self) -> object:
            return (self.key, super()._cache_key())

        def _load(self) -> object:
            seen.append(("load", threading.current_thread()))
            return super()._load()

        def _generate(self, *args: object) -> None:
            seen.append(("generate", threading.current_thread()))
            super()._generate(*args)

        def _embed(self, *args: object) -> object:
            seen.append(("embed", threading.current_thread()))
            return super()._embed(*args)

    provider = Spy(str(path))
    before = set(threading.enumerate())
    await provider.complete(CompletionRequest(messages=HELLO, max_tokens=2))
    await provider.embed(EmbeddingRequest(input=["hello"]))
    async with anyio.create_task_group() as tg:  # concurrent calls queue on that thread
        for _ in range(3):
            tg.start_soon(provider.complete, CompletionRequest(messages=HELLO, max_tokens=2))
    assert [e async for e in provider.stream(CompletionRequest(messages=HELLO, max_tokens=2))]
    Spy(str(path)).loaded()  # from this thread too: loaded, once, on the model's thread
    assert [what for what, _ in seen] == ["load", "generate", "embed", *["generate"] * 4]
    threads = {thread for _, thread in seen}
    assert len(threads) == 1
    assert threads.isdisjoint({threading.current_thread()} | before)
    assert threads == {provider.thread()._thread}


@pytest.mark.anyio
async def test_a_model_that_cannot_load_is_a_config_error(
    local: tuple[type[LocalBackend], Path], tmp_path: Path
) -> None:
    cls, _ = local
    with pytest.raises(ConfigError, match="could not load"):
        await cls(str(tmp_path / "missing-model")).complete(CompletionRequest(messages=HELLO))


def test_device_and_dtype_are_checked(tiny_hf_model: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        Transformers(str(tiny_hf_model), device="tpu")
    with pytest.raises(ConfigError, match="not a torch dtype"):
        Transformers(str(tiny_hf_model), torch_dtype="float7").loaded()


@pytest.mark.parametrize(
    ("module", "model", "extra"), [("mlx_lm", "mlx:/m", "mlx"), ("torch", "hf:/m", "transformers")]
)
def test_without_the_library_the_error_names_the_extra(module: str, model: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from limelight.errors import MissingExtra\n"
        "from limelight.providers import resolve\n"
        "try:\n"
        f"    resolve({model!r})\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert out.startswith(f"{extra} |")


@pytest.mark.anyio
async def test_a_cancelled_call_queued_for_the_model_ends_without_waiting_its_turn(
    local: tuple[type[LocalBackend], Path],
) -> None:
    provider = make(local)
    await provider.complete(CompletionRequest(messages=HELLO, max_tokens=1))  # loaded
    before = set(threading.enumerate())
    # A generation that would run for a very long time holds the model.
    endless = provider.stream(CompletionRequest(messages=HELLO, max_tokens=100_000))
    try:
        await endless.__anext__()
        with anyio.move_on_after(0.2) as scope:
            await provider.complete(CompletionRequest(messages=HELLO, max_tokens=5))
        assert scope.cancelled_caught  # it could not have run: the model was busy
        # The queued call gave up while the other generation still runs, and no thread was
        # started for either: both are jobs for the model's own thread.
        assert (await endless.__anext__()).type is StreamEventType.TOKEN
        assert set(threading.enumerate()) <= before
    finally:
        await endless.aclose()
    # The skipped job does not hold the model up: the next call runs at once.
    again = await provider.complete(CompletionRequest(messages=HELLO, max_tokens=3))
    assert again.usage is not None
    assert again.usage.completion_tokens == 3


def test_the_transformers_streamer_reassembles_the_text_exactly(tiny_hf_model: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    from limelight.providers._transformers import _streamer

    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_model)
    # Characters outside the tokenizer's training text split into byte tokens.
    text = "Hello there! How are you today? Ünïcödé 日本語 — the lazy fox.\nTokens stream."
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces: list[str] = []
    streamer = _streamer(tokenizer, pieces.append)
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt, skipped
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert "\ufffd" not in "".join(pieces)
    assert len(pieces) > 10  # streamed piece by piece, not all at the end


@pytest.mark.anyio
async def test_cancelling_complete_mid_generation_stops_the_model(
    local: tuple[type[LocalBackend], Path],
) -> None:
    provider = make(local)
    await provider.complete(CompletionRequest(messages=HELLO, max_tokens=1))  # loaded
    before = set(threading.enumerate())
    # A whole answer (no per-token text, decoded at the end) that would take minutes: the
    # call returns only once its job on the model's thread has ended, so this passes only if
    # the cancel stopped the model mid-generation (else the test's timeout fails it).
    with anyio.move_on_after(0.3) as scope:
        await provider.complete(CompletionRequest(messages=HELLO, max_tokens=100_000))
    assert scope.cancelled_caught
    assert set(threading.enumerate()) <= before
    again = await provider.complete(CompletionRequest(messages=HELLO, max_tokens=5))
    assert again.usage is not None
    assert again.usage.completion_tokens == 5


@pytest.mark.anyio
async def test_complete_and_stream_give_the_same_text(
    local: tuple[type[LocalBackend], Path],
) -> None:
    # complete() decodes once at the end, stream() token by token (transformers): one text.
    provider = make(local)
    request = CompletionRequest(messages=HELLO, max_tokens=60)
    whole = await provider.complete(request)
    events = [event async for event in provider.stream(request)]
    assert events[-1].result is not None
    assert events[-1].result.content == whole.content
    assert events[-1].result.usage == whole.usage
    assert "".join(e.content or "" for e in events if e.type is StreamEventType.TOKEN) == (
        whole.content
    )
