"""Outputs: sinks that receive Exchange records and interval snapshots."""
