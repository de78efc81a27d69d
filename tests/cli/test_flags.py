"""Flags built from the option declarations (synth/cli/flags.py), as `synth serve` builds them
from ServerOptions and ServiceConfig: defaults, SYNTH_<NAME> variables (switches included), and
the configs' own checks reported as usage errors naming the option. Parsing only: no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.cli import build_parser
from synth.cli.flags import config_from
from synth.errors import ConfigError
from synth_server import ServerOptions, ServiceConfig


@pytest.fixture
def no_synth_env(monkeypatch):
    import os

    for name in [k for k in os.environ if k.startswith("SYNTH_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def _serve(*words: str):
    return build_parser().parse_args(["serve", *words])


def test_serve_defaults_are_the_configs(no_synth_env):
    args = _serve()
    options = config_from(args, ServerOptions)
    assert (options.host, options.port, options.auth_token, options.require_auth) == (
        "127.0.0.1",
        50051,
        None,
        False,
    )
    assert options.metrics_port == 9090 and options.tls_cert is None and options.drain_seconds == 30.0
    config = config_from(args, ServiceConfig, out=Path("ds"))
    assert (config.max_in_flight, config.max_streams, config.stall_seconds, config.log_json) == (
        64,
        16,
        30.0,
        False,
    )


def test_environment_variables_set_the_defaults_and_flags_win(no_synth_env):
    env = no_synth_env
    env.setenv("SYNTH_PORT", "6000")
    env.setenv("SYNTH_METRICS_PORT", "-1")
    env.setenv("SYNTH_MAX_STREAMS", "3")
    env.setenv("SYNTH_LOG_JSON", "true")
    env.setenv("SYNTH_REQUIRE_AUTH", "0")
    env.setenv("SYNTH_AUTH_TOKEN", "")
    env.setenv("SYNTH_TLS_CERT", "cert.pem")
    env.setenv("SYNTH_TLS_KEY", "key.pem")
    args = _serve("--port", "7000")
    options = config_from(args, ServerOptions)
    assert options.port == 7000 and options.metrics_port is None  # the flag wins; -1 is off
    assert options.require_auth is False and options.auth_token is None  # "0" is off; "" is no token
    assert options.tls_cert == Path("cert.pem") and options.tls_key == Path("key.pem")
    config = config_from(args, ServiceConfig, out=Path("ds"))
    assert config.max_streams == 3 and config.log_json is True
    env.setenv("SYNTH_LOG_JSON", "0")
    assert _serve().log_json is False


def test_the_configs_checks_name_the_option(no_synth_env):
    with pytest.raises(ConfigError) as err:
        config_from(_serve("--tls-cert", "cert.pem"), ServerOptions)
    assert err.value.option == "tls_cert" and err.value.usage and "go together" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config_from(_serve("--require-auth", "--auth-token", "   "), ServerOptions)
    assert err.value.option == "auth_token" and "refusing to serve" in str(err.value)
    for flags, option in (
        (("--max-streams", "0"), "max_streams"),
        (("--stall-seconds", "0"), "stall_seconds"),
    ):
        with pytest.raises(ConfigError) as err:
            config_from(_serve(*flags), ServiceConfig, out=Path("ds"))
        assert err.value.option == option
    with pytest.raises(SystemExit):  # not a number: argparse's own usage error
        _serve("--port", "eighty")
