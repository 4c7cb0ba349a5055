"""Policy files: the schema, the loader with precise errors, and hot reload.

The gateway imports only what ``__all__`` names; this package never imports ``gateway``.
"""

from policies.loader import PolicyIssue, PolicyLoadError, load_policies
from policies.reloader import PolicyHolder, ReloadResult
from policies.resolution import Resolution, public_names, resolve
from policies.schema import ARM_NAMES, Arm, ArmName, Knowledge, PolicySet, Price, Route, Target

__all__ = [
    "ARM_NAMES",
    "Arm",
    "ArmName",
    "Knowledge",
    "PolicyHolder",
    "PolicyIssue",
    "PolicyLoadError",
    "PolicySet",
    "Price",
    "ReloadResult",
    "Resolution",
    "Route",
    "Target",
    "load_policies",
    "public_names",
    "resolve",
]
