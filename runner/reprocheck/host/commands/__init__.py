"""The command line: the parser, one module per command, what the commands share (checks loaded and
selected, output flags), and how reprocheck ends (exit codes, crashes, signals)."""
