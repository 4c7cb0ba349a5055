"""The built-in simulated provider that makes the embedded default work with no API key."""

from gateway.demo_upstream.models import MODELS, SimulatedModel
from gateway.demo_upstream.server import create_demo_app
from gateway.demo_upstream.wanted import wants_demo

__all__ = ["MODELS", "SimulatedModel", "create_demo_app", "wants_demo"]
