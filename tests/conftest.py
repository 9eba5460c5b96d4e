"""Shared fixtures: a real Mosquitto broker and the snmpsim simulator serving the recorded
devices in ../shared/fixtures/snmprec."""

pytest_plugins = [
    "tests.support.broker",
    "tests.support.databases",
    "tests.support.postgres",
    "tests.support.snmpsim",
]
