"""The `drift` command.

Every command reads ``DRIFT_HOME``, ``DRIFT_DATABASE_URL`` and ``DRIFT_CONFIG``
from the environment. Errors are one clear line on stderr and a non-zero exit.
Commands live in one module per topic; importing a module registers its commands
on :data:`drift.cli.app.app`.
"""

from __future__ import annotations

import logging
import sys
import warnings

# importing a module registers its commands, in this order in `drift --help`
from drift.cli import nightly, calibration, events, explain, performance, operate, reporting, alerts  # noqa: F401  # isort: skip
from drift.cli.app import app, error
from drift.config import ConfigError
from drift.model_files import first_line

__all__ = ["app", "entrypoint"]


def quiet_third_parties() -> None:
    """Third-party noise a person cannot act on: torch.export's LeafSpec deprecation on every
    adapt/meta-train, FAISS's loader lines (which SIMD build it tried) under ``-v``."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
    logging.getLogger("faiss").setLevel(logging.WARNING)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def entrypoint() -> None:
    """The console script: expected failures are one line on stderr, not a traceback."""
    from sqlalchemy.exc import OperationalError
    from typer import Abort
    from typer._click.exceptions import ClickException

    from drift.batch import InvalidBatchError
    from drift.model_files import ModelFileError

    quiet_third_parties()
    try:
        code = app(standalone_mode=False)
    except ClickException as exc:  # a bad argument or option: click's message, one line
        error(exc.format_message())
        sys.exit(exc.exit_code)
    except (Abort, KeyboardInterrupt):
        error("aborted")
        sys.exit(130)
    except ConfigError as exc:
        error(first_line(exc))
        sys.exit(2)
    except (FileNotFoundError, InvalidBatchError, ModelFileError, OperationalError) as exc:
        error(first_line(exc))
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
