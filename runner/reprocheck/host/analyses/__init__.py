"""The analyses beyond pass/fail: diagnose (why), calibrate (which tolerances), upgrade (two stacks compared)."""
