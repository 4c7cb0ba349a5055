"""Named client keys' limits at run time: the rule, where windows and spend are kept, the check at intake.

The keys file itself (``ApiKey``, ``KeysFile``) is ``gateway.api_keys``, read with the settings.

- ``windows``: the rule a request is judged by (a sliding minute, the month's budget), in process;
- ``counters``, ``redis_counters``, ``spend_file``: where the windows and spend are kept, without and with Redis;
- ``gate``: the check at intake, the ``x-ratelimit-*`` headers and refusals, and the settlement hook.

The gateway imports only what ``__all__`` names.
"""

from gateway.keys.counters import KeyCounters, LocalCounters
from gateway.keys.gate import KeyGate, chat_tokens
from gateway.keys.redis_counters import RedisCounters
from gateway.keys.windows import Standing, month_of

__all__ = [
    "KeyCounters",
    "KeyGate",
    "LocalCounters",
    "RedisCounters",
    "Standing",
    "chat_tokens",
    "month_of",
]
