from drift.cli import entrypoint

entrypoint()
