"""Settings fail fast and show the bad value."""

from __future__ import annotations

import pytest

from rag.config import Settings, load_settings
from rag.errors import ConfigError
from ui.cli import main


def test_env_values_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("BYLINE_TOP_K", "4")
    monkeypatch.setenv("BYLINE_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.top_k == 4 and s.resolved_chroma_path == tmp_path / "chroma"


@pytest.mark.parametrize("env,value,shown", [
    ("BYLINE_GENERATOR", "gpt5", "'gpt5'"),
    ("BYLINE_TOP_K", "zero", "'zero'"),
    ("BYLINE_CHROMA_URL", "localhost:8000", "localhost:8000"),
    ("BYLINE_EMBEDDER", "bert", "'bert'"),
])
def test_bad_env_value_names_variable_and_value(monkeypatch: pytest.MonkeyPatch, env: str, value: str, shown: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert env in str(err.value) and shown in str(err.value)


def test_unknown_field_and_inconsistent_values_are_rejected() -> None:
    with pytest.raises(ConfigError, match="no_such_knob"):
        load_settings(no_such_knob=1)
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_settings(chunk_size=64, chunk_overlap=64)


def test_every_field_is_described() -> None:
    assert all(f.description for f in Settings.model_fields.values())


def test_cli_prints_a_friendly_config_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BYLINE_TOP_K", "-3")
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert "BYLINE_TOP_K" in err and "-3" in err and "Traceback" not in err
