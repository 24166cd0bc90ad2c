from __future__ import annotations

from pathlib import Path

import pytest

from control.settings import SettingsProblem, load_settings


def test_defaults_live_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'devyard.db'}"
    assert settings.effective_object_store_url == (tmp_path / "objects").as_uri()
    assert settings.substrate == "local" and settings.port == 8421


def test_toml_then_environment_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "devyard.toml").write_text('port = 9000\nsubstrate = "docker"\nhost = "0.0.0.0"\n')
    settings = load_settings(tmp_path)
    assert (settings.port, settings.substrate, settings.host) == (9000, "docker", "0.0.0.0")
    monkeypatch.setenv("DEVYARD_PORT", "9100")
    assert load_settings(tmp_path).port == 9100
    assert load_settings(tmp_path, port=9200).port == 9200


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVYARD_DATA_DIR", str(tmp_path / "d"))
    assert load_settings().data_dir == tmp_path / "d"


def test_malformed_toml_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "devyard.toml").write_text("port = = 3\n")
    with pytest.raises(SettingsProblem, match=r"devyard.toml is not valid TOML"):
        load_settings(tmp_path)


@pytest.mark.parametrize(("text", "field"), [('substrate = "mars"', "substrate"), ("port = 99999", "port")])
def test_invalid_values_name_the_setting(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "devyard.toml").write_text(text + "\n")
    with pytest.raises(SettingsProblem, match=f"Setting '{field}' is invalid"):
        load_settings(tmp_path)


def test_single_sign_on_settings_are_checked_and_the_secret_is_never_shown(tmp_path: Path) -> None:
    from control.settings import SettingsProblem, load_settings

    good = load_settings(
        tmp_path, oidc_issuer="https://login.example.com/", oidc_client_id="devyard", oidc_client_secret="s3cr3t-v4lue"
    )
    assert good.sso_enabled and good.oidc_issuer == "https://login.example.com"
    assert "s3cr3t-v4lue" not in repr(good) and "s3cr3t-v4lue" not in str(good)
    assert load_settings(tmp_path, oidc_issuer="http://127.0.0.1:9400", oidc_client_id="d").sso_enabled
    assert not load_settings(tmp_path).sso_enabled
    for bad, words in (
        ({"oidc_issuer": "https://login.example.com"}, "needs both oidc_issuer and oidc_client_id"),
        ({"oidc_issuer": "http://login.example.com", "oidc_client_id": "d"}, "must be https://"),
        ({"oidc_issuer": "login.example.com", "oidc_client_id": "d"}, "is not an http:// or https:// URL"),
        ({"oidc_issuer": "https://x.example", "oidc_client_id": "d", "oidc_scopes": "email"}, "include 'openid'"),
        ({"oidc_group_roles": {"g": "agent"}}, "oidc_group_roles"),
    ):
        with pytest.raises(SettingsProblem) as caught:
            load_settings(tmp_path, oidc_client_secret="s3cr3t-v4lue", **bad)
        assert words in str(caught.value) and "s3cr3t-v4lue" not in str(caught.value)
