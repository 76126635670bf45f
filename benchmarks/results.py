"""Writing benchmark results: one JSON file per run, so runs can be compared later."""

import os

from dcgan_dist import files


def write_json(path, results):
    """Writes `results` to `path` (creating its folder); does nothing if path is empty."""
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    files.write_json(path, results)
