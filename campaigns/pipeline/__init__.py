"""The pipeline runner: stages, the doorbell, and the sweeper."""
