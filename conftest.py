"""Root pytest configuration: the skip policy (tests/required.py) applies to every test in the repository."""

from hypothesis import HealthCheck, settings

pytest_plugins = ("tests.required",)

# Property tests check properties, not speed: a loaded machine must not turn an example into a failure.
settings.register_profile("pyroclast", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pyroclast")
