"""Does the fine-tune pay off? The break-even arithmetic and its live counterpart.

- ``breakeven``: pure arithmetic over frozen dataclasses (``Scenario`` in, ``BreakEven`` out),
  and the decision guide's worked scenarios.
- ``observed``: the same question answered from the traffic window the accounting keeps.
"""

from gateway.economics.breakeven import (
    DEFAULT_HORIZON_MONTHS,
    DEFAULT_UPFRONT,
    GUIDE_SCENARIOS,
    BreakEven,
    Evidence,
    Investment,
    Scenario,
    Shortfall,
    TokenCost,
    break_even,
)
from gateway.economics.observed import LiveInputs, economics_report, live_break_even, verdict_of

__all__ = [
    "DEFAULT_HORIZON_MONTHS",
    "DEFAULT_UPFRONT",
    "GUIDE_SCENARIOS",
    "BreakEven",
    "Evidence",
    "Investment",
    "LiveInputs",
    "Scenario",
    "Shortfall",
    "TokenCost",
    "break_even",
    "economics_report",
    "live_break_even",
    "verdict_of",
]
