"""The module-wide in-process server, for the tests here that share one."""

from tests.server.serving import server  # noqa: F401 (a fixture)
