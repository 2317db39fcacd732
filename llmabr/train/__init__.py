"""Training and evaluation of designs: SB3 PPO on the simulator, run in the cage."""
