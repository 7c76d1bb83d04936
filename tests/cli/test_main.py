"""The `limelight` command, run as a user would, and its table of commands."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pkgutil
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import limelight
import limelight.cli
from limelight.cli import COMMANDS, load, main
from limelight.harness._targets import sim_process
from limelight.models import get_model_profile

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run(
    *args: str, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m limelight ARGS``; ``env`` adds variables to the environment (``None``
    removes one)."""
    environ = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-m", "limelight", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    """The one line the command wrote on stderr (checked to be one, and no traceback)."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def _kept_db(text: str) -> Path:
    """The events database the demo said it kept."""
    match = re.search(r"to see them again:\n  limelight events --db (\S+)\n", text)
    assert match is not None, text[-500:]
    return Path(match.group(1))


def test_version() -> None:
    out = _run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"limelight {limelight.__version__}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_and_a_module_with_the_interface(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, help_line = COMMANDS[name]
    assert help_line.strip()
    assert "\n" not in help_line
    command = load(name)
    assert (command.__doc__ or "").startswith(f"``limelight {name}``")
    assert list(inspect.signature(command.add_arguments).parameters) == ["parser"]
    assert list(inspect.signature(command.run).parameters) == ["args"]
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert len(parser._actions) > 1  # options besides --help
    # `limelight NAME --help` shows the command's own options.
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: limelight {name} ")
    # ... and `limelight --help` lists it with its line of help.
    with pytest.raises(SystemExit):
        main(["--help"])
    assert " ".join(help_line.split()) in " ".join(capsys.readouterr().out.split())


def test_every_command_module_is_in_the_table() -> None:
    modules = {m.name for m in pkgutil.iter_modules(limelight.cli.__path__)}
    public = {m for m in modules if not m.startswith("_")}
    assert public == {module for module, _ in COMMANDS.values()}


def _modules_after(*args: str) -> list[str]:
    """The ``limelight`` modules imported by ``main(ARGS)`` in a new interpreter."""
    script = (
        "import json, sys\n"
        "from limelight.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "mods = sorted(m for m in sys.modules if m.startswith('limelight'))\n"
        "print(json.dumps(mods), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return list(json.loads(out.stderr.splitlines()[-1]))


def test_help_imports_no_command() -> None:
    loaded = _modules_after("--help")
    assert "limelight.cli" in loaded
    assert not [m for m in loaded if m.startswith(("limelight.cli.", "limelight.harness"))]


def test_demo_does_not_import_the_harness(tmp_path: Path) -> None:
    loaded = _modules_after("demo", "--db", str(tmp_path / "events.db"))
    assert "limelight.cli.demo" in loaded
    assert (tmp_path / "events.db").exists()  # it ran
    assert not [m for m in loaded if m.startswith(("limelight.harness", "limelight.cli.bench"))]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("http", [False, True], ids=["in-process", "http"])
def test_demo_runs_an_agent_tree_and_summarizes_its_events(backend: str, http: bool) -> None:
    out = _run("demo", "--backend", backend, *(["--http"] if http else []))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # It says what is simulated.
    assert "simulator" in text
    assert "simulated" in text
    assert ("over HTTP at http://127.0.0.1:" in text) is http
    # The tree: three coordinators, each with its sub-agents as supervised children.
    tree = text[text.index("actor tree:") :]
    for team in ("team-1", "team-2", "team-3"):
        assert f"── {team}  Agent" in tree
    assert tree.count("researcher  Agent") == 3
    assert tree.count("writer  Agent") == 3
    # Every team's outcome, then the analytics summary read back from the SQLite store.
    outcomes = [line for line in text.splitlines() if line.startswith("  team-")]
    assert len(outcomes) == 3
    assert "limelight events:" in text
    events = int(text.split("limelight events:")[1].split("events in")[0].split()[-1])
    assert events > 0
    assert "llm_request" in text
    assert "llm_response" in text
    # The store it printed is kept, and `limelight events` reads it.
    db = _kept_db(text)
    try:
        assert f"limelight events: {db}" in text
        again = _run("events", "--db", str(db))
        assert again.returncode == 0, again.stderr
        assert f"{events} events in" in " ".join(again.stdout.split())
    finally:
        shutil.rmtree(db.parent)


@pytest.fixture(scope="module")
def sim_server() -> Iterator[str]:
    """``limelight sim`` as a subprocess (an OpenAI-compatible server the demo does not
    know is simulated), serving a priced model name and an unknown one, and only those."""
    command = [sys.executable, "-m", "limelight", "sim", "--port", "0", "--ttft", "0.01"]
    command += ["--tps", "2000", "--model", "gpt-4o-mini", "--model", "house-model"]
    with sim_process([*command, "--strict-models"]) as url:
        yield url


def _tree_and_summary(text: str) -> tuple[int, int, str]:
    """Check the demo printed its tree, outcomes and summary; return the summary's input and
    output tokens and its cost text."""
    tree = text[text.index("actor tree:") :]
    for team in ("team-1", "team-2", "team-3"):
        assert f"── {team}  Agent" in tree
    assert tree.count("researcher  Agent") == 3
    assert tree.count("writer  Agent") == 3
    outcomes = [line for line in text.splitlines() if line.startswith("  team-")]
    assert len(outcomes) == 3
    summary = " ".join(text[text.index("limelight events:") :].split())
    match = re.search(
        r"(\d+) events in \d+ runs, .*?; (\d+) input \+ (\d+) output tokens, cost (\S+), "
        r"\d+ errors",
        summary,
    )
    assert match is not None, summary
    assert int(match.group(1)) > 0
    assert "llm_request" in summary
    assert "llm_response" in summary
    return int(match.group(2)), int(match.group(3)), match.group(4)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_against_a_server_by_base_url(sim_server: str, backend: str, tmp_path: Path) -> None:
    out = _run(
        *("demo", "--base-url", sim_server, "--model", "gpt-4o-mini", "--backend", backend),
        *("--db", str(tmp_path / "events.db")),
        env={"OPENAI_API_KEY": "sk-any"},
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"Model: gpt-4o-mini via {sim_server}" in text
    prompt, completion, cost = _tree_and_summary(text)
    assert prompt > 0
    assert completion > 0
    # The answers are priced from the model's price data (USD per 1M tokens).
    profile = get_model_profile("gpt-4o-mini")
    assert profile is not None
    assert profile.input_price is not None
    assert profile.output_price is not None
    expected = (prompt * profile.input_price + completion * profile.output_price) / 1e6
    assert cost == f"${expected:,.4f}"
    assert all("$" in line for line in text.splitlines() if line.startswith("  team-"))
    assert _kept_db(text) == tmp_path / "events.db"


def test_demo_with_a_model_without_prices(sim_server: str, tmp_path: Path) -> None:
    out = _run(
        *("demo", "--base-url", sim_server, "--model", "house-model"),
        *("--db", str(tmp_path / "events.db")),
        env={"OPENAI_API_KEY": "sk-any"},
    )
    assert out.returncode == 0, out.stderr
    prompt, completion, cost = _tree_and_summary(out.stdout)
    assert prompt > 0
    assert completion > 0
    assert cost == "-"  # no price data for the name: no cost, rather than a made-up one
    assert not any("$" in line for line in out.stdout.splitlines() if line.startswith("  team-"))


def test_demo_sim_1_is_the_simulator_as_in_bench(tmp_path: Path) -> None:
    # `bench --model sim-1` is the simulator; so is `demo --model sim-1` (not a LiteLLM name).
    out = _run("demo", "--model", "sim-1", "--db", str(tmp_path / "events.db"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Model: the limelight simulator, in-process")
    _tree_and_summary(out.stdout)


def test_demo_base_url_needs_a_model() -> None:
    out = _run("demo", "--base-url", "http://127.0.0.1:9/v1")
    assert out.returncode == 2
    assert "--base-url needs --model" in _one_line(out)


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A TCP socket listening on a free port (nothing answers): its URL and the socket, to
    see whether anyone connected."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", sock


def _connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize(
    ("extra", "env", "said"),
    [
        ([], {"OPENAI_API_KEY": None}, "$OPENAI_API_KEY is not set"),
        (
            ["--api-key-env", "LIMELIGHT_TEST_UNSET_KEY"],
            {"OPENAI_API_KEY": "sk-any", "LIMELIGHT_TEST_UNSET_KEY": None},
            "--api-key-env LIMELIGHT_TEST_UNSET_KEY: $LIMELIGHT_TEST_UNSET_KEY is not set",
        ),
    ],
    ids=["default-variable", "named-variable"],
)
def test_demo_reports_a_missing_key_before_any_call(
    listener: tuple[str, socket.socket],
    extra: list[str],
    env: Mapping[str, str | None],
    said: str,
) -> None:
    url, sock = listener
    out = _run("demo", "--base-url", url, "--model", "m", *extra, env=env)
    assert out.returncode == 2
    line = _one_line(out)
    assert line.startswith("limelight demo: ")
    assert said in line
    assert "--api-key-env VAR" in line or "export it" in line  # what to do
    assert out.stdout == ""
    assert not _connected(sock), "the demo called the server before checking its key"


def test_demo_reports_a_missing_litellm_key_before_any_call() -> None:
    pytest.importorskip("litellm")
    out = _run("demo", "--model", "gpt-4o-mini", env={"OPENAI_API_KEY": None})
    assert out.returncode == 2
    line = _one_line(out)
    assert line == (
        "limelight demo: gpt-4o-mini (through LiteLLM) needs $OPENAI_API_KEY, which is not "
        "set: export it, or name the variable holding the key with --api-key-env VAR"
    )
    assert out.stdout == ""


def test_demo_fails_when_nothing_listens(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    # The port is closed now: every connection is refused.
    out = _run(
        *("demo", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m"),
        *("--db", str(tmp_path / "events.db")),
        env={"OPENAI_API_KEY": "sk-any"},
    )
    assert out.returncode == 1
    line = _one_line(out)
    assert line.startswith("limelight demo: 3 of 3 teams failed; team-1: ")
    assert "ProviderConnectionError" in line
    assert f"127.0.0.1:{port}" in line
    # The run is still summarised, and the failures recorded.
    assert "limelight events:" in out.stdout
    assert (tmp_path / "events.db").exists()


def test_demo_fails_on_a_model_the_server_does_not_serve(sim_server: str, tmp_path: Path) -> None:
    out = _run(
        *("demo", "--base-url", sim_server, "--model", "no-such-model"),
        *("--db", str(tmp_path / "events.db")),
        env={"OPENAI_API_KEY": "sk-any"},
    )
    assert out.returncode == 1
    line = _one_line(out)
    assert line.startswith("limelight demo: 3 of 3 teams failed; team-1: ")
    assert "404" in line
    assert "no-such-model" in line


def test_demo_fits_an_80x24_terminal(tmp_path: Path) -> None:
    # FORCE_COLOR makes rich treat stdout (a pipe here) as a terminal, as it is for a user;
    # COLUMNS and LINES give that terminal's size.
    terminal = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    out = _run("demo", "--db", str(tmp_path / "events.db"), env=terminal)
    assert out.returncode == 0, out.stderr
    raw = out.stdout
    # A live display: frames redrawn in place (cursor up, erase line), the cursor shown again.
    assert "\x1b[?25l" in raw
    redraws = [len(m) // len("\x1b[1A\x1b[2K") for m in re.findall(r"(?:\x1b\[1A\x1b\[2K)+", raw)]
    assert redraws, "no frame was redrawn"
    assert "\x1b[?25h" in raw
    # Each frame fits the 24 rows (redrawing it moves up one row less than it has), so the
    # display never scrolls ...
    assert max(redraws) + 1 <= 24, max(redraws)
    # ... and no line is wider than the 80 columns (a wider one wraps, and the redraw
    # misses its rows).
    # (Save the command that shows the events again: a path is printed whole, to be copied.)
    shown = _ANSI.sub("", raw)
    command = f"  limelight events --db {tmp_path / 'events.db'}"
    widest = max((line for line in re.split(r"[\r\n]", shown) if line != command), key=len)
    assert len(widest) <= 80, widest
    # The final state and the summary are still printed, whole.
    final = shown[shown.rindex("teams (coordinator agents)") :]
    _tree_and_summary(final)
    assert "3 teams done:" in final


def _started_demo(
    *args: str, env: dict[str, str], until: bytes
) -> tuple[subprocess.Popen[bytes], bytes]:
    """``limelight demo ARGS`` started, once it has written ``until``: the process, and what
    it wrote so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "limelight", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        bufsize=0,  # unbuffered: what is read here is not read ahead, away from communicate()
    )
    assert process.stdout is not None
    shown = b""
    while until not in shown:
        chunk = process.stdout.read(65536)
        assert chunk, f"the demo ended before it showed {until!r}: {shown[-500:]!r}"
        shown += chunk
    return process, shown


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_ctrl_c_is_one_line_and_130(backend: str, tmp_path: Path) -> None:
    # A server whose first token takes a minute: the teams are waiting for the model when
    # Ctrl-C comes.
    command = [sys.executable, "-m", "limelight", "sim", "--port", "0", "--ttft", "60"]
    terminal = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    db = tmp_path / "events.db"
    with sim_process(command) as url:
        process, first = _started_demo(
            *("--base-url", url, "--model", "m", "--backend", backend, "--db", str(db)),
            env={"OPENAI_API_KEY": "sk-any", **terminal},
            until=b"thinking",  # a team has sent its task to the model
        )
        try:
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=50)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stdout = first + stdout
    assert process.returncode == 130
    out = subprocess.CompletedProcess(process.args, 130, stdout.decode(), stderr.decode())
    # It says where the events recorded before Ctrl-C are, when there were any.
    line = _one_line(out)
    assert line in (
        "limelight demo: interrupted",
        f"limelight demo: interrupted (the events so far are in {db})",
    )
    assert db.exists() is line.endswith(f"{db})")
    # The live display hid the cursor, and shows it again.
    assert 0 <= stdout.rfind(b"\x1b[?25l") < stdout.rfind(b"\x1b[?25h")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_sigterm_keeps_the_events_and_ends_by_the_signal(backend: str, tmp_path: Path) -> None:
    """SIGTERM (``docker stop``, Kubernetes) mid-run: analytics' handler commits what was
    recorded, then the process ends by the signal, as a process without a handler would (so a
    supervisor sees it was terminated); ``limelight events`` reads what was kept."""
    command = [sys.executable, "-m", "limelight", "sim", "--port", "0", "--ttft", "60"]
    db = tmp_path / "events.db"
    with sim_process(command) as url:
        process, _ = _started_demo(
            *("--base-url", url, "--model", "m", "--backend", backend, "--db", str(db)),
            env={"OPENAI_API_KEY": "sk-any", "FORCE_COLOR": "1", "COLUMNS": "80", "LINES": "24"},
            until=b"thinking",  # a team has sent its task to the model: events recorded
        )
        try:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=50)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == -signal.SIGTERM, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr
    events = _run("events", "--db", str(db))
    assert events.returncode == 0, events.stderr
    assert "llm_request" in events.stdout  # the teams' first calls were recorded and kept
