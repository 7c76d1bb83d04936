"""``limelight.load_dotenv``: the nearest `.env` file, an explicit one, and who wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import limelight
from limelight.errors import ConfigError

NAME = "LIMELIGHT_DOTENV_TEST_VALUE"
OTHER = "LIMELIGHT_DOTENV_TEST_OTHER"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test variables unset, and removed again afterwards whatever a test loaded."""
    for name in (NAME, OTHER):
        monkeypatch.setenv(name, "placeholder")  # recorded as absent before: undone after
        monkeypatch.delenv(name)


def _no_dotenv_above(directory: Path) -> bool:
    return not any((parent / ".env").is_file() for parent in (directory, *directory.parents))


def test_the_nearest_env_file_is_found_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(f"{NAME}=from-file\nexport {OTHER}='quoted value'\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert limelight.load_dotenv() is True

    assert os.environ[NAME] == "from-file"
    assert os.environ[OTHER] == "quoted value"


def test_no_env_file_anywhere_above_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _no_dotenv_above(tmp_path):
        pytest.skip(f"a .env file above {tmp_path} would be found")
    monkeypatch.chdir(tmp_path)
    assert limelight.load_dotenv() is False

    assert NAME not in os.environ


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_explicit_path_that_is_no_file_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "settings.env"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(ConfigError, match=r"no \.env file at .*settings\.env"):
        limelight.load_dotenv(path)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"NAME=\xff\xfe not utf-8\n")
    with pytest.raises(ConfigError, match=r"cannot read the \.env file"):
        limelight.load_dotenv(path)


def test_variables_already_set_win_unless_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    path = tmp_path / "custom.env"
    path.write_text(f"{NAME}=from-file\n{OTHER}=other-from-file\n")
    monkeypatch.setenv(NAME, "from-environment")
    assert limelight.load_dotenv(path) is True
    assert os.environ[NAME] == "from-environment"
    assert os.environ[OTHER] == "other-from-file"
    assert limelight.load_dotenv(str(path), override=True) is True
    assert os.environ[NAME] == "from-file"
