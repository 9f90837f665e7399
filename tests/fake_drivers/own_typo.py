"""A driver module importing a misspelt module of its own package: the driver is broken, no SDK is missing."""

import tests.fake_drivers.no_such_helper  # noqa: F401
