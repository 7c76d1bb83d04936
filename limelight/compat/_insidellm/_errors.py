"""The SDK's exception names, as limelight's own errors.

limelight keeps every error class in :mod:`limelight.errors`: catching the SDK's name catches
what limelight raises there."""

from __future__ import annotations

from ...errors import AnalyticsError, ConfigError, LimelightError, SinkError

__all__ = ["ConfigurationError", "InsideLLMError", "NetworkError", "QueueError", "ValidationError"]

#: The root of the SDK's errors.
InsideLLMError = LimelightError
#: A bad option, a missing API key, a client used before initialize() (a ``ValueError``).
ConfigurationError = ConfigError
#: An event that does not fit its type (a ``ValueError``, as the SDK's strict validation).
ValidationError = ConfigError
#: A sink could not store a batch (limelight retries, then keeps the events in its spool).
NetworkError = SinkError
#: Never raised: a full queue spools its events instead of refusing them.
QueueError = AnalyticsError
