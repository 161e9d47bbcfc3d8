"""Root pytest configuration: the skip policy (tests/required.py) applies to every test in the repository."""

pytest_plugins = ("tests.required",)
