"""Import boundaries: the numerics (stats, gate, calibration) know no database and no pipeline."""

from __future__ import annotations

import json
import subprocess
import sys


def test_numerics_import_no_store_or_pipeline_module() -> None:
    code = (
        "import json, sys; import drift.gate, drift.stats, drift.calibration; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith(('drift.store', 'drift.pipeline', 'sqlalchemy')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
