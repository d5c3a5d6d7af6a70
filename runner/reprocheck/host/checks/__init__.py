"""A check end to end in this process: goldens and names checked, runs judged, the decision, the variants."""
