"""Services the policies need while the gateway runs, shared by replicas through Redis when there is one.

- ``shared_state``: Redis as optional shared state; every call degrades to ``None`` while it is down.
- ``breakers``: circuit breakers per target, in process or shared through ``shared_state``.
"""

from policies.runtime.breakers import BreakerBoard, breaker_board
from policies.runtime.shared_state import Script, SharedState

__all__ = ["BreakerBoard", "Script", "SharedState", "breaker_board"]
