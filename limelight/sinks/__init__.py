"""Where analytics events go."""
