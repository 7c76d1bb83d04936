"""The analytics SDK's API (``insidellm``) over limelight's analytics engine.

The private modules behind :mod:`limelight.compat.insidellm`, one per part of the SDK: event
types and payloads, events, the client, decorators, the tracker, LangChain, LiteLLM/CrewAI and
Vertex AI Agent Builder."""
