"""The design search: proposer -> cascade (S0-S1, S2, S3, test) on Ray -> archive -> report."""
