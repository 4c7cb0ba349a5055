"""Policy files: the schema, the loader with precise errors, and hot reload.

The gateway imports only what ``__all__`` names; this package never imports ``gateway``.
"""

from policies.loader import PolicyIssue, PolicyLoadError, load_policies
from policies.reloader import PolicyHolder, ReloadResult
from policies.resolution import Resolution, public_names, resolve
from policies.schema import (
    ARM_NAMES,
    Alternate,
    Arm,
    ArmName,
    Breaker,
    Experiment,
    Fallback,
    Knowledge,
    PolicySet,
    Price,
    Retry,
    Route,
    Shadow,
    Target,
    Trigger,
    Variant,
)

__all__ = [
    "ARM_NAMES",
    "Alternate",
    "Arm",
    "ArmName",
    "Breaker",
    "Experiment",
    "Fallback",
    "Knowledge",
    "PolicyHolder",
    "PolicyIssue",
    "PolicyLoadError",
    "PolicySet",
    "Price",
    "ReloadResult",
    "Resolution",
    "Retry",
    "Route",
    "Shadow",
    "Target",
    "Trigger",
    "Variant",
    "load_policies",
    "public_names",
    "resolve",
]
