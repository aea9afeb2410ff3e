"""The `drift` command.

Every command reads ``DRIFT_HOME``, ``DRIFT_DATABASE_URL`` and ``DRIFT_CONFIG``
from the environment. Errors are one clear line on stderr and a non-zero exit.
Commands live in one module per topic; importing a module registers its commands
on :data:`drift.cli.app.app`.
"""

from __future__ import annotations

import sys

# importing a module registers its commands, in this order in `drift --help`
from drift.cli import nightly, calibration, events, reporting  # noqa: F401  # isort: skip
from drift.cli.app import app, error
from drift.config import ConfigError
from drift.model_files import first_line

__all__ = ["app", "entrypoint"]


def entrypoint() -> None:
    """The console script: expected failures are one line on stderr, not a traceback."""
    from sqlalchemy.exc import OperationalError

    from drift.batch import InvalidBatchError
    from drift.model_files import ModelFileError

    try:
        app()
    except ConfigError as exc:
        error(first_line(exc))
        sys.exit(2)
    except (FileNotFoundError, InvalidBatchError, ModelFileError, OperationalError) as exc:
        error(first_line(exc))
        sys.exit(1)
