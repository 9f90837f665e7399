"""A driver module whose SDK is not installed, for the factory's error message."""

import definitely_not_an_installed_sdk  # noqa: F401
