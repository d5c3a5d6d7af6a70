"""The torch side: everything that imports torch runs here, in worker processes started with the recipe's
environment (`python -m reprocheck.worker`). reprocheck's own process (host/) never imports this package."""
