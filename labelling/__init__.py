"""Search relevance labelling: what to label, the labelling tool's API, label aggregation, labeller aids."""
