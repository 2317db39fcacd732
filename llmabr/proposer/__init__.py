"""The proposer: an LLM (or the offline stand-in) writes new designs from prompts and feedback."""
