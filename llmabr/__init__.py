"""LLM-ABR: LLM-designed adaptive-bitrate controllers, trained with PPO on the ``simulator`` layer."""

__version__ = "0.1.0"
