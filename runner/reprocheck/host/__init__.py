"""reprocheck's own process: the command line, specs to checks, isolated runs launched and judged, reports, the
launch policy. Nothing here imports torch, NumPy or safetensors (a test holds it to that): tensor work happens in
worker processes (../worker/)."""
