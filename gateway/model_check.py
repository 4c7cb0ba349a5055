"""The check every policy load runs on the classifier models its routes name (``policies.loader.ModelCheck``).

The policies layer cannot load models (that is the routes layer, above which it
sits), so the gateway hands this to ``policy check``, ``serve`` and the hot
reload: a policy naming a missing or unreadable model file is refused there,
with its file and line, instead of crashing the start or failing every request.
"""

from __future__ import annotations

from pathlib import Path

from routes import SHIPPED_MODELS, load_classifier


def model_problem(model: str, policies_dir: Path) -> str | None:
    """Why ``classifier.model`` cannot be loaded the way the gateway loads it, or None.

    A model file is loaded (cached per process, so the first request pays nothing more);
    the shipped names are files of the installed package and are not re-read here, which
    keeps ``policy check`` instant on the default policies.
    """
    if model in SHIPPED_MODELS:
        return None
    path = policies_dir / model
    if not path.is_file():
        return (f"cannot load {path}: no such file (give a shipped model, "
                f"{' or '.join(SHIPPED_MODELS)}, or a path relative to the policy directory)")
    try:
        load_classifier(path)
    except (ValueError, OSError) as exc:  # ModelFileError is a ValueError
        return f"cannot load {path}: {exc}"
    return None
