"""Markers of the harness's own tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "valgrind: runs programs under valgrind (slow; deselect with -m 'not valgrind')")
