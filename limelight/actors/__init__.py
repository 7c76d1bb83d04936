"""LLM actors: provider workers, agents, tool executors, the rate limiter, the analytics shipper."""
