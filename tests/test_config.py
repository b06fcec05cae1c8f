"""Configuration: file < environment < flags, and clear errors for mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

import learnhub
from learnhub import config
from learnhub.errors import ConfigError


def test_defaults(isolated_env, tmp_path):
    cfg = config.load()
    assert cfg.db is None
    assert cfg.store_url.startswith("sqlite:///") and cfg.store_url.endswith("learnhub/hub.db")
    assert cfg.socket_path == tmp_path / "home" / "run" / "learnhub" / "learnhub.sock"


def test_file_in_working_directory(isolated_env: Path):
    (isolated_env / "learnhub.toml").write_text('db = "sqlite:///x.db"\n[server]\nsocket = "/s"\n')
    cfg = config.load()
    assert cfg.db == "sqlite:///x.db" and cfg.server.socket == "/s"


def test_user_config_file(tmp_path):
    user = tmp_path / "home" / "config" / "learnhub"
    user.mkdir()
    (user / "config.toml").write_text('[server]\ntoken = "t"\n')
    assert config.load().server.token == "t"


def test_working_directory_file_wins_over_user_file(isolated_env, tmp_path):
    user = tmp_path / "home" / "config" / "learnhub"
    user.mkdir()
    (user / "config.toml").write_text('db = "sqlite:///user.db"\n')
    (isolated_env / "learnhub.toml").write_text('db = "sqlite:///cwd.db"\n')
    assert config.load().db == "sqlite:///cwd.db"


def test_environment_overrides_file_and_flags_override_environment(isolated_env, monkeypatch):
    (isolated_env / "learnhub.toml").write_text('db = "sqlite:///file.db"\n')
    monkeypatch.setenv("LEARNHUB_DB", "sqlite:///env.db")
    monkeypatch.setenv("LEARNHUB_SERVER_LISTEN", "127.0.0.1:1")
    cfg = config.load()
    assert cfg.db == "sqlite:///env.db" and cfg.server.listen == "127.0.0.1:1"
    assert config.load({"db": "sqlite:///flag.db"}).db == "sqlite:///flag.db"
    assert config.load({"db": None}).db == "sqlite:///env.db"  # an absent flag changes nothing


def test_learnhub_config_names_a_file(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.toml"
    path.write_text('db = "sqlite:///named.db"\n')
    monkeypatch.setenv("LEARNHUB_CONFIG", str(path))
    assert config.load().db == "sqlite:///named.db"
    monkeypatch.setenv("LEARNHUB_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        config.load()


@pytest.mark.parametrize(
    "text, message",
    [
        ('dbb = "sqlite:///x.db"\n', "unknown key 'dbb'"),
        ('[server]\nsockett = "/s"\n', "unknown key 'server.sockett'"),
        ('[servr]\nsocket = "/s"\n', "unknown key 'servr'"),
        ("db = 5\n", "'db' must be a str, not int"),
        ('server = "x"\n', r"\[server\] must be a table"),
        ("db = \n", "not valid TOML"),
        ("[embed]\napproximate_above = -1\n", "'embed.approximate_above' must be a whole"),
        ('[embed]\napproximate_above = "many"\n', "'embed.approximate_above' must be a int"),
    ],
)
def test_mistakes_in_the_file_name_the_key(isolated_env, text, message):
    (isolated_env / "learnhub.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        config.load()
    assert "learnhub.toml" in str(info.value)


def test_hub_open_uses_the_configured_store(isolated_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNHUB_DB", f"sqlite:///{tmp_path / 'configured.db'}")
    with learnhub.open() as hub:
        assert hub.store.url.endswith("configured.db")


def test_embed_approximate_above_reaches_the_hub(isolated_env, tmp_path, monkeypatch):
    (isolated_env / "learnhub.toml").write_text("[embed]\napproximate_above = 5000\n")
    monkeypatch.setenv("LEARNHUB_DB", f"sqlite:///{tmp_path / 'hub.db'}")
    with learnhub.open() as hub:
        assert hub.embed.approximate_above == 5000
    monkeypatch.setenv("LEARNHUB_EMBED_APPROXIMATE_ABOVE", "70")
    with learnhub.open() as hub:
        assert hub.embed.approximate_above == 70
