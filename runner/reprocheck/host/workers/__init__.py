"""The only code that starts the torch side (`python -m reprocheck.worker`): isolated runs, the zygote, helper
processes, and how a run ended."""
