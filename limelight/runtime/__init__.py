"""The actor kernel: actors, refs, mailboxes, supervision, retries. Knows nothing about LLMs."""

from ._errors import LimelightError as LimelightError
