"""How long the reliability tests run.

``BLOBDRIVERS_SCALE`` (a whole number, default 1) multiplies the examples of the
model-based and path fuzzing tests, the trials of the crash tests and the rounds
of the fault-injection tests: the CI run uses 1, a long run say 10. The soak has
its own knob, ``BLOBDRIVERS_SOAK_SECONDS``.
"""

from __future__ import annotations

import os

SCALE = max(1, int(os.environ.get("BLOBDRIVERS_SCALE", "1")))
