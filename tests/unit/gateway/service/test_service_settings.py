"""Settings: env prefix, TOML file, precedence, and refusal of unsafe values with typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from safesynth.gateway.settings import (
    GatewaySettings,
    InvalidSettings,
    UnsafeSettings,
    check_permissions,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SAFESYNTH_HOME",
        "SAFESYNTH_CONFIG",
        "SAFESYNTH_PORT",
        "SAFESYNTH_HOST",
        "SAFESYNTH_NOISE_SEED",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_bind_loopback(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert settings.host == "127.0.0.1"
    assert settings.home == tmp_path
    assert settings.ledger_path == tmp_path / "ledger.sqlite"


def test_env_prefix_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("port = 9001\njob_workers = 3\n")
    monkeypatch.setenv("SAFESYNTH_PORT", "9002")
    settings = load_settings(config, home=tmp_path)
    assert settings.port == 9002  # env beats file
    assert settings.job_workers == 3  # file beats default
    assert load_settings(config, home=tmp_path, port=9003).port == 9003  # explicit beats env


def test_home_config_toml_is_read(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("rate_limit_burst = 7\n")
    assert load_settings(home=tmp_path).rate_limit_burst == 7


def test_unknown_key_in_file_is_invalid(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(InvalidSettings) as err:
        load_settings(config, home=tmp_path)
    assert err.value.code == "invalid_settings"


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings):
        load_settings(tmp_path / "nope.toml", home=tmp_path)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org", "::"])
def test_public_bind_without_tls_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(UnsafeSettings) as err:
        load_settings(home=tmp_path, host=host)
    assert err.value.code == "unsafe_settings"
    assert err.value.reason == "unsafe_bind"


def test_public_bind_with_tls_is_allowed(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, host="0.0.0.0", tls_certfile=tmp_path / "c.pem", tls_keyfile=tmp_path / "k.pem"
    )
    assert settings.is_tls


def test_half_tls_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings):
        load_settings(home=tmp_path, tls_certfile=tmp_path / "c.pem")


def test_seeded_noise_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFESYNTH_NOISE_SEED", "42")
    with pytest.raises(UnsafeSettings) as err:
        load_settings(home=tmp_path)
    assert err.value.reason == "seeded_noise"


def test_wrong_type_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings) as err:
        load_settings(home=tmp_path, port="not-a-port")
    assert err.value.setting == "port"


@pytest.mark.parametrize("target", ["home", "key", "datasets"])
def test_world_readable_paths_are_refused(tmp_path: Path, target: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    settings = GatewaySettings(home=home)
    path = {"home": home, "key": settings.signing_key_path, "datasets": settings.datasets_dir}[target]
    if target == "key":
        path.write_bytes(b"x")
    elif target == "datasets":
        path.mkdir()
    path.chmod(0o755 if target != "key" else 0o644)
    with pytest.raises(UnsafeSettings) as err:
        check_permissions(settings)
    assert err.value.reason == "insecure_permissions"


def test_private_paths_pass(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    check_permissions(GatewaySettings(home=home))
