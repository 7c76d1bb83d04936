"""The earlier tools' APIs, as thin facades over limelight's own pipeline.

``limelight.compat.insidellm`` (the analytics SDK), ``limelight.compat.myopto`` (the role
router), ``limelight.compat.llm`` (the sync client) and ``limelight.compat.llm_client`` (the
agent client): code written for them runs with only its import line changed.
"""
