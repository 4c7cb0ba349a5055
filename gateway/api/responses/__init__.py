"""POST /v1/responses: OpenAI's Responses API, translated to and from the chat pipeline.

``protocol`` checks the request, ``request`` turns it into a chat completion body, ``reply`` turns
a chat completion into a response object, ``events`` a chat stream into the Responses events, and
``endpoint`` serves it through ``gateway.api.chat.serve_chat``: one pipeline for both APIs.
"""

from gateway.api.responses.endpoint import endpoints

__all__ = ["endpoints"]
