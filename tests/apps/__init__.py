"""User modules the CLI scenarios run, configured through environment variables."""
