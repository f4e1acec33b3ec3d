"""Online experiment analysis: exposures and outcomes from the service's logs (exposure.py), the statistics
(analysis.py: tea-tasting ratio metrics with CUPED, SRM, power; interleaving preference), the HTML report."""
