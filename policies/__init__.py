"""Policy files: the schema, the loader with precise errors, and hot reload.

The gateway imports only what ``__all__`` names; this package never imports ``gateway``.
"""

from policies.assignment import Assignment, assign, experiment_key
from policies.breakers import BreakerBoard, breaker_board
from policies.loader import PolicyIssue, PolicyLoadError, load_policies
from policies.outcomes import (
    Feedback,
    FeedbackExists,
    Outcome,
    OutcomeStore,
    OutcomesUnavailable,
    outcome_store,
    token_digest,
)
from policies.reloader import PolicyHolder, ReloadResult
from policies.resolution import Resolution, experiment_for, public_names, resolve
from policies.schema import (
    ARM_NAMES,
    Alternate,
    Arm,
    ArmName,
    Breaker,
    Classifier,
    Economics,
    Experiment,
    Fallback,
    FeedbackScale,
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
from policies.shared_state import Script, SharedState
from policies.statistics import Observation, render_table, report

__all__ = [
    "ARM_NAMES",
    "Alternate",
    "Arm",
    "ArmName",
    "Assignment",
    "Breaker",
    "BreakerBoard",
    "Classifier",
    "Economics",
    "Experiment",
    "Fallback",
    "Feedback",
    "FeedbackExists",
    "FeedbackScale",
    "Knowledge",
    "Observation",
    "Outcome",
    "OutcomeStore",
    "OutcomesUnavailable",
    "PolicyHolder",
    "PolicyIssue",
    "PolicyLoadError",
    "PolicySet",
    "Price",
    "ReloadResult",
    "Resolution",
    "Retry",
    "Route",
    "Script",
    "Shadow",
    "SharedState",
    "Target",
    "Trigger",
    "Variant",
    "assign",
    "breaker_board",
    "experiment_for",
    "experiment_key",
    "load_policies",
    "outcome_store",
    "public_names",
    "render_table",
    "report",
    "resolve",
    "token_digest",
]
