"""Business rules over a scored slate: pure functions (no I/O, no BentoML), configured by serving/rules.yaml.

Each rule takes the slate (and the current order for the ordering rules) and returns a new one, writing a reason on
every item it moves; :func:`serving.rules.pipeline.apply_rules` runs them in their documented order.
"""
