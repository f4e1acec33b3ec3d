"""Producers of raw data: the marketplace simulator and the real-data adapters."""
