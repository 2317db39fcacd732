"""Scoring: how designs and baselines are measured, and the statistics their verdicts rest on."""
