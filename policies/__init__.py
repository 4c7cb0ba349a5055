"""Policies: what the YAML files say, and the services that carry it out at run time.

Configuration, at the top of the package:

- ``schema``: the frozen dataclasses a policy directory becomes (``PolicySet``, ``Route``, ``Target``,
  ``ArmName`` / ``ARM_NAMES``, ...);
- ``loader``: YAML to ``PolicySet`` with file:line errors; ``reloader``: hot reload;
- ``resolution``: which route and target a public model name means.
- ``yaml_lines``: YAML read with the line of every value (the policy files, and the gateway's keys file).

Run time, in subpackages:

- ``experiments``: assignment, outcomes and statistics of the ``experiments:`` key;
- ``runtime``: Redis as optional shared state, and circuit breakers.

The gateway imports only what ``__all__`` names; this package never imports ``gateway``.
"""

from policies.experiments.assignment import Assignment, assign, experiment_key
from policies.experiments.outcomes import (
    Feedback,
    FeedbackExists,
    Outcome,
    OutcomeStore,
    OutcomesUnavailable,
    may_judge,
    outcome_store,
    token_digest,
)
from policies.experiments.statistics import Observation, report
from policies.loader import DEFAULT_POLICIES, PolicyIssue, PolicyLoadError, load_policies
from policies.providers import INSTEAD as FINE_TUNING_INSTEAD
from policies.providers import NO_PUBLIC_FINE_TUNING
from policies.reloader import PolicyHolder, ReloadResult
from policies.resolution import Resolution, experiment_for, public_names, resolve
from policies.runtime.breakers import BreakerBoard, breaker_board
from policies.runtime.shared_state import Script, SharedState
from policies.schema import (
    ARM_NAMES,
    Acceptors,
    Alternate,
    Arm,
    ArmName,
    Breaker,
    Cache,
    Capture,
    Classifier,
    Economics,
    Ensemble,
    Experiment,
    Fallback,
    FeedbackScale,
    Judge,
    Knowledge,
    PolicySet,
    Price,
    Redaction,
    Retry,
    Route,
    Shadow,
    Target,
    Trigger,
    Variant,
)
from policies.yaml_lines import YamlDocument, YamlProblem, dotted, read_yaml

__all__ = [
    "ARM_NAMES",
    "DEFAULT_POLICIES",
    "FINE_TUNING_INSTEAD",
    "NO_PUBLIC_FINE_TUNING",
    "Acceptors",
    "Alternate",
    "Arm",
    "ArmName",
    "Assignment",
    "Breaker",
    "BreakerBoard",
    "Cache",
    "Capture",
    "Classifier",
    "Economics",
    "Ensemble",
    "Experiment",
    "Fallback",
    "Feedback",
    "FeedbackExists",
    "FeedbackScale",
    "Judge",
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
    "Redaction",
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
    "YamlDocument",
    "YamlProblem",
    "assign",
    "breaker_board",
    "dotted",
    "experiment_for",
    "experiment_key",
    "load_policies",
    "may_judge",
    "outcome_store",
    "public_names",
    "read_yaml",
    "report",
    "resolve",
    "token_digest",
]
