"""The response cache (policy block ``cache:``): ``service`` decides what is cached and under which key,
``stores`` keeps entries in Redis or in the process."""

from gateway.response_cache.service import ResponseCache, cache_key
from gateway.response_cache.stores import Entry

__all__ = ["Entry", "ResponseCache", "cache_key"]
