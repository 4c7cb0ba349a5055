"""Embedding backends behind one :class:`Encoder` Protocol.

``MiniLMEncoder`` (local, default) and ``RemoteEncoder`` (an OpenAI-compatible
endpoint) are interchangeable. The Chroma adapter lives in
``retrieval.embeddings.chroma`` and is imported only by the store, so importing
this package does not import chromadb.
"""

from retrieval.embeddings.base import Encoder, l2_normalise
from retrieval.embeddings.minilm import MiniLMEncoder
from retrieval.embeddings.remote import RemoteEncoder

__all__ = ["Encoder", "MiniLMEncoder", "RemoteEncoder", "l2_normalise"]
