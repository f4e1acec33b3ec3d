"""Real-data adapters: map public datasets onto the raw data contract (shoprank.simulator.SCHEMAS)."""
