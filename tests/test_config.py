"""Configuration: the CortexClaude traitlets and where the Snowflake connection comes from."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader, PyFileConfigLoader

from jupyter_cortex_claude.config import CORTEX_DOCUMENTED_BETAS, CortexClaude
from jupyter_cortex_claude.snowflake.connection import resolve_connection
from jupyter_cortex_claude.snowflake.connections_toml import find_connections_toml
from jupyter_cortex_claude.snowflake.errors import ConfigurationError

CONNECTIONS_TOML = """
default_connection_name = "dev"

[default]
account = "defaultorg-defaultacct"
user = "default_user"
token = "pat-from-default-section"

[dev]
account = "myorg-dev_acct"
user = "dev_user"
role = "ANALYST"
token = "pat-from-dev-section"

[prod]
account = "xy12345.us-east-1"
user = "prod_user"
private_key_path = "~/keys/prod.p8"
private_key_passphrase = "prod-passphrase"
port = "8443"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh home directory: nothing of the real machine's Snowflake setup can leak in."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def write_connections(directory: Path, text: str = CONNECTIONS_TOML) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "connections.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def configured(**traits: Any) -> CortexClaude:
    return CortexClaude(config=Config({"CortexClaude": traits}))


# --- the traitlets --------------------------------------------------------------------------------


def test_defaults_are_the_documented_cortex_limits() -> None:
    settings = CortexClaude()
    assert settings.default_model == "claude-sonnet-4-6"
    assert settings.family_models == {
        "opus": "claude-opus-4-6",
        "sonnet": "claude-sonnet-4-6",
        "haiku": "claude-haiku-4-5",
    }
    assert settings.output_token_ceiling == 16384
    assert settings.max_request_bytes == 20 * 1024 * 1024
    assert settings.beta_allowlist == CORTEX_DOCUMENTED_BETAS
    assert "claude-code-20250219" not in settings.beta_allowlist
    assert settings.drop_billing_header and settings.fold_system_messages
    assert (settings.connect_timeout, settings.read_timeout) == (10.0, 300.0)
    assert (settings.max_retries, settings.retry_backoff) == (3, 0.5)
    assert settings.protocol == "https" and settings.port == 0
    assert settings.gateway_key == "" and settings.demo is False
    assert settings.claude_command == "claude"


def test_a_user_sets_options_in_jupyter_server_config_and_on_the_command_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "jupyter_server_config.py").write_text(
        "c.CortexClaude.default_model = 'claude-opus-4-6'\n"
        "c.CortexClaude.model_map = {'claude-opus-5-5': 'claude-opus-4-6'}\n"
        "c.CortexClaude.beta_allowlist = ['effort-2025-11-24']\n"
    )
    file_config = PyFileConfigLoader("jupyter_server_config.py", path=str(tmp_path)).load_config()
    cli_config = KVArgParseConfigLoader(
        ["--CortexClaude.max_retries=5", "--CortexClaude.demo=True"]
    ).load_config()
    file_config.merge(cli_config)

    settings = CortexClaude(config=file_config)

    assert settings.default_model == "claude-opus-4-6"
    assert settings.model_map == {"claude-opus-5-5": "claude-opus-4-6"}
    assert settings.beta_allowlist == ["effort-2025-11-24"]
    assert settings.max_retries == 5
    assert settings.demo is True


def test_every_setting_is_configurable_and_explained() -> None:
    for name, trait in CortexClaude.class_traits(config=True).items():
        assert trait.help and len(trait.help) > 20, f"{name} has no help a user can read"


# --- finding connections.toml ---------------------------------------------------------------------


def test_connections_toml_is_found_in_snowflake_home(home: Path, tmp_path: Path) -> None:
    snowflake_home = tmp_path / "custom-snowflake-home"
    expected = write_connections(snowflake_home)
    write_connections(home / ".snowflake")  # shadowed: SNOWFLAKE_HOME wins

    found = find_connections_toml({"HOME": str(home), "SNOWFLAKE_HOME": str(snowflake_home)})

    assert found == expected


def test_connections_toml_is_found_in_dot_snowflake_then_in_dot_config(home: Path) -> None:
    in_config = write_connections(home / ".config" / "snowflake")
    assert find_connections_toml({"HOME": str(home)}) == in_config

    in_dot_snowflake = write_connections(home / ".snowflake")
    assert find_connections_toml({"HOME": str(home)}) == in_dot_snowflake


def test_a_missing_snowflake_home_falls_back_to_the_config_directory(
    home: Path, tmp_path: Path
) -> None:
    xdg = tmp_path / "xdg"
    expected = write_connections(xdg / "snowflake")
    environ = {
        "HOME": str(home),
        "SNOWFLAKE_HOME": str(tmp_path / "absent"),
        "XDG_CONFIG_HOME": str(xdg),
    }

    assert find_connections_toml(environ) == expected


def test_no_connections_toml_anywhere(home: Path) -> None:
    assert find_connections_toml({"HOME": str(home)}) is None


# --- choosing the entry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trait_name", "env_name", "top_level_line", "expected_user"),
    [
        ("prod", "default", 'default_connection_name = "dev"', "prod_user"),
        ("", "prod", 'default_connection_name = "dev"', "prod_user"),
        ("", "", 'default_connection_name = "dev"', "dev_user"),
        ("", "", "", "default_user"),
    ],
    ids=["traitlet", "environment", "top-level-default_connection_name", "section-default"],
)
def test_the_connection_entry_is_chosen_by_name_with_documented_precedence(
    home: Path, trait_name: str, env_name: str, top_level_line: str, expected_user: str
) -> None:
    text = CONNECTIONS_TOML.replace('default_connection_name = "dev"', top_level_line)
    write_connections(home / ".snowflake", text)
    environ = {"HOME": str(home)}
    if env_name:
        environ["SNOWFLAKE_DEFAULT_CONNECTION_NAME"] = env_name

    connection = resolve_connection(configured(connection_name=trait_name), environ)

    assert connection is not None
    assert connection.user == expected_user


def test_default_connection_name_in_config_toml_is_honoured_like_the_connector(home: Path) -> None:
    directory = home / ".snowflake"
    write_connections(directory, CONNECTIONS_TOML.replace('default_connection_name = "dev"', ""))
    (directory / "config.toml").write_text('default_connection_name = "prod"\n')

    connection = resolve_connection(CortexClaude(), {"HOME": str(home)})

    assert connection is not None and connection.user == "prod_user"


def test_a_named_connection_that_does_not_exist_lists_the_ones_that_do(home: Path) -> None:
    write_connections(home / ".snowflake")

    with pytest.raises(ConfigurationError) as caught:
        resolve_connection(configured(connection_name="staging"), {"HOME": str(home)})

    message = str(caught.value)
    assert "'staging'" in message and "default, dev, prod" in message


# --- precedence, field by field -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_traitlets", "in_environment", "in_toml", "expected", "expected_source"),
    [
        (None, None, "toml_user", "toml_user", "connections.toml [dev]"),
        (None, "env_user", "toml_user", "env_user", "environment"),
        ("trait_user", "env_user", "toml_user", "trait_user", "traitlets"),
        ("trait_user", None, "toml_user", "trait_user", "traitlets"),
        (None, "env_user", None, "env_user", "environment"),
    ],
)
def test_traitlets_beat_environment_which_beats_connections_toml(
    home: Path,
    in_traitlets: str | None,
    in_environment: str | None,
    in_toml: str | None,
    expected: str,
    expected_source: str,
) -> None:
    user_line = f'user = "{in_toml}"' if in_toml else ""
    write_connections(
        home / ".snowflake",
        f'[dev]\naccount = "myorg-acct"\ntoken = "pat-toml"\n{user_line}\n',
    )
    environ = {"HOME": str(home), "SNOWFLAKE_DEFAULT_CONNECTION_NAME": "dev"}
    if in_environment:
        environ["SNOWFLAKE_USER"] = in_environment
    settings = configured(user=in_traitlets) if in_traitlets else CortexClaude()

    connection = resolve_connection(settings, environ)

    assert connection is not None
    assert connection.user == expected
    assert expected_source in connection.source


def test_fields_from_different_sources_are_combined(home: Path) -> None:
    write_connections(home / ".snowflake")  # [dev] chosen by default_connection_name
    environ = {"HOME": str(home), "SNOWFLAKE_USER": "env_user"}

    connection = resolve_connection(configured(role="TRAIT_ROLE"), environ)

    assert connection is not None
    assert (connection.account, connection.user, connection.role) == (
        "myorg-dev_acct",
        "env_user",
        "TRAIT_ROLE",
    )
    assert connection.source == "traitlets, environment, connections.toml [dev]"


def test_environment_variables_from_the_process_are_read(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SNOWFLAKE_HOME", raising=False)
    monkeypatch.delenv("SNOWFLAKE_DEFAULT_CONNECTION_NAME", raising=False)
    for name in list(os.environ):
        if name.startswith("SNOWFLAKE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "myorg-envacct")
    monkeypatch.setenv("SNOWFLAKE_PAT", "pat-from-alias")
    monkeypatch.setenv("SNOWFLAKE_ROLE", "ENV_ROLE")

    connection = resolve_connection(CortexClaude())

    assert connection is not None
    assert connection.account == "myorg-envacct"
    assert connection.token == "pat-from-alias"
    assert connection.authenticator == "programmatic_access_token"
    assert connection.source == "environment"


def test_a_traitlet_set_to_its_default_in_a_config_file_still_wins(home: Path) -> None:
    environ = {
        "HOME": str(home),
        "SNOWFLAKE_ACCOUNT": "a",
        "SNOWFLAKE_TOKEN": "t",
        "SNOWFLAKE_PROTOCOL": "http",
    }

    assert resolve_connection(CortexClaude(), environ).protocol == "http"  # type: ignore[union-attr]
    explicit = resolve_connection(configured(protocol="https"), environ)
    assert explicit is not None and explicit.protocol == "https"


# --- what the connection says ---------------------------------------------------------------------


def test_nothing_configured_means_the_offline_demo(home: Path) -> None:
    assert resolve_connection(CortexClaude(), {"HOME": str(home)}) is None


@pytest.mark.parametrize(
    ("account", "expected_host"),
    [
        ("myorg-myacct", "myorg-myacct.snowflakecomputing.com"),
        ("MyOrg-My_Acct", "myorg-my-acct.snowflakecomputing.com"),
        ("xy12345.us-east-1", "xy12345.us-east-1.snowflakecomputing.com"),
        ("myorg-myacct.snowflakecomputing.com", "myorg-myacct.snowflakecomputing.com"),
    ],
)
def test_the_host_is_derived_from_the_account(home: Path, account: str, expected_host: str) -> None:
    environ = {"HOME": str(home), "SNOWFLAKE_ACCOUNT": account, "SNOWFLAKE_TOKEN": "t"}

    connection = resolve_connection(CortexClaude(), environ)

    assert connection is not None
    assert connection.host == expected_host
    assert connection.base_url == f"https://{expected_host}"


def test_an_emulator_url_as_host_sets_protocol_and_port(home: Path) -> None:
    connection = resolve_connection(
        configured(host="http://127.0.0.1:1234", token="t"), {"HOME": str(home)}
    )

    assert connection is not None
    assert connection.base_url == "http://127.0.0.1:1234"
    assert connection.account is None


def test_connections_toml_key_aliases_and_a_string_port(home: Path) -> None:
    write_connections(home / ".snowflake")

    connection = resolve_connection(configured(connection_name="prod"), {"HOME": str(home)})

    assert connection is not None
    assert connection.authenticator == "snowflake_jwt"
    assert connection.private_key_file == str(home / "keys" / "prod.p8")
    assert connection.private_key_file_pwd == "prod-passphrase"
    assert connection.port == 8443
    assert connection.base_url == "https://xy12345.us-east-1.snowflakecomputing.com:8443"


def test_a_token_in_the_environment_overrides_a_key_pair_from_connections_toml(home: Path) -> None:
    write_connections(home / ".snowflake")
    environ = {"HOME": str(home), "SNOWFLAKE_TOKEN": "pat-from-env"}

    connection = resolve_connection(configured(connection_name="prod"), environ)

    assert connection is not None
    assert connection.authenticator == "programmatic_access_token"
    assert connection.token == "pat-from-env"


def test_an_account_without_a_credential_says_how_to_add_one(home: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_connection(configured(account="myorg-acct"), {"HOME": str(home)})

    assert "SNOWFLAKE_TOKEN" in str(caught.value)
    assert "SNOWFLAKE_PRIVATE_KEY_FILE" in str(caught.value)


def test_a_password_only_entry_means_a_password_login_and_hides_the_password(home: Path) -> None:
    write_connections(
        home / ".snowflake", '[default]\naccount = "a"\nuser = "u"\npassword = "pw-value"\n'
    )

    connection = resolve_connection(CortexClaude(), {"HOME": str(home)})

    assert connection is not None and connection.authenticator == "snowflake"
    assert "pw-value" not in repr(connection) and "pw-value" not in str(connection.describe())


def test_a_key_pair_without_a_user_is_refused(home: Path) -> None:
    environ = {"HOME": str(home), "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_PRIVATE_KEY_PATH": "/k.p8"}

    with pytest.raises(ConfigurationError, match="SNOWFLAKE_USER"):
        resolve_connection(CortexClaude(), environ)


def test_a_token_without_an_account_is_refused(home: Path) -> None:
    with pytest.raises(ConfigurationError, match="no account"):
        resolve_connection(CortexClaude(), {"HOME": str(home), "SNOWFLAKE_TOKEN": "t"})


@pytest.mark.parametrize(
    ("authenticator", "kind"),
    [("oauth", "oauth"), ("OAUTH", "oauth"), ("externalbrowser", "externalbrowser")],
)
def test_connector_and_oauth_authenticators_are_normalized(
    home: Path, authenticator: str, kind: str
) -> None:
    environ = {"HOME": str(home), "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u"}
    environ["SNOWFLAKE_TOKEN"] = "t"

    connection = resolve_connection(configured(authenticator=authenticator), environ)

    assert connection is not None and connection.authenticator == kind


def test_a_password_login_without_a_password_says_what_to_set(home: Path) -> None:
    environ = {"HOME": str(home), "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u"}

    with pytest.raises(ConfigurationError, match="SNOWFLAKE_PASSWORD"):
        resolve_connection(configured(authenticator="snowflake"), environ)


def test_an_unknown_authenticator_lists_the_known_ones(home: Path) -> None:
    environ = {"HOME": str(home), "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_TOKEN": "t"}

    with pytest.raises(ConfigurationError, match="snowflake_jwt"):
        resolve_connection(configured(authenticator="kerberos"), environ)


def test_an_explicit_authenticator_is_normalized(home: Path) -> None:
    environ = {"HOME": str(home), "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_TOKEN": "t"}
    environ["SNOWFLAKE_AUTHENTICATOR"] = "PROGRAMMATIC_ACCESS_TOKEN"

    connection = resolve_connection(CortexClaude(), environ)

    assert connection is not None and connection.authenticator == "programmatic_access_token"


def test_a_bad_port_is_reported_with_its_source(home: Path) -> None:
    environ = {"HOME": str(home), "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_TOKEN": "t"}
    environ["SNOWFLAKE_PORT"] = "https"

    with pytest.raises(ConfigurationError, match="environment"):
        resolve_connection(CortexClaude(), environ)


def test_invalid_toml_is_reported_with_its_path(home: Path) -> None:
    path = write_connections(home / ".snowflake", '[dev]\ntoken = "secret-in-broken-file\n')

    with pytest.raises(ConfigurationError) as caught:
        resolve_connection(CortexClaude(), {"HOME": str(home)})

    assert str(path) in str(caught.value)
    assert "secret-in-broken-file" not in str(caught.value)


def test_a_connections_toml_readable_by_others_is_warned_about(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_connections(home / ".snowflake")
    path.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="jupyter_cortex_claude.snowflake.connection"):
        resolve_connection(CortexClaude(), {"HOME": str(home)})

    assert f"chmod 0600 {path}" in caplog.text


def test_a_private_connections_toml_is_not_warned_about(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_connections(home / ".snowflake")

    with caplog.at_level(logging.WARNING, logger="jupyter_cortex_claude.snowflake.connection"):
        resolve_connection(CortexClaude(), {"HOME": str(home)})

    assert "chmod" not in caplog.text


def test_secrets_never_show_in_repr_or_describe(home: Path) -> None:
    write_connections(home / ".snowflake")
    environ = {"HOME": str(home), "SNOWFLAKE_PRIVATE_KEY_RAW": "-----BEGIN PRIVATE KEY-----x"}

    for name in ("dev", "prod"):
        connection = resolve_connection(configured(connection_name=name), environ)
        assert connection is not None
        shown = repr(connection) + repr(connection.describe())
        for secret in ("pat-from-dev-section", "prod-passphrase", "BEGIN PRIVATE KEY"):
            assert secret not in shown
        assert connection.describe()["account"] == connection.account
