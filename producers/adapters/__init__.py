"""Real-data adapters: map public datasets onto the raw data contract (producers.simulator.SCHEMAS)."""
