"""The benchmark harness engine behind ``limelight bench``."""
