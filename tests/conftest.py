"""Shared pytest configuration: markers, so slow groups can be deselected, e.g.

    pytest tests -m "not notebooks"            # skip running every notebook through a Jupyter kernel
    pytest tests -m "not notebooks and not browser"
"""


def pytest_configure(config):
    config.addinivalue_line('markers', 'notebooks: runs every notebook in nbs/ through a real Jupyter kernel (slow)')
    config.addinivalue_line('markers', 'distributed: starts torchrun jobs of two CPU processes (gloo)')
    config.addinivalue_line('markers', 'browser: builds the docs and opens them in headless Chromium')
