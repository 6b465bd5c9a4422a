"""Result files: one self-describing folder per run (see results/README.md for the schema)."""
