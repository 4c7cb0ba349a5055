"""The runtime side of a policy's ``experiments:`` key: who gets which variant, what happened, what it means.

- ``assignment``: sticky variant assignment, a pure function of the experiment and the request's key.
- ``outcomes``: the record of served requests and their feedback (a local file, or Redis shared by replicas).
- ``statistics``: the experiment report (intervals, tests, verdicts) from those observations.
"""

from policies.experiments.assignment import Assignment, assign, experiment_key
from policies.experiments.outcomes import (
    Feedback,
    FeedbackExists,
    Outcome,
    OutcomeStore,
    OutcomesUnavailable,
    outcome_store,
    token_digest,
)
from policies.experiments.statistics import ExperimentReport, Observation, report

__all__ = [
    "Assignment",
    "ExperimentReport",
    "Feedback",
    "FeedbackExists",
    "Observation",
    "Outcome",
    "OutcomeStore",
    "OutcomesUnavailable",
    "assign",
    "experiment_key",
    "outcome_store",
    "report",
    "token_digest",
]
