"""`--config FILE`: a sweep from a saved config (OUT/combo_XXX/config.json, what every sweep
writes), so a run can be repeated or varied without retyping its settings.

The file's settings that differ from the task's defaults become `--set` items placed before the
command line's own, so `--set` and `--grid` given with --config win over the file.
"""

from __future__ import annotations

import json
import pathlib


def load(path) -> dict:
    """A saved config: a JSON object with ENV_NAME, refused by name otherwise."""
    path = pathlib.Path(path)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--config {path}: cannot read it as JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("ENV_NAME"), str):
        raise ValueError(
            f"--config {path}: expected a sweep's config.json (a JSON object with ENV_NAME), got "
            f"{type(config).__name__}{'' if not isinstance(config, dict) else ' without ENV_NAME'}"
        )
    return config


def set_items(config: dict, defaults: dict) -> list[str]:
    """The settings of `config` that differ from `defaults` (the task's), as `KEY=VALUE` items
    for --set, in the file's order. ENV_NAME is left out: it is the sweep's --env."""
    return [
        f"{key}={value}"
        for key, value in config.items()
        if key != "ENV_NAME" and (key not in defaults or defaults[key] != value)
    ]
